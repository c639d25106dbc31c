package run

// Remote execution (--executor): a step's commands run as Remote Execution
// API actions on an engine (BuildGrid) and its workers (`smelt worker`)
// instead of here. Everything else stays local: the step's working
// directory is laid out, restored, snapshotted and keyed as always; only
// the command's process is replaced. Its action's input root is the
// working directory and what the sandbox mounts (vendored crates, the
// store's programs), its command the same sandboxed command line at the
// same fixed paths with the same environment, and its output the working
// directory, which is brought back here file by file (only what changed).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"smelt/internal/cargo"
	"smelt/internal/depsrc"
	"smelt/internal/kind"
	"smelt/internal/reapi"
	"smelt/internal/sandbox"
	"smelt/internal/worker"
)

// executor is the engine a run's steps execute on.
type executor struct {
	eng  reapi.Engine
	conn *grpc.ClientConn
	cas  *reapi.CAS
	ac   repb.ActionCacheClient

	mu      sync.Mutex
	off     bool                // the engine failed: every step runs here
	offered map[string][]string // Unoffered's answer, by the properties asked
	hashes  map[string]stamped  // file digests, by path
}

// stamped is a file's digest and what says it still holds.
type stamped struct {
	ino, size uint64
	mtime     int64
	d         *repb.Digest
}

// newExecutor connects (lazily) to the engine at url.
func newExecutor(url string) (*executor, error) {
	eng, err := reapi.ParseEngine(url)
	if err != nil {
		return nil, fmt.Errorf("--executor: %w", err)
	}
	conn, err := reapi.Dial(eng)
	if err != nil {
		return nil, err
	}
	return &executor{eng: eng, conn: conn, cas: reapi.NewCAS(conn, eng.Instance), ac: repb.NewActionCacheClient(conn),
		offered: map[string][]string{}, hashes: map[string]stamped{}}, nil
}

func (x *executor) close() { x.conn.Close() }

// disable makes the rest of the run local, with one warning.
func (e *engine) disableExecutor(err error) {
	x := e.exec
	x.mu.Lock()
	was := x.off
	x.off = true
	x.mu.Unlock()
	if !was {
		e.warn("the executor %s failed (%v): steps run locally; check that the engine runs, or leave --executor out", x.eng, oneLine(err))
	}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// toolProps names the platform properties (worker.KeyTool) of the tools a
// step's commands need, beyond cargo and rustc.
func toolProps(k string, tools map[string]string) []string {
	var out []string
	// The kind's rustup component (clippy, rustfmt) is a tool a worker
	// offers by that name; llvm-tools shows as llvm-cov among the tools.
	if c := kind.Get(k).Component; c != "" && c != "llvm-tools" {
		out = append(out, c)
	}
	for name := range tools {
		switch {
		case name == "cargo-nextest", name == "cargo-tarpaulin", name == "cargo-deny":
			out = append(out, name)
		case strings.HasPrefix(name, "llvm-cov"):
			out = append(out, "llvm-cov")
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// remoteExit is a command's exit status on a worker.
type remoteExit struct {
	code   int
	worker string
	// keep, when set, puts the result in the action cache: the engine
	// keeps no failed action's, and a failure the step expects (the
	// deps step's stubs) is as good a result as a success.
	keep func()
}

func (r remoteExit) Error() string {
	return fmt.Sprintf("exit status %d on worker %s", r.code, r.worker)
}

// ExitCode is the command's, as exec.ExitError's.
func (r remoteExit) ExitCode() int { return r.code }

// errLocal: the command did not run on the engine and should run here.
var errLocal = errors.New("run locally")

// remote runs one command (argv, with env) of the step as an action, its
// stdout and stderr written to the writers. It returns errLocal when the
// command is to run here instead (the engine is down or refuses it), after
// a warning; remoteExit when the command failed.
func (sr *stepRun) remote(ctx context.Context, argv, env []string, stdout, stderr io.Writer) error {
	sr.ncmd++
	a, err := sr.runAction(ctx, argv, env, nil, sr.alias(fmt.Sprintf("smelt-step-command-v1 %s %d", sr.key, sr.ncmd)))
	if err != nil {
		return err
	}
	x := sr.e.exec
	if err := x.writeOutput(ctx, a.res.StdoutRaw, a.res.StdoutDigest, stdout); err != nil {
		return fmt.Errorf("read the command's output from %s: %w", x.eng, err)
	}
	if err := x.writeOutput(ctx, a.res.StderrRaw, a.res.StderrDigest, stderr); err != nil {
		return fmt.Errorf("read the command's output from %s: %w", x.eng, err)
	}
	if a.res.ExitCode != 0 {
		return remoteExit{code: int(a.res.ExitCode), worker: a.who, keep: a.keep}
	}
	return nil
}

// action is an action's outcome, brought back into the step's directory.
type action struct {
	res    *repb.ActionResult
	who    string // the worker, or "(action cache)"
	cached bool
	// keep, for a failed action, puts its result in the action cache
	// (see remoteExit).
	keep func()
}

// runAction runs argv (with env) as an action whose platform asks for the
// tools of the step and extra, and brings its output directory back. The
// step's key, its command's digest and alias name the action across
// stores (see below). It returns errLocal when the engine is down or
// refuses the action, after a warning, and errUnoffered (no warning) when
// only the extra tools are what no worker offers. alias "" names it by its
// digest only: for commands whose inputs the step's key does not name.
func (sr *stepRun) runAction(ctx context.Context, argv, env, extra []string, alias string) (*action, error) {
	e, x := sr.e, sr.e.exec
	x.mu.Lock()
	off := x.off
	x.mu.Unlock()
	if off || kind.Get(sr.n.Step.Kind).UserCommand {
		// A user's command may read anything on this machine.
		return nil, errLocal
	}
	if !sr.e.sandboxed() {
		// The paths would differ on the worker.
		e.disableExecutor(errors.New("steps cannot run at the fixed paths a worker uses here"))
		return nil, errLocal
	}
	id, err := e.p.toolchain(ctx, sr.n.Step.Toolchain)
	if err != nil {
		return nil, err
	}
	props := []worker.Property{{Key: worker.KeyOSFamily, Value: runtime.GOOS}, {Key: worker.KeyISA, Value: isaName()}}
	if v := worker.RustcVersion(id.Rustc); v != "" {
		props = append(props, worker.Property{Key: worker.KeyRustc, Value: v})
	}
	for _, t := range toolProps(sr.n.Step.Kind, sr.tools) {
		props = append(props, worker.Property{Key: worker.KeyTool, Value: t})
	}
	if missing, err := x.unoffered(ctx, props); err != nil {
		e.disableExecutor(err)
		return nil, errLocal
	} else if len(missing) > 0 {
		e.warn("no worker of the executor %s offers %s: step %s runs locally", x.eng, strings.Join(missing, ", "), sr.n.Name())
		return nil, errLocal
	}
	if len(extra) > 0 {
		for _, t := range extra {
			props = append(props, worker.Property{Key: worker.KeyTool, Value: t})
		}
		if missing, err := x.unoffered(ctx, props); err != nil || len(missing) > 0 {
			return nil, errUnoffered
		}
	}

	start := time.Now()
	in, err := sr.inputRoot()
	if err != nil {
		return nil, err
	}
	tm := actionTimes{start: start, walked: time.Now()}
	// The command line and environment of the local run, but for the
	// jobserver, which is this machine's.
	var keep []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CARGO_MAKEFLAGS=") {
			keep = append(keep, kv)
		}
	}
	mounts := make([]sandbox.Mount, len(sr.view.mounts))
	for i, m := range sr.view.mounts {
		mounts[i] = sandbox.Mount{Source: strings.TrimPrefix(m.Target, sandbox.Root+"/"), Target: m.Target}
	}
	args, err := sandbox.PortableArgs(sr.n.Name(), sr.view.src, mounts, argv)
	if err != nil {
		return nil, err
	}
	platform := &repb.Platform{}
	for _, p := range props {
		platform.Properties = append(platform.Properties, &repb.Platform_Property{Name: p.Key, Value: p.Value})
	}
	sort.Slice(platform.Properties, func(i, j int) bool {
		a, b := platform.Properties[i], platform.Properties[j]
		return a.Name < b.Name || a.Name == b.Name && a.Value < b.Value
	})
	cmd := &repb.Command{Arguments: args, EnvironmentVariables: envVars(keep), OutputPaths: []string{"work"},
		OutputDirectories: []string{"work"}, Platform: platform, OutputNodeProperties: []string{"MTime"}}
	cmdData, cmdDigest, err := reapi.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	act := &repb.Action{CommandDigest: cmdDigest, InputRootDigest: in.root, Platform: platform}
	actData, actDigest, err := reapi.Marshal(act)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(sr.logf, "# smelt: action %s on %s (input root: %d files)\n", reapi.Key(actDigest)[:16], x.eng, in.files)
	// The same command of the same step (its key names every input) in
	// another store: its inputs' mtimes, and so its action, may differ
	// (the order of a restored target/'s times depends on the store's
	// history), its result not.
	kept := []*repb.Digest{keptDigest(actDigest)}
	var aliasD *repb.Digest
	if alias != "" {
		aliasD = reapi.Digest([]byte(alias + " " + reapi.Key(cmdDigest)))
		kept = append(kept, aliasD)
	}
	res, cached, err := x.result(ctx, actDigest, kept...)
	tm.looked = time.Now()
	if err == nil && res == nil {
		blobs := append(in.blobs, reapi.Blob{Digest: cmdDigest, Data: cmdData}, reapi.Blob{Digest: actDigest, Data: actData})
		var sent int
		if sent, err = x.cas.UploadMissing(ctx, blobs); err == nil {
			tm.uploaded = time.Now()
			fmt.Fprintf(sr.logf, "# smelt: uploaded %d of %d blobs in %.3fs\n", sent, len(blobs), time.Since(start).Seconds())
			// Where this project's last action ran holds most of this
			// one's inputs (its parent's outputs, the vendored crates).
			res, err = x.execute(reapi.WithLocality(ctx, "smelt-project-"+e.p.id), actDigest)
		}
	}
	tm.executed = time.Now()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		e.disableExecutor(err)
		return nil, errLocal
	}
	a := &action{res: res, who: res.GetExecutionMetadata().GetWorker()}
	if cached {
		a.who, a.cached = "(action cache)", true
	}
	n, err := x.download(ctx, res, sr.view.realDir, start)
	if err != nil {
		return nil, fmt.Errorf("bring the step's files back from %s: %w", x.eng, err)
	}
	tm.done = time.Now()
	fmt.Fprintf(sr.logf, "# smelt: ran on %s, exit %d; %d files changed, %.3fs in all\n", a.who, res.ExitCode, n, time.Since(start).Seconds())
	sr.note("# smelt: action times: %s", tm.String(res.GetExecutionMetadata(), cached))
	store := func(ds ...*repb.Digest) {
		for _, d := range ds {
			_, err := x.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{InstanceName: x.eng.Instance, ActionDigest: d, ActionResult: keptResult(res)})
			if err != nil {
				fmt.Fprintf(sr.logf, "# smelt: the action's result is not in the action cache: %v\n", err)
			}
		}
	}
	switch {
	case cached:
	case res.ExitCode != 0:
		a.keep = func() { store(kept...) }
	case aliasD != nil:
		store(aliasD)
	}
	return a, nil
}

// alias is name, under which an action's result is kept for other stores
// (see runAction), or "" for a deps step's fused builds: they run on its
// heirs' source, which its key does not name (the same key's builds on
// other source would be served the last one's result).
func (sr *stepRun) alias(name string) string {
	if sr.fused {
		return ""
	}
	return name
}

// errUnoffered: no worker offers what the action asks for beyond the step's
// own needs.
var errUnoffered = errors.New("no worker offers it")

func isaName() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86-64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

// envVars: sorted by name, the last value of a name winning, as for a
// local process.
func envVars(env []string) []*repb.Command_EnvironmentVariable {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	var out []*repb.Command_EnvironmentVariable
	for _, k := range sortedKeys(m) {
		out = append(out, &repb.Command_EnvironmentVariable{Name: k, Value: m[k]})
	}
	return out
}

// unoffered asks once per set of properties which of them no live worker
// offers.
func (x *executor) unoffered(ctx context.Context, props []worker.Property) ([]string, error) {
	var key strings.Builder
	for _, p := range props {
		key.WriteString(p.Key + "=" + p.Value + "\n")
	}
	x.mu.Lock()
	m, ok := x.offered[key.String()]
	x.mu.Unlock()
	if ok {
		return m, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	m, err := worker.Unoffered(ctx, x.conn, x.eng.Instance, props)
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	x.offered[key.String()] = m
	x.mu.Unlock()
	return m, nil
}

// result asks the action cache first: a hit needs no Execute (each of
// which adds rows to BuildGrid's scheduler). An expected failure smelt
// kept is the second place to look.
func (x *executor) result(ctx context.Context, d *repb.Digest, kept ...*repb.Digest) (*repb.ActionResult, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// All at once: each is a round trip, and most actions are in none.
	ds := append([]*repb.Digest{d}, kept...)
	ress, errs := make([]*repb.ActionResult, len(ds)), make([]error, len(ds))
	var wg sync.WaitGroup
	for i, ad := range ds {
		wg.Go(func() {
			ress[i], errs[i] = x.ac.GetActionResult(cctx, &repb.GetActionResultRequest{InstanceName: x.eng.Instance, ActionDigest: ad, InlineStdout: true, InlineStderr: true})
		})
	}
	wg.Wait()
	for i := range ds {
		res, err := ress[i], errs[i]
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("ask the action cache: %w", err)
		}
		if i > 0 {
			code := &wrapperspb.Int32Value{}
			aux := res.GetExecutionMetadata().GetAuxiliaryMetadata()
			if len(aux) != 1 || aux[0].UnmarshalTo(code) != nil {
				continue
			}
			res.ExitCode = code.Value
		}
		return res, true, nil
	}
	return nil, false, nil
}

// keptDigest is where smelt keeps an action's failed result that the step
// accepts (the deps step's stubs): engines keep no failed results
// (BuildGrid drops them even from UpdateActionResult), and without it
// every command after such a one would differ in its mtimes from the
// last run's, and miss the cache too. The prefix keeps it apart from
// every real action digest.
func keptDigest(d *repb.Digest) *repb.Digest {
	return reapi.Digest([]byte("smelt-kept-failure-v1 " + reapi.Key(d)))
}

// keptResult is res with exit code 0, the real one in its metadata.
func keptResult(res *repb.ActionResult) *repb.ActionResult {
	k := proto.Clone(res).(*repb.ActionResult)
	k.ExitCode = 0
	if k.ExecutionMetadata == nil {
		k.ExecutionMetadata = &repb.ExecutedActionMetadata{}
	}
	code, _ := anypb.New(wrapperspb.Int32(res.ExitCode))
	k.ExecutionMetadata.AuxiliaryMetadata = []*anypb.Any{code}
	return k
}

// maxAttempts bounds how often an action is submitted again after its
// execution was lost (an engine that gave up on a dead worker).
const maxAttempts = 3

// execute runs the action on the engine. A worker that dies mid-action is
// BuildGrid's to notice (its session expires and the job is queued again);
// an execution that ends in an error of the engine is submitted again, up
// to maxAttempts in all.
func (x *executor) execute(ctx context.Context, d *repb.Digest) (*repb.ActionResult, error) {
	var last error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		var op string
		resp, err := reapi.Execute(ctx, x.conn, x.eng.Instance, d, false, func(name string) { op = name })
		if err == nil {
			return resp.Result, nil
		}
		last = err
		if ctx.Err() != nil {
			if op != "" {
				// An interrupted run's action stops on its worker too.
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				longrunningpb.NewOperationsClient(x.conn).CancelOperation(cctx, &longrunningpb.CancelOperationRequest{Name: op})
				cancel()
			}
			return nil, ctx.Err()
		}
		switch status.Code(errors.Unwrap(err)) {
		case codes.FailedPrecondition, codes.InvalidArgument, codes.PermissionDenied, codes.Unimplemented:
			return nil, err // refused: again would not help
		}
		time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
	}
	return nil, last
}

func (x *executor) writeOutput(ctx context.Context, raw []byte, d *repb.Digest, w io.Writer) error {
	if len(raw) == 0 && d.GetSizeBytes() > 0 {
		var err error
		if raw, err = x.cas.Read(ctx, d); err != nil {
			return err
		}
	}
	_, err := w.Write(raw)
	return err
}

// inputs is an action's input root.
type inputs struct {
	root  *repb.Digest
	blobs []reapi.Blob
	files int
	// The mtimes the workspace's files have in the action, by their
	// real ones (see mtimeRanks).
	canon map[int64]time.Time
}

// canonBase is where the action's mtimes start: long before any build.
var canonBase = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// canonical tells an mtime the action's inputs had (mtimeRanks) from one
// the command set.
func canonical(t time.Time) bool { return t.Before(canonBase.AddDate(1, 0, 0)) }

// mtimeRanks gives the workspace's files (source and target/, under
// dir) mtimes that keep their order, and only their order: cargo's
// freshness checks compare mtimes and nothing else reads them, so the
// action is the same whatever time this store ran its steps at, and
// another store's run of the same step finds it in the action cache. The
// other files (vendored crates, the store's programs, cargo's config),
// which cargo does not check by mtime, all get canonBase.
//
// A source file's mtime depends on the source's times alone (the i-th
// distinct one is canonBase + 1h + i s), not on target/'s: cargo records
// one in its fingerprints. A build script that names no rerun-if-changed
// is keyed by its package's newest file and that file's mtime, as a
// string; ranked among target/'s files too, ripgrep's moved with every
// step's target/, and each action through the engine rebuilt ripgrep's
// crate (17 s of its test step). target/'s files go between the source
// times they lie between, a nanosecond apart, an equal one on it.
func (in *inputs) mtimeRanks(dir, target string) error {
	src, out := map[int64]bool{}, map[int64]bool{}
	err := filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type().IsRegular() {
			info, err := de.Info()
			if err != nil {
				return err
			}
			if p == target || strings.HasPrefix(p, target+string(filepath.Separator)) {
				out[info.ModTime().UnixNano()] = true
			} else {
				src[info.ModTime().UnixNano()] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	srcTimes := slices.Sorted(maps.Keys(src))
	in.canon = map[int64]time.Time{}
	start := canonBase.Add(time.Hour)
	for i, t := range srcTimes {
		in.canon[t] = start.Add(time.Duration(i+1) * time.Second)
	}
	// n: the source times before t; r: target/'s times since the last.
	n, r := 0, 0
	for _, t := range slices.Sorted(maps.Keys(out)) {
		for n < len(srcTimes) && srcTimes[n] < t {
			n, r = n+1, 0
		}
		if n < len(srcTimes) && srcTimes[n] == t {
			continue // as the source file's
		}
		r++
		in.canon[t] = start.Add(time.Duration(n)*time.Second + time.Duration(r))
	}
	return nil
}

// inputRoot makes the input root: each of the sandbox's mounts (the
// working directory, the vendored crates, the store's programs) as a
// directory named as its target under sandbox.Root. Files cargo never
// rewrites in place are marked for the worker to hard-link from its
// cache.
func (sr *stepRun) inputRoot() (*inputs, error) {
	x := sr.e.exec
	in := &inputs{}
	root := &repb.Directory{}
	targetRel, _ := filepath.Rel(sr.view.realDir, sr.targetDir)
	if err := in.mtimeRanks(sr.srcDir, sr.targetDir); err != nil {
		return nil, err
	}
	srcRel, _ := filepath.Rel(sr.view.realDir, sr.srcDir)
	srcRel = filepath.ToSlash(srcRel) + "/"
	for _, m := range sr.view.mounts {
		name := strings.TrimPrefix(m.Target, sandbox.Root+"/")
		link := func(string) bool { return true } // vendored sources, programs
		skip := func(string) bool { return false }
		mtime := func(string, time.Time) time.Time { return canonBase }
		if m.Target == viewVendor {
			// This store's record of the crates' files.
			skip = func(rel string) bool { return path.Base(rel) == depsrc.StatFile }
		}
		if m.Source == sr.view.realDir {
			mtime = func(rel string, t time.Time) time.Time {
				if c, ok := in.canon[t.UnixNano()]; ok && strings.HasPrefix(rel, srcRel) {
					return c
				}
				return canonBase // cargo's config, scratch space
			}
			link = func(rel string) bool {
				r, ok := strings.CutPrefix(rel, filepath.ToSlash(targetRel)+"/")
				return ok && cargo.Replaced(r)
			}
			// The locks are this machine's.
			skip = func(rel string) bool { return rel == ".lock" || rel == ".procs.lock" }
		}
		d, err := x.dirNode(m.Source, "", link, skip, mtime, in)
		if err != nil {
			return nil, err
		}
		root.Directories = append(root.Directories, &repb.DirectoryNode{Name: name, Digest: d})
	}
	sort.Slice(root.Directories, func(i, j int) bool { return root.Directories[i].Name < root.Directories[j].Name })
	data, d, err := reapi.Marshal(root)
	if err != nil {
		return nil, err
	}
	in.blobs = append(in.blobs, reapi.Blob{Digest: d, Data: data})
	in.root = d
	return in, nil
}

// dirNode adds dir (rel below its mount) and what it holds to in, and
// returns its digest.
func (x *executor) dirNode(dir, rel string, link, skip func(string) bool, mtime func(string, time.Time) time.Time, in *inputs) (*repb.Digest, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	node := &repb.Directory{}
	for _, ent := range entries { // sorted by name, as REAPI wants
		r := ent.Name()
		if rel != "" {
			r = rel + "/" + r
		}
		if skip(r) {
			continue
		}
		p := filepath.Join(dir, ent.Name())
		info, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return nil, err
			}
			node.Symlinks = append(node.Symlinks, &repb.SymlinkNode{Name: ent.Name(), Target: t})
		case info.IsDir():
			d, err := x.dirNode(p, r, link, skip, mtime, in)
			if err != nil {
				return nil, err
			}
			node.Directories = append(node.Directories, &repb.DirectoryNode{Name: ent.Name(), Digest: d})
		case info.Mode().IsRegular():
			d, err := x.digest(p, info)
			if err != nil {
				return nil, err
			}
			// With its mtime: cargo's freshness checks compare them.
			np := &repb.NodeProperties{Mtime: timestamppb.New(mtime(r, info.ModTime()))}
			if link(r) {
				np.Properties = []*repb.NodeProperty{{Name: worker.LinkProperty}}
			}
			node.Files = append(node.Files, &repb.FileNode{Name: ent.Name(), Digest: d, IsExecutable: info.Mode()&0o111 != 0, NodeProperties: np})
			in.blobs = append(in.blobs, reapi.Blob{Digest: d, Path: p})
			in.files++
		}
	}
	data, d, err := reapi.Marshal(node)
	if err != nil {
		return nil, err
	}
	in.blobs = append(in.blobs, reapi.Blob{Digest: d, Data: data})
	return d, nil
}

// digest hashes a file, once while it stays the same (restored crates are
// hard links that many steps share).
func (x *executor) digest(p string, info os.FileInfo) (*repb.Digest, error) {
	st := stampOf(info)
	x.mu.Lock()
	h, ok := x.hashes[p]
	x.mu.Unlock()
	if ok && h.ino == st.ino && h.size == st.size && h.mtime == st.mtime {
		return h.d, nil
	}
	d, err := reapi.DigestFile(p)
	if err != nil {
		return nil, err
	}
	st.d = d
	x.mu.Lock()
	x.hashes[p] = st
	x.mu.Unlock()
	return d, nil
}

// download makes dir what the action's output directory "work" holds:
// changed and new files fetched (written beside and renamed: a restored
// file may be a hard link into the store), files the command removed
// removed, mtimes as on the worker. It returns how many files it wrote.
func (x *executor) download(ctx context.Context, res *repb.ActionResult, dir string, start time.Time) (int, error) {
	var od *repb.OutputDirectory
	for _, o := range res.OutputDirectories {
		if o.Path == "work" {
			od = o
		}
	}
	if od == nil {
		return 0, fmt.Errorf("the action's result has no output directory")
	}
	tree := &repb.Tree{}
	if err := x.cas.ReadProto(ctx, od.TreeDigest, tree); err != nil {
		return 0, err
	}
	dirs := map[string]*repb.Directory{}
	for _, c := range tree.Children {
		_, d, err := reapi.Marshal(c)
		if err != nil {
			return 0, err
		}
		dirs[reapi.Key(d)] = c
	}
	type file struct {
		node *repb.FileNode
		path string
	}
	want := map[string]bool{} // every path the output holds
	var fetch []file
	var walk func(node *repb.Directory, d string) error
	// The files the command wrote get times on this machine's clock, in
	// their order, between the command's start and now: after every
	// file it started with, as they were on the worker, even when the
	// result is another store's, older than this store's files.
	var oldest, newest time.Time
	for _, n := range append([]*repb.Directory{tree.Root}, tree.Children...) {
		for _, f := range n.Files {
			if mt := f.GetNodeProperties().GetMtime(); mt != nil && !canonical(mt.AsTime()) {
				t := mt.AsTime()
				if oldest.IsZero() || t.Before(oldest) {
					oldest = t
				}
				if t.After(newest) {
					newest = t
				}
			}
		}
	}
	now := time.Now()
	local := func(t time.Time) time.Time {
		if !newest.After(oldest) {
			return now
		}
		return start.Add(time.Duration(float64(now.Sub(start)) * float64(t.Sub(oldest)) / float64(newest.Sub(oldest))))
	}
	walk = func(node *repb.Directory, d string) error {
		want[d] = true
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		for _, f := range node.Files {
			p := filepath.Join(d, f.Name)
			if !filepath.IsLocal(f.Name) {
				return fmt.Errorf("output file name %q is not a plain name", f.Name)
			}
			want[p] = true
			info, err := os.Lstat(p)
			same := false
			if err == nil && info.Mode().IsRegular() {
				h, err := x.digest(p, info)
				same = err == nil && reapi.Key(h) == reapi.Key(f.Digest)
			}
			if mt := f.GetNodeProperties().GetMtime(); mt != nil {
				switch {
				case !canonical(mt.AsTime()):
					f.NodeProperties.Mtime = timestamppb.New(local(mt.AsTime()))
				case same:
					// A file the command did not touch keeps its mtime.
					f.NodeProperties.Mtime = timestamppb.New(info.ModTime())
				default:
					f.NodeProperties.Mtime = timestamppb.New(now)
				}
			}
			if same {
				if err := setMeta(p, info, f); err != nil {
					return err
				}
				continue
			}
			fetch = append(fetch, file{f, p})
		}
		for _, s := range node.Symlinks {
			p := filepath.Join(d, s.Name)
			want[p] = true
			if t, err := os.Readlink(p); err == nil && t == s.Target {
				continue
			}
			os.RemoveAll(p)
			if err := os.Symlink(s.Target, p); err != nil {
				return err
			}
		}
		for _, sub := range node.Directories {
			if !filepath.IsLocal(sub.Name) {
				return fmt.Errorf("output directory name %q is not a plain name", sub.Name)
			}
			c := dirs[reapi.Key(sub.Digest)]
			if c == nil {
				return fmt.Errorf("directory %s missing from the output tree", reapi.Key(sub.Digest))
			}
			p := filepath.Join(d, sub.Name)
			if info, err := os.Lstat(p); err == nil && !info.IsDir() {
				os.Remove(p)
			}
			if err := walk(c, p); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(tree.Root, dir); err != nil {
		return 0, err
	}
	// What the command removed.
	var gone []string
	filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		if rel, _ := filepath.Rel(dir, p); rel == ".lock" || rel == ".procs.lock" {
			return nil
		}
		if !want[p] {
			gone = append(gone, p)
			if de.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	for _, p := range gone {
		if err := os.RemoveAll(p); err != nil {
			return 0, err
		}
	}
	byKey := map[string][]file{}
	var ds []*repb.Digest
	for _, f := range fetch {
		k := reapi.Key(f.node.Digest)
		if byKey[k] == nil {
			ds = append(ds, f.node.Digest)
		}
		byKey[k] = append(byKey[k], f)
	}
	put := func(d *repb.Digest, data []byte) error {
		for _, f := range byKey[reapi.Key(d)] {
			if err := writeFile(f.path, data, f.node); err != nil {
				return err
			}
		}
		return nil
	}
	big := func(d *repb.Digest) string { return filepath.Join(dir, ".smelt-fetch-"+d.Hash) }
	// Whatever happens, no fetched blob stays behind in the directory.
	defer func() {
		for _, d := range ds {
			if d.SizeBytes > reapi.BatchMax {
				os.Remove(big(d))
			}
		}
	}()
	if err := x.cas.Fetch(ctx, ds, put, big); err != nil {
		return 0, err
	}
	// The big blobs, fetched to a file each.
	for _, d := range ds {
		if d.SizeBytes <= reapi.BatchMax {
			continue
		}
		tmp := big(d)
		fs := byKey[reapi.Key(d)]
		for i, f := range fs {
			var err error
			if i == len(fs)-1 {
				err = os.Rename(tmp, f.path)
			} else {
				err = copyTo(tmp, f.path)
			}
			if err == nil {
				err = setMeta(f.path, nil, f.node)
			}
			if err != nil {
				os.Remove(tmp)
				return 0, err
			}
		}
	}
	return len(fetch), nil
}

// writeFile writes data to p atomically, with f's mode and mtime.
func writeFile(p string, data []byte, f *repb.FileNode) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".smelt-tmp-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := setMeta(tmp.Name(), nil, f); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

func copyTo(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeFile(dst, data, &repb.FileNode{})
}

// setMeta gives p the mode and mtime of f where they differ (info: p's,
// nil when unknown).
func setMeta(p string, info os.FileInfo, f *repb.FileNode) error {
	if info == nil {
		var err error
		if info, err = os.Lstat(p); err != nil {
			return err
		}
	}
	mode := os.FileMode(0o644)
	if f.IsExecutable {
		mode = 0o755
	}
	mt := f.GetNodeProperties().GetMtime()
	newMode, newTime := (info.Mode()&0o111 != 0) != f.IsExecutable, mt != nil && !info.ModTime().Equal(mt.AsTime())
	if !newMode && !newTime {
		return nil
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		// A hard link into the store (a restored crate): changing it
		// would change the store's copy.
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return writeFile(p, data, f)
	}
	if newMode {
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
	}
	if newTime {
		if err := os.Chtimes(p, mt.AsTime(), mt.AsTime()); err != nil {
			return err
		}
	}
	return nil
}

func stampOf(info os.FileInfo) stamped {
	s := stamped{size: uint64(info.Size()), mtime: info.ModTime().UnixNano()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

// actionTimes is where one action's time went, as this client saw it.
type actionTimes struct {
	start, walked, looked, uploaded, executed, done time.Time
}

// String names each part: this side's (input root, action cache, upload,
// download) and, from the worker's metadata, the engine's and the worker's
// (queued until a worker started it; fetching inputs, running, uploading
// outputs there; from the worker's end until the result was here). The
// worker's times are on its clock: on another machine, the parts across
// the two are as good as the clocks agree.
func (t actionTimes) String(meta *repb.ExecutedActionMetadata, cached bool) string {
	sec := func(a, b time.Time) string { return fmt.Sprintf("%.3fs", b.Sub(a).Seconds()) }
	parts := []string{"input root " + sec(t.start, t.walked), "action cache " + sec(t.walked, t.looked)}
	if !cached && !t.uploaded.IsZero() {
		parts = append(parts, "upload "+sec(t.looked, t.uploaded), "execute "+sec(t.uploaded, t.executed))
		if meta.GetWorkerStartTimestamp() != nil && meta.GetWorkerCompletedTimestamp() != nil {
			ws, wc := meta.WorkerStartTimestamp.AsTime(), meta.WorkerCompletedTimestamp.AsTime()
			parts = append(parts, "(to the worker "+sec(t.uploaded, ws),
				"fetch "+sec(meta.InputFetchStartTimestamp.AsTime(), meta.InputFetchCompletedTimestamp.AsTime()),
				"run "+sec(meta.ExecutionStartTimestamp.AsTime(), meta.ExecutionCompletedTimestamp.AsTime()),
				"upload "+sec(meta.OutputUploadStartTimestamp.AsTime(), meta.OutputUploadCompletedTimestamp.AsTime()),
				"worker in all "+sec(ws, wc),
				"back here "+sec(wc, t.executed)+")")
		}
	}
	parts = append(parts, "download "+sec(t.executed, t.done), "in all "+sec(t.start, t.done))
	return strings.Join(parts, ", ")
}
