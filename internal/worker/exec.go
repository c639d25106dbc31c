package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/genproto/googleapis/rpc/code"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"smelt/internal/proc"
	"smelt/internal/reapi"
	"smelt/internal/sandbox"
)

// DefaultTimeout bounds an action that names no timeout.
const DefaultTimeout = time.Hour

// outcome is what a lease reports: the action's result, and the status of
// running it (OK even when the command failed: its exit code says that).
type outcome struct {
	result *repb.ActionResult
	status *spb.Status
}

func failed(c code.Code, format string, args ...any) outcome {
	return outcome{status: &spb.Status{Code: int32(c), Message: fmt.Sprintf(format, args...)}}
}

// stats of one action, for its log line.
type stats struct {
	args           []string
	fetched        int
	fetchedBytes   int64
	inputs         int
	uploaded       int
	exit           int
	fetch, execute time.Duration
	phases         []string  // where the action's time went here
	mark           time.Time // the end of the last phase
	kept           int       // input files the last action's root already held
	// root's files as the action left them, by path below it, when it
	// ended normally: the next action starts from them (see materialise).
	warm map[string]knownFile
}

// phase records the time since the last one under name.
func (st *stats) phase(name string) {
	now := time.Now()
	if !st.mark.IsZero() {
		st.phases = append(st.phases, fmt.Sprintf("%s %.3fs", name, now.Sub(st.mark).Seconds()))
	}
	st.mark = now
}

// execute runs one action in dir (a directory of its own, with the last
// action's root as dir/root when warm is set: its files, by path below it).
func (w *Worker) execute(ctx context.Context, action *repb.Action, dir string, warm map[string]knownFile, st *stats) outcome {
	meta := &repb.ExecutedActionMetadata{Worker: w.botID, WorkerStartTimestamp: timestamppb.Now()}
	st.phase("")
	cmd := &repb.Command{}
	if err := w.cache.readProto(ctx, action.CommandDigest, cmd); err != nil {
		return failed(code.Code_FAILED_PRECONDITION, "fetch the command: %v", err)
	}
	st.phase("command")
	st.args = cmd.Arguments
	if len(cmd.Arguments) == 0 {
		return failed(code.Code_INVALID_ARGUMENT, "the command has no arguments")
	}
	meta.InputFetchStartTimestamp = timestamppb.Now()
	start := time.Now()
	dirs, err := w.cache.inputTree(ctx, action.InputRootDigest)
	if err != nil {
		return failed(code.Code_FAILED_PRECONDITION, "%v", err)
	}
	st.phase("tree")
	inputs := files(dirs)
	st.inputs = len(inputs)
	st.fetched, st.fetchedBytes, err = w.cache.ensure(ctx, inputs)
	if err != nil {
		return failed(code.Code_FAILED_PRECONDITION, "fetch the inputs: %v", err)
	}
	st.phase("blobs")
	root := filepath.Join(dir, "root")
	if st.kept, err = w.cache.materialise(root, dirs, action.InputRootDigest, warm); err != nil {
		return failed(code.Code_INTERNAL, "materialise the input root: %v", err)
	}
	st.fetch = time.Since(start)
	st.phase("materialise")
	meta.InputFetchCompletedTimestamp = timestamppb.Now()
	// The outputs are often mostly the inputs (a step's target/): those
	// the command left alone need no hashing again.
	inputsKnown := knownInputs(root, dirs, action.InputRootDigest)
	st.phase("stat")

	wd := filepath.Join(root, filepath.FromSlash(cmd.WorkingDirectory))
	if !within(root, wd) {
		return failed(code.Code_INVALID_ARGUMENT, "working directory %q leaves the input root", cmd.WorkingDirectory)
	}
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return failed(code.Code_INTERNAL, "%v", err)
	}
	outputs := cmd.OutputPaths
	if len(outputs) == 0 {
		outputs = append(append([]string{}, cmd.OutputFiles...), cmd.OutputDirectories...)
	}
	for _, o := range outputs {
		p := filepath.Join(wd, filepath.FromSlash(o))
		if !within(root, p) {
			return failed(code.Code_INVALID_ARGUMENT, "output path %q leaves the input root", o)
		}
		// The worker creates the outputs' parents, not the outputs
		// themselves (REAPI).
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return failed(code.Code_INTERNAL, "%v", err)
		}
	}

	timeout := DefaultTimeout
	if t := action.Timeout.AsDuration(); t > 0 {
		timeout = t
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	env := make([]string, 0, len(cmd.EnvironmentVariables))
	for _, e := range cmd.EnvironmentVariables {
		env = append(env, e.Name+"="+e.Value)
	}
	// A smelt client's step runs in a sandbox like a local one: at the
	// fixed paths, with its mounts' sources in the input root.
	sbDir, mounts, argv, sandboxed, err := sandbox.ParsePortable(cmd.Arguments, root)
	if err != nil {
		return failed(code.Code_INVALID_ARGUMENT, "%v", err)
	}
	if !sandboxed {
		argv = cmd.Arguments
	}
	argv0, err := lookPath(argv[0], env, wd)
	if err != nil {
		return failed(code.Code_INVALID_ARGUMENT, "%v", err)
	}
	c := exec.CommandContext(runCtx, argv0, argv[1:]...)
	c.Args[0] = argv[0]
	c.Env, c.Dir = env, wd
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		return failed(code.Code_INTERNAL, "%v", err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		return failed(code.Code_INTERNAL, "%v", err)
	}
	defer stderr.Close()
	c.Stdout, c.Stderr = stdout, stderr
	proc.Supervise(c, syscall.SIGKILL)
	if sandboxed {
		if err := sandbox.Wrap(c, sbDir, mounts); err != nil {
			return failed(code.Code_INTERNAL, "sandbox: %v", err)
		}
	}
	st.phase("prepare")
	meta.ExecutionStartTimestamp = timestamppb.Now()
	start = time.Now()
	err = proc.Run(c)
	st.execute = time.Since(start)
	st.phase("run")
	meta.ExecutionCompletedTimestamp = timestamppb.Now()
	if ctx.Err() != nil {
		return failed(code.Code_CANCELLED, "the lease was cancelled")
	}
	res := &repb.ActionResult{ExecutionMetadata: meta}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.ExitCode = int32(exit.ExitCode())
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = 128 + int32(ws.Signal())
		}
	default:
		return failed(code.Code_INVALID_ARGUMENT, "start %s: %v", cmd.Arguments[0], err)
	}
	st.exit = int(res.ExitCode)
	timedOut := runCtx.Err() != nil

	meta.OutputUploadStartTimestamp = timestamppb.Now()
	blobs, err := collect(wd, outputs, res, slices.Contains(cmd.OutputNodeProperties, "MTime"), inputsKnown)
	if err != nil {
		return failed(code.Code_INTERNAL, "collect the outputs: %v", err)
	}
	st.phase("outputs")
	for _, s := range []struct {
		f *os.File
		d **repb.Digest
	}{{stdout, &res.StdoutDigest}, {stderr, &res.StderrDigest}} {
		d, err := reapi.DigestFile(s.f.Name())
		if err != nil {
			return failed(code.Code_INTERNAL, "%v", err)
		}
		*s.d = d
		blobs = append(blobs, reapi.Blob{Digest: d, Path: s.f.Name()})
	}
	st.uploaded, err = w.cas.UploadMissing(ctx, blobs)
	if err != nil {
		return failed(code.Code_UNAVAILABLE, "upload the outputs: %v", err)
	}
	st.phase("upload")
	// The outputs stay in the worker's cache: an heir's inputs are
	// often its parent's outputs.
	for _, b := range blobs {
		if b.Path != "" {
			w.cache.adopt(b.Digest, b.Path)
		}
	}
	st.phase("adopt")
	st.warm = rootState(root, blobs, inputsKnown)
	meta.OutputUploadCompletedTimestamp = timestamppb.Now()
	meta.WorkerCompletedTimestamp = timestamppb.Now()
	if timedOut {
		return outcome{result: res, status: &spb.Status{Code: int32(code.Code_DEADLINE_EXCEEDED), Message: fmt.Sprintf("the action ran longer than its timeout of %s", timeout)}}
	}
	return outcome{result: res, status: &spb.Status{Code: int32(code.Code_OK)}}
}

// within: p is root or below it.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// lookPath resolves a command's first argument as REAPI says: a path
// relative to the working directory when it has a slash, else through the
// PATH of the command's own environment (then the worker's).
func lookPath(name string, env []string, wd string) (string, error) {
	if strings.Contains(name, "/") {
		if filepath.IsAbs(name) {
			return name, nil
		}
		return filepath.Join(wd, name), nil
	}
	path := os.Getenv("PATH")
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if !filepath.IsAbs(d) {
			d = filepath.Join(wd, d)
		}
		p := filepath.Join(d, name)
		if info, err := os.Stat(p); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on the command's PATH (%s)", name, path)
}

// collect records the outputs that exist in res and returns the blobs
// they need: their files, and a Tree per output directory.
func collect(wd string, outputs []string, res *repb.ActionResult, mtimes bool, known map[string]knownFile) ([]reapi.Blob, error) {
	var blobs []reapi.Blob
	sort.Strings(outputs)
	for _, o := range outputs {
		p := filepath.Join(wd, filepath.FromSlash(o))
		info, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil, err
			}
			res.OutputSymlinks = append(res.OutputSymlinks, &repb.OutputSymlink{Path: o, Target: target})
		case info.IsDir():
			tree := &repb.Tree{}
			root, fs, err := treeOf(p, tree, map[string]bool{}, mtimes, known)
			if err != nil {
				return nil, err
			}
			tree.Root = root
			data, d, err := reapi.Marshal(tree)
			if err != nil {
				return nil, err
			}
			blobs = append(append(blobs, fs...), reapi.Blob{Digest: d, Data: data})
			res.OutputDirectories = append(res.OutputDirectories, &repb.OutputDirectory{Path: o, TreeDigest: d})
		case info.Mode().IsRegular():
			d, err := reapi.DigestFile(p)
			if err != nil {
				return nil, err
			}
			blobs = append(blobs, reapi.Blob{Digest: d, Path: p})
			res.OutputFiles = append(res.OutputFiles, &repb.OutputFile{Path: o, Digest: d, IsExecutable: info.Mode()&0o111 != 0})
		}
	}
	return blobs, nil
}

// treeOf builds dir's Directory message, adding its subdirectories'
// messages (each once) to tree.Children.
func treeOf(dir string, tree *repb.Tree, seen map[string]bool, mtimes bool, known map[string]knownFile) (*repb.Directory, []reapi.Blob, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	node := &repb.Directory{}
	var blobs []reapi.Blob
	for _, e := range entries { // sorted by name, as REAPI wants
		p := filepath.Join(dir, e.Name())
		info, err := os.Lstat(p)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil, nil, err
			}
			node.Symlinks = append(node.Symlinks, &repb.SymlinkNode{Name: e.Name(), Target: target})
		case info.IsDir():
			sub, fs, err := treeOf(p, tree, seen, mtimes, known)
			if err != nil {
				return nil, nil, err
			}
			_, d, err := reapi.Marshal(sub)
			if err != nil {
				return nil, nil, err
			}
			if !seen[reapi.Key(d)] {
				seen[reapi.Key(d)] = true
				tree.Children = append(tree.Children, sub)
			}
			blobs = append(blobs, fs...)
			node.Directories = append(node.Directories, &repb.DirectoryNode{Name: e.Name(), Digest: d})
		case info.Mode().IsRegular():
			d, err := digestKnown(known, p, info)
			if err != nil {
				return nil, nil, err
			}
			blobs = append(blobs, reapi.Blob{Digest: d, Path: p})
			fn := &repb.FileNode{Name: e.Name(), Digest: d, IsExecutable: info.Mode()&0o111 != 0}
			if mtimes {
				// Asked for by smelt: cargo decides what is fresh by mtimes.
				fn.NodeProperties = &repb.NodeProperties{Mtime: timestamppb.New(info.ModTime())}
			}
			node.Files = append(node.Files, fn)
		}
	}
	return node, blobs, nil
}

// knownFile is an input file as materialised: its digest, and the stat
// that says it was not touched since (ctime changes on every write and
// chmod, and cannot be set back).
type knownFile struct {
	ino, size uint64
	ctime     int64
	d         *repb.Digest
}

// knownInputs records the materialised input files under root.
func knownInputs(root string, dirs map[string]*repb.Directory, d *repb.Digest) map[string]knownFile {
	known := map[string]knownFile{}
	var walk func(dir string, d *repb.Digest)
	walk = func(dir string, d *repb.Digest) {
		node := dirs[reapi.Key(d)]
		if node == nil {
			return
		}
		for _, f := range node.Files {
			p := filepath.Join(dir, f.Name)
			var st syscall.Stat_t
			if syscall.Lstat(p, &st) == nil {
				known[p] = knownFile{ino: st.Ino, size: uint64(st.Size), ctime: st.Ctim.Nano(), d: f.Digest}
			}
		}
		for _, sub := range node.Directories {
			walk(filepath.Join(dir, sub.Name), sub.Digest)
		}
	}
	walk(root, d)
	return known
}

// digest of the file p: an input's, if untouched since, else hashed.
func digestKnown(known map[string]knownFile, p string, info os.FileInfo) (*repb.Digest, error) {
	if k, ok := known[p]; ok {
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Ino == k.ino && uint64(st.Size) == k.size && st.Ctim.Nano() == k.ctime {
			return k.d, nil
		}
	}
	return reapi.DigestFile(p)
}

// rootState records root's files after an action, by path below root: the
// outputs (blobs, hashed or known by collect) and the inputs outside them
// that the action left alone, each with the stat that says it is still
// so. Taken after the outputs were adopted into the cache (a link changes
// a file's ctime).
func rootState(root string, blobs []reapi.Blob, inputs map[string]knownFile) map[string]knownFile {
	state := map[string]knownFile{}
	for _, b := range blobs {
		if b.Path == "" || !within(root, b.Path) {
			continue
		}
		var s syscall.Stat_t
		if rel, err := filepath.Rel(root, b.Path); err == nil && syscall.Lstat(b.Path, &s) == nil {
			state[filepath.ToSlash(rel)] = knownFile{ino: s.Ino, size: uint64(s.Size), ctime: s.Ctim.Nano(), d: b.Digest}
		}
	}
	for p, k := range inputs {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			continue
		}
		rel = filepath.ToSlash(rel)
		if _, ok := state[rel]; ok {
			continue
		}
		var s syscall.Stat_t
		if syscall.Lstat(p, &s) == nil && s.Ino == k.ino && uint64(s.Size) == k.size && s.Ctim.Nano() == k.ctime {
			state[rel] = k
		}
	}
	return state
}
