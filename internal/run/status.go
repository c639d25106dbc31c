package run

import (
	"context"

	"smelt/internal/config"
	"smelt/internal/store"
)

// Outlook is what the store says of a step before anything runs.
type Outlook string

const (
	WillCache Outlook = "cached" // its result is in the store: it would not run
	WillRun   Outlook = "run"    // it would run; Reason says why
	// WillRetry: it failed last time with the same inputs; failures are not
	// cached, so it would run again.
	WillRetry Outlook = "failed"
)

// StepOutlook is one step's outlook, as `smelt why` reports it.
type StepOutlook struct {
	Name    string
	Outlook Outlook
	Reason  string // why it would run; "" when cached
	After   string // set when it would run because this step, which it inherits from, would
}

// Outlooks says, without running anything, which of the named steps (and
// the steps they inherit from) are cached and why the others would run.
func Outlooks(ctx context.Context, root string, cfg *config.Config, names []string, st *store.Store) ([]StepOutlook, error) {
	nodes, p, err := prepare(ctx, root, cfg, names, st)
	if err != nil {
		return nil, err
	}
	e := &engine{p: p}
	results := map[string]*Result{}
	var out []StepOutlook
	for _, n := range nodes {
		var parent *Result
		if n.Parent != nil {
			parent = results[n.Parent.Name()]
			if parent == nil {
				// Its key includes the parent's artifacts, unknown until
				// the parent runs.
				out = append(out, StepOutlook{Name: n.Name(), Outlook: WillRun, After: n.Parent.Name(),
					Reason: "its key includes " + n.Parent.Name() + "'s artifacts"})
				continue
			}
		}
		src, err := e.stepSource(n.Step)
		if err != nil {
			return nil, err
		}
		in, err := e.inputs(ctx, n, src, parent)
		if err != nil {
			return nil, err
		}
		res, err := lookupResult(st, store.Key(in.Key()))
		if err != nil {
			return nil, err
		}
		if res != nil {
			results[n.Name()] = res
			out = append(out, StepOutlook{Name: n.Name(), Outlook: WillCache})
			continue
		}
		s := StepOutlook{Name: n.Name(), Outlook: WillRun, Reason: e.why(n, in, src)}
		if old := e.readState(n.Name()); old != nil && old.Failed && old.Key == store.Key(in.Key()) {
			s.Outlook = WillRetry
		}
		out = append(out, s)
	}
	return out, nil
}
