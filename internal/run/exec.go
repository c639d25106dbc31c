package run

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"smelt/internal/cargo"
	"smelt/internal/depsrc"
	"smelt/internal/kind"
	"smelt/internal/plan"
	"smelt/internal/skeleton"
	"smelt/internal/source"
	"smelt/internal/store"
)

// stepRun is one execution of a step: its directories and what its
// commands reported.
type stepRun struct {
	e         *engine
	n         *plan.Node
	r         *StepReport
	srcDir    string
	targetDir string
	scratch   string // <work>: private scratch space, emptied before each run
	logf      *os.File
	procs     *os.File // the lock every process of the step inherits (see proc.go)
	env       []string
	bins      map[string]string // binary → package
	binPaths  map[string]string // binary → path under target/
	testExes  []string          // test executables (coverage)
	tools     map[string]string // tool name → path
	locals    []string          // the workspace's own packages
	phases    []string          // where the step's time went, for its log
	kind      *kind.Spec
	fused     bool              // a deps step now building on its heirs' source (see fuse.go)
	fuseAt    int               // a deps step's first command to run on its heirs' source; -1: none
	fuseSrc   source.Tree       // that source
	seedSrc   []source.FileTime // its files' times, for the seed
	stubQ     *store.Entry      // cargo's compiler-query cache as the skeleton's builds left it
	view      view              // where its commands see its directories
	prog      *tracker          // the step's progress, from its commands' output (see progress.go)
	mark      time.Time
	key       store.Key // the step's key
	ncmd      int       // commands run so far (executor.go)
}

// phase records the time since the previous mark under name; the log ends
// with the list, so that a slow step says whether smelt or cargo was slow.
func (sr *stepRun) phase(name string) {
	now := time.Now()
	sr.phases = append(sr.phases, fmt.Sprintf("%s %.3fs", name, now.Sub(sr.mark).Seconds()))
	sr.mark = now
}

// execute runs a step that has no stored result and stores its result,
// one phase after the other (each named in the log's time line).
func (e *engine) execute(ctx context.Context, n *plan.Node, src source.Tree, in plan.Inputs, key store.Key, parent *Result, r *StepReport) (*Result, error) {
	start := time.Now()
	wl, err := e.workDir(ctx, n.Name())
	if err != nil {
		return nil, err
	}
	defer wl.release()
	sr, err := e.newStepRun(n, r, wl, src, key, start)
	if err != nil {
		return nil, err
	}
	defer sr.logf.Close()
	from, err := sr.layoutSource(src, parent)
	if err != nil {
		return nil, err
	}
	if err := sr.restore(from, parent); err != nil {
		return nil, err
	}
	if err := sr.prepare(ctx, wl.dir); err != nil {
		return nil, err
	}
	sr.setEnv()
	cmds := n.Commands
	if sr.kind.Skeleton {
		if cmds, err = sr.depsCommands(ctx, src, cmds); err != nil {
			return nil, err
		}
	}
	if err := sr.runCommands(ctx, cmds); err != nil {
		return nil, err
	}
	res := &Result{Result: store.Result{Key: key, Created: time.Now().UTC()}, Step: n.Name(), Kind: n.Step.Kind, Inputs: in, Source: from.times}
	var tree store.Tree
	if sr.kind.KeepsArtifacts {
		if tree, err = sr.snapshot(res, from, src, start); err != nil {
			return nil, err
		}
	}
	if err := sr.outputs(ctx, res, tree); err != nil {
		return nil, err
	}
	sr.phase("outputs")
	return sr.finish(res, start)
}

// newStepRun opens the step's log and sets out its directories in the
// work directory wl.
func (e *engine) newStepRun(n *plan.Node, r *StepReport, wl *workLock, src source.Tree, key store.Key, start time.Time) (*stepRun, error) {
	logDir := filepath.Join(logRoot(e.p.st), e.p.id)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	r.Log = filepath.Join(logDir, n.Name()+".log")
	logf, err := os.Create(r.Log)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "# smelt step %s (kind %s), key %s\n# why: %s\n", n.Name(), n.Step.Kind, key[:16], r.Reason)
	for _, note := range []string{wl.note, isolationNote()} {
		if note != "" {
			fmt.Fprintf(logf, "# smelt: %s\n", note)
		}
	}
	// A path dependency outside the workspace ("../lib") keeps its place
	// relative to it: the workspace then lies deeper (source.Nest).
	sr := &stepRun{e: e, n: n, r: r, kind: kind.Get(n.Step.Kind), logf: logf, procs: wl.procs,
		srcDir: source.Nest(filepath.Join(wl.dir, "src"), e.p.root, src.Depth()), scratch: filepath.Join(wl.dir, "scratch"),
		bins: map[string]string{}, binPaths: map[string]string{}, mark: start, fuseAt: -1, key: key}
	sr.prog = e.newTracker(n)
	sr.targetDir = filepath.Join(sr.srcDir, "target")
	return sr, nil
}

// layoutSource works out what the step starts from and lays out its
// source, with the times that the mtime rule gives it.
func (sr *stepRun) layoutSource(src source.Tree, parent *Result) (*origin, error) {
	locals, distinct, err := memberNames(src, sr.e.p.root)
	if err != nil {
		return nil, err
	}
	sr.locals = locals
	from, err := sr.e.startFrom(sr.n, parent, src, locals, distinct)
	if err != nil {
		return nil, err
	}
	if from.note != "" {
		fmt.Fprintf(sr.logf, "# %s\n", from.note)
	}
	if err := source.Layout(sr.srcDir, src, from.times); err != nil {
		return nil, err
	}
	sr.phase("source")
	return from, nil
}

// restore lays out target/ as the step starts from it, and a command
// step's declared outputs in its heirs' source.
func (sr *stepRun) restore(from *origin, parent *Result) error {
	st := sr.e.p.st
	if sr.kind.KeepsArtifacts {
		// Always restore, even to nothing: a step must never see a target/
		// left over from some other state of its working directory.
		if err := st.Restore(sr.targetDir, from.restored, store.RestoreOptions{Linkable: linkable(sr.n.Step.Kind)}); err != nil {
			return err
		}
		sr.phase("restore")
	}
	if parent != nil && kind.Get(parent.Kind).UserCommand && parent.Output != "" {
		// A command step's declared outputs appear in its heirs' source.
		if err := restoreInto(st, parent.Output, sr.srcDir); err != nil {
			return err
		}
	}
	return nil
}

// prepare empties the scratch directory and finds the vendored sources and
// the tools the step runs; dir is its work directory.
func (sr *stepRun) prepare(ctx context.Context, dir string) error {
	if err := os.RemoveAll(sr.scratch); err != nil {
		return err
	}
	if err := os.MkdirAll(sr.scratch, 0o755); err != nil {
		return err
	}
	vendorConfig, vendorDir := "", ""
	if sr.kind.UsesDependencies {
		v, err := sr.e.p.vendor(ctx, sr.logf)
		if err != nil {
			return err
		}
		vendorConfig, vendorDir = v.Config, v.Dir
	}
	sr.view = sr.newView(dir, vendorDir, vendorConfig)
	// Tools that cargo runs as subcommands (tarpaulin, nextest, deny) or
	// that the user runs cannot all take `--config`: a config file in a
	// parent directory of the workspace points them at the vendored sources.
	if err := writeParentConfig(dir, vendorConfig, vendorDir, sr.view.vendor); err != nil {
		return err
	}
	var err error
	if sr.tools, err = sr.e.tools(ctx, sr.n.Step); err != nil {
		return err
	}
	sr.phase("prepare")
	return nil
}

// setEnv sets the environment every command of the step runs with.
func (sr *stepRun) setEnv() {
	s := sr.n.Step
	sr.env = append(stepEnv(s.Toolchain),
		"CARGO_TARGET_DIR="+sr.view.target,
		"CARGO_TERM_COLOR=never",
		"CARGO_NET_OFFLINE=true",
		"NO_COLOR=1", // logs are files: no escape codes (tarpaulin, nextest)
	)
	if sr.e.jobs != nil {
		sr.env = append(sr.env, sr.e.jobs.env())
	}
	for _, k := range sortedKeys(s.Env) {
		sr.env = append(sr.env, k+"="+s.Env[k])
	}
}

// runCommands runs the step's commands in order; a deps step lays out its
// heirs' source before the first of those it runs fused (see fuse.go).
// On an executor, the commands between two such points run as one action
// (see batch), which costs the engine's fixed time per action once.
func (sr *stepRun) runCommands(ctx context.Context, cmds []cargo.Command) error {
	for i := 0; i < len(cmds); {
		if i == sr.fuseAt {
			if err := sr.fuseNow(); err != nil {
				return err
			}
		}
		if sr.e.exec != nil {
			j := len(cmds)
			if sr.fuseAt > i {
				j = sr.fuseAt
			}
			var expanded []cargo.Command
			for _, c := range cmds[i:j] {
				expanded = append(expanded, c.Expand(sr.view.vendorConfig, sr.view.scratch))
			}
			if j-i > 1 {
				if err := sr.batch(ctx, expanded); err != errLocal {
					if err != nil {
						return err
					}
					i = j
					continue
				}
			}
		}
		c := cmds[i]
		if err := sr.command(ctx, c.Expand(sr.view.vendorConfig, sr.view.scratch)); err != nil {
			return err
		}
		sr.phase(c.Program + " " + firstArg(c.Args))
		i++
	}
	return nil
}

// snapshot stores the step's target/ as a layer over what it started
// from, and returns its tree.
func (sr *stepRun) snapshot(res *Result, from *origin, src source.Tree, start time.Time) (store.Tree, error) {
	st := sr.e.p.st
	if err := sortDepInfo(sr.targetDir, start); err != nil {
		return nil, err
	}
	o := store.SnapshotOptions{Parent: from.layer, Base: from.base, Known: from.restored, Linkable: linkable(sr.n.Step.Kind)}
	if sr.kind.Skeleton {
		o.Keep = func(t store.Tree) (store.Tree, error) { return sr.dependencyResult(res, from, t) }
	}
	id, t, err := st.Snapshot(sr.targetDir, o)
	if err != nil {
		return nil, err
	}
	res.Artifacts, res.ArtifactsID, res.MaxMTime = id, artifactsID(t), t.MaxMTime()
	if !sr.kind.UserCommand {
		// A user's command may have written anything into target/.
		res.DepsID = depsID(t, sr.locals, src)
	}
	sr.phase("snapshot")
	return t, nil
}

// finish ends the log with the step's time line, stores the log and saves
// the result.
func (sr *stepRun) finish(res *Result, start time.Time) (*Result, error) {
	st := sr.e.p.st
	fmt.Fprintf(sr.logf, "\n# smelt: time: %s\n", strings.Join(sr.phases, ", "))
	sr.logf.Sync()
	if data, err := os.ReadFile(sr.r.Log); err == nil {
		if res.Log, err = st.PutBytes(data); err != nil {
			return nil, err
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.Units = sr.prog.units()
	if err := st.SaveResult(res); err != nil {
		return nil, err
	}
	return res, nil
}

// artifactsID is the content identity of a target/ for early cutoff: all
// but two caches, which stay in the artifacts but not in the keys after
// them. Cargo's cache of its compiler queries is keyed by the wrappers its
// last command ran with (a deps step's stub wrapper, or none when it ran
// fused), and cargo checks it before it uses it: a step that starts from
// it asks rustc nothing again when its wrappers are the same. rustc's
// incremental state (dev profiles) is named by time and a random number,
// so no two builds share it; rustc checks it against its inputs before
// using any of it and builds the same code without it, which is what a
// warm start already relies on.
func artifactsID(t store.Tree) store.ContentID {
	drop := func(p string) bool { return p == cargo.RustcInfo || cargo.IsIncremental(p) }
	for p := range t {
		if drop(p) {
			t = maps.Clone(t)
			maps.DeleteFunc(t, func(p string, _ store.Entry) bool { return drop(p) })
			break
		}
	}
	return t.ContentID()
}

// depsID is the content identity of the dependencies' part of a target/
// (see inputs), less the units of packages that the lock file no longer
// names: a warm start keeps them (cargo never deletes a unit), and no build
// of this lock file can use them, so a store that once had a dependency
// must not key differently from one that never had it.
func depsID(t store.Tree, locals []string, src source.Tree) store.ContentID {
	drop := locals
	if lock, ok := src.Get("Cargo.lock"); ok {
		if names, err := depsrc.PackageNames(lock.Data); err == nil {
			seen := map[string]bool{}
			for p := range t {
				if name := cargo.UnitPackage(p); name != "" && !names[name] && !seen[name] {
					seen[name] = true
					drop = append(slices.Clip(drop), name)
				}
			}
		}
	}
	return artifactsID(dependencyPart(t, drop))
}

// warmups leaves out the deps step's skeleton warm-ups (cmds) that another
// one covers, on the skeleton or among those run fused: in a workspace
// without dev-dependencies, `cargo build --tests` builds every dependency
// unit that `cargo build` would. The skeleton is part of the step's key, so
// what the dependencies' part of target/ holds stays a function of the key.
func (sr *stepRun) warmups(src source.Tree, cmds, fused []cargo.Command) ([]cargo.Command, error) {
	dev, err := skeleton.HasDevDependencies(src.Map())
	if err != nil {
		return nil, fmt.Errorf("read the manifests in %s: %w", sr.e.p.root, err)
	}
	if dev {
		return cmds, nil
	}
	kept, dropped := cargo.DropCoveredBuilds(cmds, fused)
	for _, c := range dropped {
		fmt.Fprintf(sr.logf, "# smelt: not run, as no package has dev-dependencies and `cargo build --tests` builds the same dependencies: %s\n", c)
	}
	return kept, nil
}

// userWrapper reports whether a step's environment names a rustc wrapper
// of its own. The deps step then keeps it and leaves its stubs to rustc:
// a wrapper such as sccache takes the one after it for the compiler.
func userWrapper(env map[string]string) bool {
	for _, k := range []string{"RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER", "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER"} {
		if env[k] != "" {
			return true
		}
	}
	return false
}

// origin is what a step starts from.
type origin struct {
	layer    store.LayerID     // the layer its own is a delta over
	base     store.Tree        // that layer's tree
	restored store.Tree        // what target/ holds when cargo starts
	times    []source.FileTime // the source files' mtimes (the mtime rule)
	note     string            // for the log
}

// startFrom works out what a step starts from: the artifacts it inherits
// or, for a warm start, its own target/ of its last success with those laid
// over it, as cargo would from a target/ it has used before; and the source
// times that keep every artifact built from other source stale. Only
// cargo's own freshness checks make a warm start sound: a user's command
// could read anything left in target/.
func (e *engine) startFrom(n *plan.Node, parent *Result, src source.Tree, locals []string, distinct map[string]bool) (*origin, error) {
	st, k := e.p.st, kind.Get(n.Step.Kind)
	tick, err := e.mtimeTick()
	if err != nil {
		return nil, err
	}
	o := &origin{}
	var (
		prevSource []source.FileTime
		newest     int64
	)
	if parent != nil && parent.Artifacts != "" {
		if o.base, err = st.Flatten(parent.Artifacts); err != nil {
			return nil, err
		}
		o.layer, prevSource, newest = parent.Artifacts, parent.Source, parent.MaxMTime
		if parent.Seed != "" {
			// A fused deps step: its artifacts hold none of the
			// workspace's units, so any times are safe for them, and
			// those the seed was built with keep the seed's units fresh
			// in the steps after this one that start from it.
			prevSource = parent.SeedSource
		}
	}
	o.restored = o.base
	var ownTree store.Tree
	own := e.warmStart(n)
	what := "its own target/ of its last success"
	if seed := e.seedFor(n, own); seed != nil {
		own, what = seed, "the target/ its deps step built the workspace's own code in"
	}
	if own != nil && k.KeepsArtifacts && !k.UserCommand {
		if ownTree, err = st.Flatten(own.Artifacts); err != nil {
			// A warm start is an optimisation: start from what it inherits
			// (and drop what the damage, if it is, spoilt).
			e.damage(err)
			o.note = fmt.Sprintf("no warm start: %v", err)
			own = nil
		}
	} else {
		own = nil
	}
	if own == nil {
		o.times = source.MTimes(src, prevSource, newest, timeNow(), tick)
		return o, nil
	}
	o.note = fmt.Sprintf("warm start: %s (%d files) under what it inherits (%d files)", what, len(ownTree), len(o.base))
	if parent == nil {
		// A root step's artifacts are all its own: it starts from them
		// as from a parent's, and its layer is a delta over them.
		o.layer, o.base, o.restored = own.Artifacts, ownTree, ownTree
		o.times = source.MTimes(src, own.Source, own.MaxMTime, timeNow(), tick)
		return o, nil
	}
	o.restored = store.Overlay(ownTree, o.base, cargo.UnitDir)
	// Cargo's cache of its compiler queries: the step's own, not the one
	// it inherits. Cargo keys it by the compiler and the wrappers it runs
	// with, and the parent ran other ones (clippy-driver, the deps step's
	// stub wrapper), so the inherited cache would send every run of the
	// step back to rustc (about 40 ms); cargo checks the one it finds.
	if e, ok := ownTree[cargo.RustcInfo]; ok {
		o.restored[cargo.RustcInfo] = e
	}
	// Only the workspace's own units were built from its source files; a
	// dependency's never depend on them.
	ours := unitsOf(locals, nil)
	parentOurs := ours
	if kind.Get(parent.Kind).Skeleton {
		// The skeleton's units of a package whose version it masks are
		// not the real build's: they bound nothing.
		parentOurs = unitsOf(locals, distinct)
	}
	var ownUnits []int64
	for p, ent := range o.restored {
		if _, fromParent := o.base[p]; !fromParent && ent.Type != store.TypeDir && ours(p) {
			ownUnits = append(ownUnits, ent.MTime)
		}
	}
	slices.Sort(ownUnits)
	o.times = source.MTimesOver(src, prevSource, o.base.NewestWhere(parentOurs), own.Source, ownUnits, tick)
	return o, nil
}

// unitsOf tells the paths under target/ that lie in a unit directory of one
// of the packages named, except those in skip.
func unitsOf(names []string, skip map[string]bool) func(string) bool {
	set := map[string]bool{}
	for _, n := range names {
		set[n] = !skip[n]
	}
	return func(p string) bool { return set[cargo.UnitPackage(p)] }
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// linkable says which files of target/ may be hard links into the store:
// compiled crates, which rustc replaces and never rewrites (cargo.Replaced);
// nothing for a user's command, which may write anything in place.
func linkable(k string) func(string) bool {
	if kind.Get(k).UserCommand {
		return nil
	}
	return cargo.Replaced
}

// writeParentConfig writes (or removes) dir/.cargo/config.toml with the
// vendored sources' configuration, with the path of the vendored crates as
// the step's commands see it (from → to).
func writeParentConfig(dir, vendorConfig, from, to string) error {
	p := filepath.Join(dir, ".cargo", "config.toml")
	if vendorConfig == "" {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	data, err := os.ReadFile(vendorConfig)
	if err != nil {
		return err
	}
	if from != to {
		data = []byte(strings.ReplaceAll(string(data), from, to))
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

// restoreInto copies an output layer's files into dir, over what it holds.
func restoreInto(st *store.Store, layer store.LayerID, dir string) error {
	t, err := st.Flatten(layer)
	if err == nil {
		err = st.Restore(dir, t, store.RestoreOptions{Over: true})
	}
	if err != nil {
		return fmt.Errorf("restore outputs into %s: %w", dir, err)
	}
	return nil
}

// command runs one command of the step, logging its output.
func (sr *stepRun) command(ctx context.Context, c cargo.Command) error {
	c = withMessages(sr.n.Step.Kind, c)
	fmt.Fprintf(sr.logf, "\n$ %s\n", c.String())
	argv := append([]string{c.Program}, c.Args...)
	if kind.Get(sr.n.Step.Kind).UserCommand {
		// The user's command runs with the network off where the kernel
		// lets smelt take it away.
		argv = append(netOff(), argv...)
	}
	stdout, errLines, flush := sr.streams(c.JSON)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = sr.srcDir
	cmd.Env = append(append([]string{}, sr.env...), envList(c.Env)...)
	cmd.Stdout, cmd.Stderr = stdout, io.MultiWriter(errLines, &stderr)
	supervise(cmd, sr.procs)
	if err := sr.view.wrap(cmd); err != nil {
		return err
	}
	err := errLocal
	if sr.e.exec != nil {
		// On the engine, with the same command line and environment; the
		// local jobserver is not held while it runs there.
		err = sr.remote(ctx, argv, cmd.Env, stdout, io.MultiWriter(errLines, &stderr))
	}
	if err == errLocal {
		release := func() {}
		if sr.e.jobs != nil {
			// The process's implicit token (see jobserver).
			var err error
			if release, err = sr.e.jobs.acquire(ctx); err != nil {
				return err
			}
		}
		err = runSupervised(cmd)
		release()
		if ctx.Err() != nil {
			// Whatever cargo left behind (a rustc, a linker) must not outlive
			// the step: it would race the next run in the same target/.
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	flush()
	return sr.commandEnd(ctx, c, stderr.String(), err)
}

// commandEnd handles how command c ended (err, with its stderr): nil, a
// failure the step accepts (the deps step's stubs), or the step's failure.
func (sr *stepRun) commandEnd(ctx context.Context, c cargo.Command, stderr string, err error) error {
	if err == nil {
		return nil
	}
	if kind.Get(sr.n.Step.Kind).Skeleton && !sr.fused && skeleton.OnlyStubsFailed(stderr, sr.locals) {
		fmt.Fprintf(sr.logf, "# smelt: only the skeleton's stubs failed, as they must: every dependency is built\n")
		keepRemote(err)
		return nil
	}
	if sr.fused && skeleton.OnlyOwnFailed(stderr, sr.locals) {
		fmt.Fprintf(sr.logf, "# smelt: only the workspace's own code failed to build: every dependency is built, and the steps after this one report the errors\n")
		keepRemote(err)
		return nil
	}
	sr.r.Tail = tail(sr.r.Log, 25)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sr.failure(c, stderr, err); kind.Get(sr.n.Step.Kind).RunsTests && missingFile(sr.r.Log) {
		return fmt.Errorf("%w (tests see only the cleaned source: Rust files, manifests, tests/, benches/, examples/ and fixture directories; if they read other files, add them to the step with include = [\"GLOB\"])", err)
	} else {
		return err
	}
}

// missingFile reports whether a failed step's log says a file was not
// found: likely one the cleaned source left out.
func missingFile(logPath string) bool {
	data, _ := os.ReadFile(logPath)
	return bytes.Contains(data, []byte("No such file or directory")) || bytes.Contains(data, []byte("does not exist")) ||
		bytes.Contains(data, []byte("NotFound"))
}

// failure turns a command's failure into one sentence.
func (sr *stepRun) failure(c cargo.Command, stderr string, err error) error {
	if ee, ok := err.(interface{ ExitCode() int }); !ok {
		if c.Program != "cargo" {
			return failed("cannot run `%s`: %v", c.Program, err)
		}
		return failed("cannot run cargo: %v", err)
	} else if t := sr.n.Step.Target; t != "" && (strings.Contains(stderr, "can't find crate for `std`") || strings.Contains(stderr, "can't find crate for `core`")) {
		tc := sr.n.Step.Toolchain
		if tc != "" {
			tc = " --toolchain " + tc
		}
		return failed("the standard library for target %s is not installed: run `rustup target add %s%s`", t, t, tc)
	} else if rel := sr.unseenFile(stderr); rel != "" {
		return failed("the build reads %s, which smelt left out of the step's source (it cannot tell that the build reads it): add it to smelt.toml, e.g. include = [%q] in [common]", rel, rel)
	} else if msg := cargo.Explain(stderr); msg != "" {
		return failed("%s", msg)
	} else if c.Program == "cargo" && len(c.Args) > 0 {
		if hint := missingSubcommand(stderr, c.Args[0]); hint != "" {
			return failed("%s", hint)
		}
		if h := cargo.Headline(stderr); h != "" {
			if strings.Contains(stderr, "failed to run custom build command") && (strings.Contains(stderr, "NotFound") || strings.Contains(stderr, "No such file or directory")) {
				return failed("`cargo %s` failed: %s: a build script did not find a file; the build sees only the cleaned source (Rust files, manifests, tests/, benches/, examples/, fixture directories): add what it reads to smelt.toml with include = [\"GLOB\"]", c.Args[0], sr.inProject(h))
			}
			return failed("`cargo %s` failed: %s", c.Args[0], sr.inProject(h))
		}
		return failed("`cargo %s` exited with status %d", c.Args[0], ee.ExitCode())
	} else {
		return failed("`%s` exited with status %d", c.Program, ee.ExitCode())
	}
}

// reCouldntRead is rustc's error for a file include_str!/include_bytes!
// (or a #[path] module) names that is not there.
var reCouldntRead = regexp.MustCompile("couldn't read `([^`]+)`")

// unseenFile returns the path, relative to the workspace, of a file the
// build failed to read because the cleaned source left it out: one that
// exists in the project but not in the step's copy of it.
func (sr *stepRun) unseenFile(stderr string) string {
	for _, m := range reCouldntRead.FindAllStringSubmatch(stderr, -1) {
		// rustc names the file as the step's commands see it (the sandbox's
		// fixed path).
		rel, err := filepath.Rel(sr.view.src, m[1])
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		if _, err := os.Stat(filepath.Join(sr.e.p.root, rel)); err == nil {
			return filepath.ToSlash(rel)
		}
	}
	return ""
}

// reSkeletonAt is where an error points into a manifest of the deps step's
// skeleton, whose lines are not the user's.
var reSkeletonAt = regexp.MustCompile(` at (\S*Cargo\.toml):\d+:\d+`)

// inProject rewrites a message about the step's copy of the project to
// name the project's own files.
func (sr *stepRun) inProject(msg string) string {
	if kind.Get(sr.n.Step.Kind).Skeleton && !sr.fused {
		msg = reSkeletonAt.ReplaceAllString(msg, " in $1")
	}
	if sr.view.src != "" && sr.view.src != sr.srcDir {
		msg = strings.ReplaceAll(msg, sr.view.src, sr.e.p.root)
	}
	return strings.ReplaceAll(msg, sr.srcDir, sr.e.p.root)
}

// missingSubcommand recognises cargo's answer for a subcommand that is not
// installed.
func missingSubcommand(stderr, sub string) string {
	if !strings.Contains(stderr, "no such command: `"+sub+"`") {
		return ""
	}
	return fmt.Sprintf("cargo %s is not installed: install it with `cargo install --locked cargo-%s`", sub, sub)
}

func envList(m map[string]string) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, k+"="+m[k])
	}
	return out
}

// outputs records what the step produced besides target/: binaries, HTML,
// reports, a summary.
func (sr *stepRun) outputs(ctx context.Context, res *Result, tree store.Tree) error {
	st, s := sr.e.p.st, sr.n.Step
	out := &store.Layer{Entries: []store.Entry{}}
	switch kind.Get(s.Kind).Output {
	case kind.Binaries:
		res.Bins = sr.bins
		for _, name := range sortedKeys(sr.binPaths) {
			ent, ok := tree[sr.binPaths[name]]
			if !ok {
				return fmt.Errorf("cargo reported binary %s at target/%s, but it is not there", name, sr.binPaths[name])
			}
			ent.Path = "bin/" + name
			out.Entries = append(out.Entries, ent)
		}
		res.Summary = fmt.Sprintf("%d binaries", len(sr.binPaths))
	case kind.DocHTML:
		prefix := cargo.DocDir(s) + "/"
		for _, ent := range tree.Sorted() {
			if rest, ok := strings.CutPrefix(ent.Path, prefix); ok {
				ent.Path = path.Join("doc", rest)
				out.Entries = append(out.Entries, ent)
			}
		}
	case kind.TestCounts:
		if data, err := os.ReadFile(sr.r.Log); err == nil {
			res.Summary = kind.Get(s.Kind).Summary(data)
		}
	case kind.LLVMCoverage:
		return sr.coverage(ctx, res)
	case kind.TarpaulinReport:
		return sr.tarpaulin(res)
	case kind.Declared:
		return sr.commandOutputs(res, tree)
	}
	if len(out.Entries) > 0 {
		var err error
		if res.Output, err = st.PutLayer(out); err != nil {
			return err
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// packageName extracts the name from a cargo package id, either
// "path+file:///ws/app#0.3.0" or "path+file:///ws/x#app@0.3.0".
func packageName(id string) string {
	url, frag, _ := strings.Cut(id, "#")
	if name, _, ok := strings.Cut(frag, "@"); ok {
		return name
	}
	url = strings.TrimRight(url, "/")
	return url[strings.LastIndex(url, "/")+1:]
}

func atoi(b []byte) int {
	n, _ := strconv.Atoi(string(b))
	return n
}

// keepRemote keeps an expected failure of a command that ran on the
// executor in its action cache.
func keepRemote(err error) {
	if ex, ok := err.(remoteExit); ok && ex.keep != nil {
		ex.keep()
	}
}
