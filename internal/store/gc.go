package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"smelt/internal/key"
)

// Lock takes the store's lock: shared for a run (many runs at once),
// exclusive for garbage collection, which must never delete what a running
// step is about to reference. The returned func releases it.
func (s *Store) Lock(exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.Dir, "gc.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock store %s: %w", s.Dir, err)
	}
	return func() { f.Close() }, nil
}

// Touch marks a result as used now, so garbage collection keeps it.
func (s *Store) Touch(key Key) {
	now := time.Now()
	os.Chtimes(filepath.Join(s.Dir, s.resultRel(key)), now, now)
}

// GCStats says what a collection removed.
type GCStats struct {
	Results, Layers, Objects, Other int
	Bytes                           int64
}

// GC removes results not used for maxAge, then every layer, object,
// vendored source set, output directory and working directory that no
// remaining result needs.
func (s *Store) GC(maxAge time.Duration) (*GCStats, error) {
	unlock, err := s.Lock(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st := &GCStats{}
	cutoff := time.Now().Add(-maxAge)
	liveLayers, liveObjects, liveVendor := map[LayerID]bool{}, map[ObjectID]bool{}, map[string]bool{}
	damaged := 0
	var markLayer func(id LayerID, pulled bool) error
	markLayer = func(id LayerID, pulled bool) error {
		for id != "" && !liveLayers[id] {
			if pulled && !s.HasLayer(id) {
				return nil // it and its parents are in the remote cache
			}
			liveLayers[id] = true
			l, err := s.readLayer(id)
			if err != nil {
				return err
			}
			for _, e := range l.Entries {
				if e.Type == TypeFile || e.Type == TypeExec {
					liveObjects[e.Hash] = true
				}
			}
			id = l.Parent
		}
		return nil
	}
	err = filepath.WalkDir(filepath.Join(s.Dir, "results"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.ModTime().Before(cutoff) {
			st.Results++
			st.Bytes += info.Size()
			return os.Remove(p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var r Result
		if json.Unmarshal(data, &r) != nil {
			st.Results++
			return os.Remove(p) // unreadable: useless
		}
		for _, l := range []LayerID{r.Artifacts, r.Seed, r.Output} {
			if err := markLayer(l, r.Pulled); errors.Is(err, ErrDamaged) {
				// A result whose layers are lost or altered is of no use:
				// dropped, its step is built again when next needed.
				damaged++
				st.Results++
				return os.Remove(p)
			} else if err != nil {
				return err
			}
		}
		if r.Log != "" {
			liveObjects[r.Log] = true
		}
		if v := r.Inputs[key.Vendor]; v != "" {
			liveVendor[v] = true
		}
		return nil
	})
	if damaged > 0 {
		s.Warnf("gc: dropped %d results whose layers were missing or damaged in the store %s; their steps will be rebuilt", damaged, s.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	sweep := func(sub string, live func(name string) bool, count *int) error {
		return filepath.WalkDir(filepath.Join(s.Dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(filepath.Join(s.Dir, sub), p)
			name := strings.TrimSuffix(strings.ReplaceAll(rel, string(filepath.Separator), ""), ".json")
			if live(name) {
				return nil
			}
			if info, err := d.Info(); err == nil {
				st.Bytes += info.Size()
			}
			*count++
			return os.Remove(p)
		})
	}
	if err := sweep("layers", func(n string) bool { return liveLayers[LayerID(n)] }, &st.Layers); err != nil {
		return nil, err
	}
	if err := sweep("objects", func(n string) bool { return liveObjects[ObjectID(n)] }, &st.Objects); err != nil {
		return nil, err
	}
	if err := s.sweepPool(liveVendor, st); err != nil {
		return nil, err
	}
	liveOut := s.liveRoots()
	// Directories that are caches of the store's contents: rebuilt on demand.
	for _, sub := range []string{"vendor", "out", "work", "tmp"} {
		entries, _ := os.ReadDir(filepath.Join(s.Dir, sub))
		for _, e := range entries {
			if sub == "vendor" && (liveVendor[e.Name()] || filepath.Join(s.Dir, sub, e.Name()) == s.VendorPool()) {
				continue
			}
			if sub == "out" && liveOut[e.Name()] {
				continue // a ./result link points at it
			}
			// No run holds the store (the lock is exclusive), so all of
			// tmp/ is debris of interrupted runs; other caches stay while
			// in recent use (a ./result link may point into out/).
			if info, err := e.Info(); err == nil && sub != "vendor" && sub != "tmp" && info.ModTime().After(cutoff) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(s.Dir, sub, e.Name())); err != nil {
				return nil, err
			}
			st.Other++
		}
	}
	return st, nil
}

// PoolList is the file of a vendored set (vendor/ID/) that lists the crate
// directories it uses in the shared pool (VendorPool), as JSON.
const PoolList = "pool.json"

// VendorPool is the directory of the vendored crates that every lock file's
// set shares (see package depsrc).
func (s *Store) VendorPool() string { return filepath.Join(s.Dir, "vendor", "pool") }

// sweepPool removes the pooled crates that no live vendored set lists. A
// live set without a list (from an older smelt) could use any: then the
// pool stays whole.
func (s *Store) sweepPool(liveVendor map[string]bool, st *GCStats) error {
	used := map[string]bool{}
	for id := range liveVendor {
		var names []string
		err := s.ReadJSON(filepath.Join("vendor", id, PoolList), &names)
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(filepath.Join(s.Dir, "vendor", id)); errors.Is(serr, fs.ErrNotExist) {
				continue // not vendored here: it uses nothing
			}
			return nil
		}
		if err != nil {
			return nil // unreadable: keep everything
		}
		for _, n := range names {
			used[n] = true
		}
	}
	pool := s.VendorPool()
	entries, err := os.ReadDir(pool)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("gc: %w", err)
	}
	tmp := ""
	for _, e := range entries {
		if used[e.Name()] {
			continue
		}
		// Out of the pool in one step, so that an interrupted gc never
		// leaves a crate there half deleted; tmp/ is swept below.
		if tmp == "" {
			if tmp, err = s.TempDir("gc-pool-"); err != nil {
				return fmt.Errorf("gc: %w", err)
			}
		}
		if err := os.Rename(filepath.Join(pool, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		st.Other++
	}
	return nil
}
