package run

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"smelt/internal/cargo"
	"smelt/internal/config"
	"smelt/internal/kind"
	"smelt/internal/plan"
	"smelt/internal/skeleton"
	"smelt/internal/source"
	"smelt/internal/store"
)

// Fusing. A deps step that runs builds the dependencies on the skeleton, so
// that its key and result depend on the manifests alone. Its heirs then
// build the workspace's own code in a cargo of their own, which finds every
// dependency done and all the workspace's targets ready at once, and may
// start them in a poor order: fd-find's test step started its two tests
// before its 25 s binary (cargo --timings), 34 s where 26 s would do. In one
// cargo with the dependencies the targets become ready as their
// dependencies finish, as in a plain `cargo test`.
//
// So when a deps step runs and a heir that builds (test, package, ...) is
// to run too, the deps step lays out that heir's real source after its
// skeleton warm-ups and runs its `cargo build` warm-ups on it. Its result
// is still only the dependencies' part of target/ (see dependencyPart), the
// same units a skeleton build gives, so its key and what it means are
// unchanged. The whole target/ is kept beside it as a seed, which the steps
// after it that build the workspace's code start from as from their own
// last target/ (a warm start; see seedFor), under the same mtime rule:
// cargo rebuilds whatever the seed holds that their source does not match.

// depsCommands are the commands a deps step runs: its warm-ups, less those
// another covers, on the skeleton, then those it runs fused on a heir's
// source; and the stub wrapper that lets the stubs fail fast.
func (sr *stepRun) depsCommands(ctx context.Context, src source.Tree, cmds []cargo.Command) ([]cargo.Command, error) {
	e, n := sr.e, sr.n
	var fused []cargo.Command
	var err error
	if h := e.fusedHeir(n); h != nil {
		if cmds, fused = fuseSplit(cmds, e.fusedFor(n)); len(fused) > 0 {
			if sr.fuseSrc, err = e.stepSource(h.Step); err != nil {
				return nil, err
			}
		}
	}
	if cmds, err = sr.warmups(src, cmds, fused); err != nil {
		return nil, err
	}
	if len(fused) > 0 {
		sr.fuseAt = len(cmds)
		cmds = append(slices.Clip(cmds), fused...)
	}
	if !userWrapper(n.Step.Env) {
		// Only an optimisation: where the store cannot hold programs
		// (a noexec mount), rustc fails the stubs instead.
		w, err := program(e.p.st, "stub-rustc", []byte(skeleton.StubRustc))
		if err == nil {
			err = exec.CommandContext(ctx, w, "true").Run()
		}
		if err != nil {
			fmt.Fprintf(sr.logf, "# smelt: rustc fails the stubs (the stub wrapper cannot run: %v)\n", err)
		} else {
			sr.env = append(sr.env, "RUSTC_WORKSPACE_WRAPPER="+sr.view.program(w))
		}
	}
	return cmds, nil
}

// fuseNow turns a deps step from the skeleton to its heir's source, before
// the first command it runs fused.
func (sr *stepRun) fuseNow() error {
	var err error
	if sr.stubQ, err = sr.queryCache(); err != nil {
		return err
	}
	if sr.seedSrc, err = sr.layRealSource(sr.fuseSrc); err != nil {
		return err
	}
	sr.phase("source")
	return nil
}

// dependencyResult is what a deps step keeps of target/ t: only the
// dependencies' units, fused or not (the stubs' leftovers are nothing to
// keep), so that both give the same content and early cutoff holds between
// them; the whole target/ of a fused run is stored as its heirs' seed.
func (sr *stepRun) dependencyResult(res *Result, from *origin, t store.Tree) (store.Tree, error) {
	if sr.fused {
		var err error
		if res.Seed, err = sr.e.p.st.PutTree(from.layer, from.base, t); err != nil {
			return nil, err
		}
		res.SeedSource, res.SeedMaxMTime = sr.seedSrc, t.MaxMTime()
	}
	t = dependencyPart(t, sr.locals)
	if sr.stubQ != nil {
		// The deps step's next run starts from its result, with the
		// stub wrapper: the cache keyed by it, not by none.
		t[cargo.RustcInfo] = *sr.stubQ
	}
	return t, nil
}

// fusedHeir returns the step whose source a deps step that runs builds its
// `cargo build` warm-ups on, or nil: the first heir selected in this run
// whose own build those warm-ups are, if it has no target/ of its own to
// start from. Only then: a heir that has one rebuilds only the workspace's
// packages that the change reaches (a dependency added to one of them),
// where the deps step, whose result never holds the workspace's own units,
// would build them all.
func (e *engine) fusedHeir(n *plan.Node) *plan.Node {
	for _, h := range n.Descendants() {
		if !kind.Get(h.Step.Kind).BuildsOwn || !e.selected[h.Name()] {
			continue
		}
		if e.warmStart(h) != nil {
			return nil
		}
		return h
	}
	return nil
}

// fusible reports whether a deps step's warm-up is a build of the
// workspace's own code too when it runs on the real source.
func fusible(c cargo.Command) bool {
	return c.Program == "cargo" && len(c.Args) > 0 && c.Args[0] == "build"
}

// fusedFor tells the warm-ups of deps step n to run on the real source:
// the fusible ones that a heir selected in this run would run itself (a
// `cargo build --tests --examples` for a test step), so that none builds the
// workspace's own code for a step that will not use it.
func (e *engine) fusedFor(n *plan.Node) func(cargo.Command) bool {
	want := map[string]bool{}
	for _, h := range n.Descendants() {
		if kind.Get(h.Step.Kind).BuildsOwn && e.selected[h.Name()] {
			for _, c := range kind.Commands(n.Step, []*config.Step{h.Step}, 0, 0) {
				want[c.String()] = true
			}
		}
	}
	return func(c cargo.Command) bool { return fusible(c) && want[c.String()] }
}

// fuseSplit parts a deps step's warm-ups into those that run on the
// skeleton and those to run after them on the real source (fused), each in
// their order.
func fuseSplit(cmds []cargo.Command, fused func(cargo.Command) bool) (skel, real []cargo.Command) {
	for _, c := range cmds {
		if fused(c) {
			real = append(real, c)
		} else {
			skel = append(skel, c)
		}
	}
	return skel, real
}

// layRealSource replaces the skeleton in the deps step's source directory
// with the heir's source, every file newer than anything in target/ (the
// stubs' leftovers must be stale), and drops the stub wrapper.
func (sr *stepRun) layRealSource(src source.Tree) ([]source.FileTime, error) {
	tick, err := sr.e.mtimeTick()
	if err != nil {
		return nil, err
	}
	now := timeNow()
	times := source.MTimes(src, nil, now.UnixNano(), now, tick)
	if err := source.Layout(sr.srcDir, src, times); err != nil {
		return nil, err
	}
	sr.env = slices.DeleteFunc(sr.env, func(kv string) bool {
		return strings.HasPrefix(kv, "RUSTC_WORKSPACE_WRAPPER=")
	})
	sr.fused = true
	fmt.Fprintf(sr.logf, "\n# smelt: the builds below run on the source of the steps after this one, so that one cargo builds the dependencies and the workspace's own code; this step keeps only the dependencies' part of target/, and the rest is where its heirs start\n")
	return times, nil
}

// queryCache stores cargo's cache of its compiler queries as target/ holds
// it now, and returns its entry, or nil if there is none. Cargo keys the
// cache by the wrappers it ran with, so the fused builds, which run without
// the stub wrapper, replace the one the skeleton's builds wrote.
func (sr *stepRun) queryCache() (*store.Entry, error) {
	e, err := sr.e.p.st.PutEntry(filepath.Join(sr.targetDir, cargo.RustcInfo), cargo.RustcInfo)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// dependencyPart is what of a target/ that the workspace's own code was
// built in too belongs to the dependencies: all but the units of the
// workspace's own packages (locals), the files cargo named after those units
// in deps/, what it copied out of them (the profile directory's binaries and
// libraries, examples/) and incremental state, which only local code has.
// Cargo's cache of its compiler queries stays: the deps step starts from it
// next time (artifactsID leaves it out of the content).
func dependencyPart(t store.Tree, locals []string) store.Tree {
	ours := unitsOf(locals, nil)
	own := map[string]bool{} // the hashes of the workspace's own units
	for p := range t {
		if ours(p) {
			own[unitHash(path.Base(cargo.UnitDir(p)))] = true
		}
	}
	out := store.Tree{}
	for p, e := range t {
		if fromDependencies(t, p, e.Type == store.TypeDir, ours, own) {
			out[p] = e
		}
	}
	return out
}

func fromDependencies(t store.Tree, p string, isDir bool, ours func(string) bool, own map[string]bool) bool {
	probe := p
	if isDir {
		probe = p + "/-"
	}
	if cargo.UnitDir(probe) != "" {
		return !ours(probe)
	}
	if slices.Contains(strings.Split(path.Dir(p), "/"), "incremental") {
		return false
	}
	if isDir {
		return true
	}
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	switch path.Base(dir) {
	case "deps":
		return !own[unitHash(base)]
	case "examples":
		return false // no dependency's examples are built
	}
	if _, ok := t[path.Join(dir, ".fingerprint")]; ok {
		// A profile directory: only cargo's lock is not copied out of a unit.
		return base == ".cargo-lock"
	}
	return true
}

// unitHash returns the 16 hex digits that end a unit's name (PACKAGE-HASH,
// libCRATE-HASH.rlib, CRATE-HASH.d), or "".
func unitHash(name string) string {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		name = name[:i]
	}
	i := strings.LastIndexByte(name, '-')
	if i < 0 || len(name)-i-1 != 16 {
		return ""
	}
	return name[i+1:]
}

// seedFor is the target/ that step n starts from, as from its own last one,
// when the deps step it descends from ran fused and n's own last target/
// (own) is older than that deps result: built against other dependencies,
// or not at all. Only a step that builds the workspace's own code takes it
// (test, package, ...). Another (clippy, which checks) would carry the
// seed's build units in its artifacts to the steps after it, where, being
// inherited, they would stand over those steps' own units of the same
// crates built since from newer source, and make cargo rebuild them.
func (e *engine) seedFor(n *plan.Node, own *Result) *Result {
	if !kind.Get(n.Step.Kind).BuildsOwn {
		return nil
	}
	a := n.Parent
	for a != nil && !kind.Get(a.Step.Kind).Skeleton {
		a = a.Parent
	}
	if a == nil {
		return nil
	}
	r := e.reports[a.Name()]
	if r == nil {
		return nil
	}
	deps := r.Result
	if deps == nil || deps.Seed == "" || own != nil && !own.Created.Before(deps.Created) {
		return nil
	}
	return &Result{Result: store.Result{Artifacts: deps.Seed}, Source: deps.SeedSource, MaxMTime: deps.SeedMaxMTime}
}
