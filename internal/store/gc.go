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

// GCOptions is what a collection is told by its caller, which knows what
// is in use (as restic's prune is given the blobs in use): the store knows
// only what its results reference.
type GCOptions struct {
	// New makes the record each result is read into, for Keep and Sweep
	// to see the step's fields too (nil: a *Result, the store's alone).
	New func() Record
	// Keep reports whether a result stays, given when it was last used
	// (Touch). Nil keeps every result.
	Keep func(r Record, used time.Time) bool
	// Sweep, when not nil, is called with the results that stay, still
	// under the store's exclusive lock and before tmp/ is emptied: the
	// caller removes there what of its own (caches it keeps beside the
	// store) no remaining result names, and returns how many entries it
	// removed (counted in GCStats.Other). It may move what it removes
	// into TempDir: tmp/ is emptied after it.
	Sweep func(kept []Record) (int, error)
}

// GC removes the results o.Keep rejects, then every layer and object that
// no remaining result needs, then (after o.Sweep) everything under tmp/.
// A result whose layers are lost or damaged is dropped too, with one
// warning.
func (s *Store) GC(o GCOptions) (*GCStats, error) {
	unlock, err := s.Lock(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st := &GCStats{}
	liveLayers, liveObjects := map[LayerID]bool{}, map[ObjectID]bool{}
	var kept []Record
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
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var rec Record = &Result{}
		if o.New != nil {
			rec = o.New()
		}
		if json.Unmarshal(data, rec) != nil {
			st.Results++
			st.Bytes += info.Size()
			return os.Remove(p) // unreadable: useless
		}
		r := rec.StoreResult()
		if o.Keep != nil && !o.Keep(rec, info.ModTime()) {
			st.Results++
			st.Bytes += info.Size()
			return os.Remove(p)
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
		kept = append(kept, rec)
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
	if o.Sweep != nil {
		n, err := o.Sweep(kept)
		st.Other += n
		if err != nil {
			return nil, fmt.Errorf("gc: %w", err)
		}
	}
	// No run holds the store (the lock is exclusive), so all of tmp/ is
	// debris of interrupted runs.
	entries, _ := os.ReadDir(filepath.Join(s.Dir, "tmp"))
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.Dir, "tmp", e.Name())); err != nil {
			return nil, err
		}
		st.Other++
	}
	return st, nil
}
