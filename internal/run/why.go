package run

import (
	"context"
	"fmt"
	"path/filepath"

	"smelt/internal/config"
	"smelt/internal/store"
	"smelt/internal/vendor"
)

// Why says, without running anything, which of the named steps are cached
// and why the others would run.
func Why(ctx context.Context, root string, cfg *config.Config, names []string, st *store.Store) ([]string, error) {
	nodes, p, err := prepare(ctx, root, cfg, names, st)
	if err != nil {
		return nil, err
	}
	e := &engine{p: p}
	results := map[string]*store.Result{}
	var lines []string
	for _, n := range nodes {
		var parent *store.Result
		if n.Parent != nil {
			parent = results[n.Parent.Name()]
			if parent == nil {
				lines = append(lines, fmt.Sprintf("%-12s would run after %s (its key includes %s's artifacts)", n.Name(), n.Parent.Name(), n.Parent.Name()))
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
		res, err := st.LookupResult(in.Key())
		if err != nil {
			return nil, err
		}
		if res != nil {
			results[n.Name()] = res
			lines = append(lines, fmt.Sprintf("%-12s cached", n.Name()))
			continue
		}
		lines = append(lines, fmt.Sprintf("%-12s would run: %s", n.Name(), e.why(n, in, src)))
	}
	return lines, nil
}

// Fetch vendors the dependency sources of the project at root.
func Fetch(ctx context.Context, st *store.Store, root string) (*vendor.Sources, error) {
	p, err := newProject(ctx, st, root)
	if err != nil {
		return nil, err
	}
	return p.vendor(ctx, nil)
}

// LogPath is where the log of a step's last run in the project at root is.
func LogPath(st *store.Store, root, step string) string {
	return filepath.Join(st.Dir, "logs", projectID(root), step+".log")
}
