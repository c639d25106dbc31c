package run

import (
	"context"
	"fmt"
	"path/filepath"

	"smelt/internal/config"
	"smelt/internal/depsrc"
	"smelt/internal/store"
)

// Why says, without running anything, which of the named steps are cached
// and why the others would run.
func Why(ctx context.Context, root string, cfg *config.Config, names []string, st *store.Store) ([]string, error) {
	outlooks, err := Outlooks(ctx, root, cfg, names, st)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, s := range outlooks {
		switch {
		case s.Outlook == WillCache:
			lines = append(lines, fmt.Sprintf("%-12s cached", s.Name))
		case s.After != "":
			lines = append(lines, fmt.Sprintf("%-12s would run after %s (%s)", s.Name, s.After, s.Reason))
		default:
			lines = append(lines, fmt.Sprintf("%-12s would run: %s", s.Name, s.Reason))
		}
	}
	return lines, nil
}

// Fetch vendors the dependency sources of the project at root.
func Fetch(ctx context.Context, st *store.Store, root string) (*depsrc.Sources, error) {
	p, err := newProject(ctx, st, root)
	if err != nil {
		return nil, err
	}
	return p.vendor(ctx, nil)
}

// LogPath is where the log of a step's last run in the project at root is.
func LogPath(st *store.Store, root, step string) string {
	return filepath.Join(logRoot(st), projectID(root), step+".log")
}
