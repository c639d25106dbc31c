package run

import (
	"os"
	"path/filepath"
	"time"

	"smelt/internal/depsrc"
	"smelt/internal/key"
	"smelt/internal/store"
)

// GC collects the store (`smelt gc`): the results not used for maxAge go,
// with every layer and object only they needed (store.GC), and so do the
// caches that smelt keeps beside the store and that no remaining result
// needs: the vendored dependency sets they do not name (depsrc.Sweep), the
// output directories no ./result link points at and the working
// directories, once neither was used for maxAge either.
func GC(st *store.Store, maxAge time.Duration) (*store.GCStats, error) {
	cutoff := time.Now().Add(-maxAge)
	return st.GC(store.GCOptions{
		New:  func() store.Record { return &Result{} },
		Keep: func(_ store.Record, used time.Time) bool { return !used.Before(cutoff) },
		Sweep: func(kept []store.Record) (int, error) {
			vendor := map[string]bool{}
			for _, r := range kept {
				if v := r.(*Result).Inputs[key.Vendor]; v != "" {
					vendor[v] = true
				}
			}
			n, err := depsrc.Sweep(st, vendor)
			if err != nil {
				return n, err
			}
			m, err := sweepCaches(st, cutoff)
			return n + m, err
		},
	})
}

// sweepCaches removes the output directories that no ./result link points
// at and the working directories, once not used since cutoff (a ./result
// link may point into out/; a project in use touches its work/ directory),
// and returns how many it removed. Both are rebuilt on demand.
func sweepCaches(st *store.Store, cutoff time.Time) (int, error) {
	liveOut := liveRoots(st)
	n := 0
	for _, sub := range []string{outRoot(st), WorkRoot(st)} {
		entries, _ := os.ReadDir(sub)
		for _, e := range entries {
			if sub == outRoot(st) && liveOut[e.Name()] {
				continue // a ./result link points at it
			}
			if info, err := e.Info(); err == nil && info.ModTime().After(cutoff) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(sub, e.Name())); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
