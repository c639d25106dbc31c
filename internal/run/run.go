// Package run executes a graph of steps: each step's key is computed from
// its inputs, a stored result is reused when the key matches, and otherwise
// the step runs cargo in its own working directory over the artifacts it
// inherits, and its new artifacts are stored as a layer.
package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"smelt/internal/config"
	"smelt/internal/key"
	"smelt/internal/kind"
	"smelt/internal/plan"
	"smelt/internal/sandbox"
	"smelt/internal/source"
	"smelt/internal/store"
)

// timeNow is the clock for the mtime rule.
var timeNow = time.Now

// Status is how a step ended.
type Status int

// The ways a step can end.
const (
	Cached Status = iota
	Built
	Failed
	Skipped
	Pulled // its result came from a remote cache
)

func (s Status) String() string {
	return [...]string{"cached", "built", "failed", "skipped", "pulled"}[s]
}

// StepReport is what happened to one step.
type StepReport struct {
	Name    string
	Kind    string
	Status  Status
	Reason  string // why it ran, or why it was skipped
	Err     error  // why it failed
	Log     string // path of the full log
	Tail    []string
	Seconds float64
	Result  *Result

	key     store.Key // the step's key, once known
	damaged bool      // it (or what it inherits from) met a damaged store entry: built again in a next pass
}

// Report is what happened to every selected step, in graph order.
type Report struct {
	Steps []*StepReport
	// Bytes the remote caches sent and received (on the wire), the
	// requests they were sent, and what pushing did.
	Down, Up int64
	Requests int64
	Pushed   Pushed
}

// Failed reports whether any step failed or was skipped.
func (r *Report) Failed() bool {
	for _, s := range r.Steps {
		if s.Status == Failed || s.Status == Skipped {
			return true
		}
	}
	return false
}

// Step returns the report of the named step.
func (r *Report) Step(name string) *StepReport {
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Observer hears about steps as they start, progress and end (the UI).
// Its methods are called one at a time.
type Observer interface {
	Started(name, kind, reason string)
	// Progress: what a running step has done so far, each time it changes.
	Progress(name string, p Progress)
	// Output: a line a running step's command printed (its log's lines,
	// without cargo's JSON messages).
	Output(name, line string)
	Finished(r *StepReport)
}

// Options configure a run.
type Options struct {
	Store    *store.Store
	Jobs     int  // steps running at once; 0 means 1
	FailFast bool // stop everything at the first failure
	// Executor, when set (grpc://HOST:PORT[/INSTANCE]), is a Remote
	// Execution engine that runs the steps' commands (see executor.go).
	Executor string
	Observer Observer
	// Finish, if not nil, runs after the steps, under the store's lock
	// (e.g. linking the output). A damaged store entry it meets
	// (store.ErrDamaged) is dropped with what was built from it, and the
	// steps run again to rebuild it, as for one a step meets.
	Finish  func(*Report) error
	Remotes *Remotes // remote caches (nil: none)
}

// maxPasses bounds how often a run starts over after finding store damage
// (each pass drops what it found, so each finds new damage or none).
const maxPasses = 4

// Run runs the named steps of cfg (and the steps they inherit from) for the
// workspace at root.
func Run(ctx context.Context, root string, cfg *config.Config, names []string, opt Options) (*Report, error) {
	unlock, err := opt.Store.Lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	nodes, p, err := prepare(ctx, root, cfg, names, opt.Store)
	if err != nil {
		return nil, err
	}
	// A project in use keeps its working directories through gc.
	now := time.Now()
	os.Chtimes(filepath.Join(WorkRoot(opt.Store), p.id), now, now)
	jobs := opt.Jobs
	if jobs < 1 {
		jobs = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	js, err := newJobserver(opt.Store)
	if err != nil {
		return nil, err
	}
	defer js.close()
	e := &engine{p: p, opt: opt, sem: make(chan struct{}, jobs), cancel: cancel, jobs: js, selected: map[string]bool{}, reported: map[string]string{}}
	if opt.Executor != "" {
		if e.exec, err = newExecutor(opt.Executor); err != nil {
			return nil, err
		}
		defer e.exec.close()
	}
	for _, n := range nodes {
		e.selected[n.Name()] = true
	}
	rep, err := e.passes(ctx, nodes)
	if rep != nil {
		e.pushResults(ctx, rep)
		if opt.Remotes != nil {
			rep.Down, rep.Up = opt.Remotes.Bytes()
			rep.Requests = opt.Remotes.Requests()
		}
	}
	return rep, err
}

// passes runs the graph until no pass finds store damage.
func (e *engine) passes(ctx context.Context, nodes []*plan.Node) (*Report, error) {
	opt := e.opt
	for pass := 1; ; pass++ {
		rep := e.pass(ctx, nodes)
		damaged := false
		for _, r := range rep.Steps {
			damaged = damaged || r.damaged
		}
		if !damaged && opt.Finish != nil && ctx.Err() == nil {
			err := opt.Finish(rep)
			if !e.damage(err) || pass == maxPasses {
				return rep, err
			}
			damaged = true
		}
		if !damaged || pass == maxPasses || ctx.Err() != nil {
			for _, r := range rep.Steps {
				if r.damaged && !e.quiet(r) {
					e.report(r) // left unreported in the hope of a rebuild
				}
			}
			return rep, nil
		}
		e.prior = map[string]*StepReport{}
		for _, r := range rep.Steps {
			e.prior[r.Name] = r
		}
	}
}

// pass runs the graph once.
func (e *engine) pass(ctx context.Context, nodes []*plan.Node) *Report {
	reports := map[string]*StepReport{}
	e.reports = reports
	rep := &Report{}
	done := map[string]chan struct{}{}
	for _, n := range nodes {
		done[n.Name()] = make(chan struct{})
		reports[n.Name()] = &StepReport{Name: n.Name(), Kind: n.Step.Kind}
		rep.Steps = append(rep.Steps, reports[n.Name()])
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func(n *plan.Node) {
			defer wg.Done()
			defer close(done[n.Name()])
			r := reports[n.Name()]
			var parent *Result
			if n.Parent != nil {
				<-done[n.Parent.Name()]
				pr := reports[n.Parent.Name()]
				if pr.Status == Failed || pr.Status == Skipped {
					r.Status, r.Reason, r.damaged = Skipped, n.Parent.Name()+" "+pr.Status.String(), pr.damaged
					e.finished(r)
					return
				}
				parent = pr.Result
			}
			e.step(ctx, n, parent, r)
		}(n)
	}
	wg.Wait()
	return rep
}

// prepare selects the named steps (and what they inherit from) and
// identifies the project.
func prepare(ctx context.Context, root string, cfg *config.Config, names []string, st *store.Store) ([]*plan.Node, *project, error) {
	g, err := plan.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	// Whether steps run in a sandbox enters every key: find out while
	// the project is read.
	go sandbox.Available()
	nodes, err := g.Select(names)
	if err != nil {
		return nil, nil, err
	}
	p, err := newProject(ctx, st, root)
	if err != nil {
		return nil, nil, err
	}
	return nodes, p, nil
}

type engine struct {
	p      *project
	opt    Options
	sem    chan struct{}
	cancel context.CancelFunc
	jobs   *jobserver
	exec   *executor // nil: commands run here
	mu     sync.Mutex

	selected map[string]bool // the steps this run is to bring up to date
	// Each step's report, filled in before the steps after it start (they
	// wait for it): a step may read those of the steps it descends from.
	reports map[string]*StepReport
	// After store damage the steps run again (see Run): what the last
	// pass reported, and how each report was told to the observer.
	prior    map[string]*StepReport
	reported map[string]string
	warned   map[string]bool
	dropped  bool // damage dropped results in this run (see damage)

	toolsMu    sync.Mutex
	toolsCache map[string]map[string]string // by kind and toolchain

	sandboxOnce sync.Once
	sandbox     bool // steps run in a sandbox (see view)

	tickOnce sync.Once
	tick     time.Duration
	tickErr  error
}

// mtimeTick is the mtime granularity of the working directories' file
// system (source.Tick), probed once per run and only if a step runs.
func (e *engine) mtimeTick() (time.Duration, error) {
	e.tickOnce.Do(func() {
		dir := WorkRoot(e.p.st)
		if e.tickErr = os.MkdirAll(dir, 0o755); e.tickErr == nil {
			e.tick, e.tickErr = source.Tick(dir)
		}
	})
	return e.tick, e.tickErr
}

func (e *engine) finished(r *StepReport) {
	if r.damaged {
		return // built again in the next pass
	}
	if r.Status == Failed && e.opt.FailFast {
		e.cancel()
	}
	if !e.quiet(r) {
		e.report(r)
	}
}

// quiet reports whether r was already told, as is, in an earlier pass.
func (e *engine) quiet(r *StepReport) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reported[r.Name] == r.signature()
}

func (e *engine) report(r *StepReport) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reported[r.Name] = r.signature()
	if e.opt.Observer != nil {
		e.opt.Observer.Finished(r)
	}
}

func (e *engine) started(n *plan.Node, reason string) {
	if e.opt.Observer != nil {
		e.mu.Lock()
		e.opt.Observer.Started(n.Name(), n.Step.Kind, reason)
		e.mu.Unlock()
	}
}

// stepSource is the tree a step sees: the skeleton for deps, else the
// cleaned source.
func (e *engine) stepSource(s *config.Step) (source.Tree, error) {
	if kind.Get(s.Kind).Skeleton {
		return e.p.skeleton(s.Include, s.Exclude)
	}
	return e.p.source(s.Include, s.Exclude)
}

// inputs are the named parts of the step's key.
func (e *engine) inputs(ctx context.Context, n *plan.Node, src source.Tree, parent *Result) (plan.Inputs, error) {
	v := plan.StepValues(n)
	v.Source = src.Hash()
	tc, err := e.p.toolchain(ctx, n.Step.Toolchain)
	if err != nil {
		return nil, err
	}
	v.Toolchain = tc.ID
	tools, err := e.tools(ctx, n.Step)
	if err != nil {
		return nil, err
	}
	v.Tools = tools[""]
	v.CargoConfig = e.p.cargoConfig
	v.Paths = e.pathsID()
	if kind.Get(n.Step.Kind).UsesDependencies {
		id, err := e.p.vendorID()
		if err != nil {
			return nil, err
		}
		v.UsesDependencies, v.Vendor = true, id
	}
	if n.Parent != nil {
		v.Inherits, v.Artifacts = true, string(parent.ArtifactsID)
		if parent.DepsID != "" && !kind.Get(n.Step.Kind).UserCommand {
			// A step that runs cargo keys on the dependencies' part of what
			// it inherits, not on the workspace's own units there: those
			// are a step's local history (its warm start's units, stale or
			// never used, a fused deps step's seed), and cargo rebuilds any
			// that the step's source leaves stale (the mtime rule), so its
			// result is the same whichever it inherits. A user's command
			// could read them: it keys on all of target/.
			v.Artifacts = string(parent.DepsID)
		}
		if !kind.Get(n.Parent.Step.Kind).KeepsArtifacts {
			v.Artifacts = "none"
		}
	}
	return key.New(v), nil
}

// state is what smelt remembers of a step's last success in this project,
// to explain the next rebuild.
type state struct {
	Key    store.Key         `json:"key"`
	Inputs plan.Inputs       `json:"inputs"`
	Files  map[string]string `json:"files"`
	Failed bool              `json:"failed,omitempty"`
	// LastGood is the key of the step's last success here: a step with
	// no inherited artifacts starts from its target/ (see warmStart).
	LastGood store.Key `json:"last_good,omitempty"`
}

func (e *engine) readState(name string) *state {
	var s state
	if err := e.p.st.ReadJSON(e.stateRel(name), &s); err != nil {
		return nil
	}
	return &s
}

// warmStart is the result a step without inherited artifacts starts from:
// its own last success in this project. cargo then rebuilds only what
// changed (a dependency added: that dependency), as it would in the user's
// own target/. This is sound because cargo's fingerprints decide freshness
// from the target/ itself, and the mtime rule holds against that result's
// source; the step's output may then carry stale extra files, never wrong ones.
func (e *engine) warmStart(n *plan.Node) *Result {
	s := e.readState(n.Name())
	if s == nil || s.LastGood == "" {
		return nil
	}
	r, err := lookupResult(e.p.st, s.LastGood)
	if err != nil || r == nil || r.Artifacts == "" {
		return nil
	}
	return r
}

func (e *engine) stateRel(name string) string {
	return filepath.Join("state", "projects", e.p.id, name+".json")
}

func fileMap(t source.Tree) map[string]string {
	m := make(map[string]string, len(t))
	for _, f := range t {
		m[f.Path] = f.Hash
	}
	return m
}

// Why explains what a step's next run would do.
func (e *engine) why(n *plan.Node, in plan.Inputs, src source.Tree) string {
	old := e.readState(n.Name())
	if old == nil {
		return plan.Explain(nil, in, nil, nil)
	}
	if old.Failed && old.Key == store.Key(in.Key()) {
		return "it failed last time, with the same inputs (failures are not cached)"
	}
	why := plan.Explain(old.Inputs, in, old.Files, fileMap(src))
	if old.Failed {
		why += ", since it failed last time"
	}
	return why
}

func (e *engine) step(ctx context.Context, n *plan.Node, parent *Result, r *StepReport) {
	fail := func(err error) {
		r.Status, r.Err = Failed, err
	}
	// Report before giving the slot to the next step, so the output reads
	// in the order things happened.
	acquired := false
	defer func() {
		e.finished(r)
		if acquired {
			<-e.sem
		}
	}()
	src, err := e.stepSource(n.Step)
	if err != nil {
		fail(err)
		return
	}
	in, err := e.inputs(ctx, n, src, parent)
	if err != nil {
		fail(err)
		return
	}
	key := store.Key(in.Key())
	r.key = key
	if p := e.prior[n.Name()]; p != nil && p.Status == Failed && !p.damaged && p.key == key {
		// It failed in the pass before this one, with the same inputs:
		// failures are not cached, but it is not run twice in one run.
		*r = *p
		return
	}
	pulled := false
	res, err := lookupResult(e.p.st, key)
	if err == nil && res == nil {
		// Not stored: build it, unless another process (or step) is
		// building the same key, then take its result. Lock order: a key's
		// lock before a working directory's, and no key's lock is ever
		// waited for while holding a directory, so no two runs wait on
		// each other (a killed holder's flock goes with it).
		var release func()
		release, err = lockKey(ctx, filepath.Join(e.p.st.Dir, "tmp"), string(key))
		if err != nil && ctx.Err() != nil {
			r.Status, r.Reason = Skipped, "canceled"
			return
		}
		if err == nil {
			defer release()
			res, err = lookupResult(e.p.st, key)
		}
		if err == nil && res == nil {
			res, err = e.pull(ctx, n, key)
			pulled = res != nil
		}
	}
	if err != nil {
		fail(err)
		return
	} else if res != nil {
		r.Status, r.Result = Cached, res
		if pulled {
			r.Status = Pulled
		}
		e.p.st.Touch(key)
		if old := e.readState(n.Name()); old == nil || old.Key != key {
			// Back to an earlier state (a branch switched back): the next
			// run explains itself against this one and starts warm from it.
			e.p.st.WriteJSON(e.stateRel(n.Name()), &state{Key: key, Inputs: in, Files: fileMap(src), LastGood: key})
		}
		return
	}
	r.Reason = e.why(n, in, src)
	select {
	case e.sem <- struct{}{}:
		acquired = true
	case <-ctx.Done():
		r.Status, r.Reason = Skipped, "canceled"
		return
	}
	e.started(n, r.Reason)
	start := time.Now()
	res, err = e.execute(ctx, n, src, in, key, parent, r)
	r.Seconds = time.Since(start).Seconds()
	if err != nil {
		if e.damage(err) {
			r.Status, r.Err, r.damaged = Failed, err, true
			return
		}
		if ctx.Err() != nil && !isFailure(err) {
			r.Status, r.Reason = Skipped, "canceled"
			return
		}
		fail(err)
		if isFailure(err) {
			// Remembered so the next run can say why it runs again.
			st := state{Key: key, Inputs: in, Files: fileMap(src), Failed: true}
			if old := e.readState(n.Name()); old != nil {
				st.LastGood = old.LastGood
			}
			e.p.st.WriteJSON(e.stateRel(n.Name()), &st)
		}
		return
	}
	r.Status, r.Result = Built, res
	st := state{Key: key, Inputs: in, Files: fileMap(src), LastGood: key}
	if err := e.p.st.WriteJSON(e.stateRel(n.Name()), &st); err != nil {
		fail(err)
	}
}

// failure is a step's own failure (cargo, a test, a threshold), as
// opposed to smelt's trouble running it.
type failure struct{ error }

func failed(format string, args ...any) error { return failure{fmt.Errorf(format, args...)} }

func isFailure(err error) bool {
	var f failure
	return errors.As(err, &f)
}

// workDir locks and returns the step's working directory. It is kept between
// runs so that restoring artifacts into it costs only what changed, and
// locked so that two smelt processes never share it, nor a run and the
// leftovers of a killed one (lockWorkDir).
func (e *engine) workDir(ctx context.Context, name string) (*workLock, error) {
	dir := filepath.Join(WorkRoot(e.p.st), e.p.id, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return lockWorkDir(ctx, dir)
}

func tail(path string, n int) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
