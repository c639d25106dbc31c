package run

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"smelt/internal/plan"
	"smelt/internal/source"
	"smelt/internal/store"
)

// Checking ahead. A deps step that runs fused (see fuse.go) builds the
// crate on its heirs' source after its skeleton's `cargo check`, and a
// clippy step after it waits for all of that, although it needs only what
// the check built. Cargo itself would lint while it builds (one `cargo
// clippy`, then `cargo test`, overlap nothing either, but on a first build
// a core is often idle at the end of a crate's build: linking, one last
// big crate). So while the fused builds run, the clippy step's own command
// runs ahead, in that step's working directory, on its real source and a
// copy of what the skeleton's check built. When the clippy step then runs
// for real, with its key and inputs as always, it starts from that
// target/ as from its own last one (a warm start under the mtime rule):
// cargo finds the workspace checked and replays its diagnostics, or checks
// again whatever the inherited artifacts make stale. The run ahead decides
// nothing: it is only where the real run starts.

// checksAhead are the kinds that may run ahead: they need only the
// dependencies a skeleton's `cargo check` builds.
var checksAhead = map[string]bool{"clippy": true}

// ahead is one step's run ahead.
type ahead struct {
	done   chan struct{}
	cancel context.CancelFunc
	res    *store.Result // where the step starts, or nil
	err    error         // why there is none
}

// aheadHeir returns the step that may run ahead while deps step n builds
// fused, or nil: a selected heir of n (directly: it inherits exactly n's
// result) that checks and has no target/ of its own, when more than one
// step may run at once.
func (e *engine) aheadHeir(n *plan.Node) *plan.Node {
	if cap(e.sem) < 2 {
		return nil
	}
	for _, h := range n.Children {
		if checksAhead[h.Step.Kind] && e.selected[h.Name()] && e.warmStart(h) == nil {
			return h
		}
	}
	return nil
}

// runAhead starts step h's commands over start (the dependencies' part of
// the skeleton's target/) on its source, whose files equal to the fused
// builds' source (seed) get the same times, so that both keep one rule.
func (e *engine) runAhead(ctx context.Context, h *plan.Node, start store.Tree, seed []store.SourceFile) {
	ctx, cancel := context.WithCancel(ctx)
	a := &ahead{done: make(chan struct{}), cancel: cancel}
	e.mu.Lock()
	if e.aheads == nil {
		e.aheads = map[string]*ahead{}
	}
	e.aheads[h.Name()] = a
	e.mu.Unlock()
	e.aheadWG.Add(1)
	go func() {
		defer e.aheadWG.Done()
		defer close(a.done)
		a.res, a.err = e.checkAhead(ctx, h, start, seed)
	}()
}

// awaitAhead waits for step n's run ahead, if it has one, and returns where
// it leaves the step, or nil and why not.
func (e *engine) awaitAhead(ctx context.Context, n *plan.Node) (*store.Result, error) {
	e.mu.Lock()
	a := e.aheads[n.Name()]
	e.mu.Unlock()
	if a == nil {
		return nil, nil
	}
	select {
	case <-a.done:
		return a.res, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dropAhead stops step name's run ahead, if it still runs: the step is
// done without it (cached, skipped, or run).
func (e *engine) dropAhead(name string) {
	e.mu.Lock()
	a := e.aheads[name]
	e.mu.Unlock()
	if a != nil {
		a.cancel()
	}
}

// stopAhead stops every run ahead and waits for them.
func (e *engine) stopAhead() {
	e.mu.Lock()
	for _, a := range e.aheads {
		a.cancel()
	}
	e.mu.Unlock()
	e.aheadWG.Wait()
}

func (e *engine) checkAhead(ctx context.Context, h *plan.Node, start store.Tree, seed []store.SourceFile) (*store.Result, error) {
	st, s := e.p.st, h.Step
	dir, unlock, err := e.lockWorkDir(h.Name(), false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	logDir := filepath.Join(st.Dir, "logs", e.p.id)
	logf, err := os.Create(filepath.Join(logDir, h.Name()+".ahead.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "# smelt: step %s runs ahead, while its deps step builds; its own run starts from where this leaves target/\n", h.Name())
	sr := &stepRun{e: e, n: h, r: &StepReport{}, logf: logf, srcDir: filepath.Join(dir, "src"), scratch: filepath.Join(dir, "scratch"),
		bins: map[string]string{}, binPaths: map[string]string{}, mark: time.Now()}
	sr.targetDir = filepath.Join(sr.srcDir, "target")
	src, err := e.stepSource(s)
	if err != nil {
		return nil, err
	}
	tick, err := e.mtimeTick()
	if err != nil {
		return nil, err
	}
	now := timeNow()
	times := source.MTimes(src, seed, now.UnixNano(), now, tick)
	if err := source.Layout(sr.srcDir, src, times); err != nil {
		return nil, err
	}
	if err := st.RestoreLinking(sr.targetDir, start, linkable(s.Kind)); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(sr.scratch); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(sr.scratch, 0o755); err != nil {
		return nil, err
	}
	v, err := e.p.vendor(ctx, logf)
	if err != nil {
		return nil, err
	}
	if err := writeParentConfig(dir, v.Config); err != nil {
		return nil, err
	}
	if sr.tools, err = e.tools(ctx, s); err != nil {
		return nil, err
	}
	sr.env = e.commandEnv(s, sr.targetDir)
	sr.phase("prepare")
	for _, c := range h.Commands {
		err := sr.command(ctx, c.Expand(v.Config, sr.scratch))
		sr.phase(c.Program + " " + firstArg(c.Args))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			if !isFailure(err) {
				return nil, err
			}
			// The step's own run checks again what failed here (cargo
			// keeps no fingerprint of it) and reports it.
			break
		}
	}
	t, err := st.Capture(sr.targetDir, start, start, linkable(s.Kind))
	if err != nil {
		return nil, err
	}
	id, err := st.PutTree("", nil, t)
	if err != nil {
		return nil, err
	}
	sr.phase("snapshot")
	fmt.Fprintf(logf, "\n# smelt: time: %s\n", strings.Join(sr.phases, ", "))
	return &store.Result{Step: h.Name(), Kind: s.Kind, Artifacts: id, Source: times, MaxMTime: t.MaxMTime(), Created: time.Now().UTC()}, nil
}

// withKnown is what a step restored into target/ (known) with a capture of
// it made since (mid): both are files Capture need not read again.
func withKnown(known, mid store.Tree) store.Tree {
	if mid == nil {
		return known
	}
	out := maps.Clone(mid)
	for p, e := range known {
		if _, ok := out[p]; !ok {
			out[p] = e
		}
	}
	return out
}

// errBusy: another smelt process holds the step's working directory.
var errBusy = errors.New("its working directory is in use")
