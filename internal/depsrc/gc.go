package depsrc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"smelt/internal/store"
)

// PoolList is the file of a vendored set (vendor/ID/) that lists the crate
// directories it uses in the shared pool (PoolDir), as JSON.
const PoolList = "pool.json"

// Dir is the directory of the vendored sets (one per lock file, by ID)
// and of their pool, beside the store, made when the first set is.
func Dir(st *store.Store) string { return filepath.Join(st.Dir, "vendor") }

// PoolDir holds the vendored crates of every lock file, one directory per
// crate version ("name-version"), each added once and never changed.
func PoolDir(st *store.Store) string { return filepath.Join(Dir(st), "pool") }

// Sweep removes the vendored sets whose ids live does not hold and the
// pooled crates that no live set lists, and returns how many entries it
// removed. Garbage collection calls it under the store's exclusive lock
// (store.GCOptions.Sweep) with the sets its remaining results name.
func Sweep(st *store.Store, live map[string]bool) (int, error) {
	n, err := sweepPool(st, live)
	if err != nil {
		return n, err
	}
	entries, _ := os.ReadDir(Dir(st))
	for _, e := range entries {
		p := filepath.Join(Dir(st), e.Name())
		if live[e.Name()] || p == PoolDir(st) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// sweepPool removes the pooled crates that no live vendored set lists. A
// live set without a list (from an older smelt) could use any: then the
// pool stays whole.
func sweepPool(st *store.Store, live map[string]bool) (int, error) {
	used := map[string]bool{}
	for id := range live {
		var names []string
		err := st.ReadJSON(filepath.Join("vendor", id, PoolList), &names)
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(filepath.Join(Dir(st), id)); errors.Is(serr, fs.ErrNotExist) {
				continue // not vendored here: it uses nothing
			}
			return 0, nil
		}
		if err != nil {
			return 0, nil // unreadable: keep everything
		}
		for _, n := range names {
			used[n] = true
		}
	}
	pool := PoolDir(st)
	entries, err := os.ReadDir(pool)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("gc: %w", err)
	}
	tmp, n := "", 0
	for _, e := range entries {
		if used[e.Name()] {
			continue
		}
		// Out of the pool in one step, so that an interrupted gc never
		// leaves a crate there half deleted; the store empties tmp/
		// after the sweep.
		if tmp == "" {
			if tmp, err = st.TempDir("gc-pool-"); err != nil {
				return n, fmt.Errorf("gc: %w", err)
			}
		}
		if err := os.Rename(filepath.Join(pool, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			return n, fmt.Errorf("gc: %w", err)
		}
		n++
	}
	return n, nil
}
