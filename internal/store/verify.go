package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"smelt/internal/par"
)

// VerifyReport is what Verify found (and, repairing, dropped).
type VerifyReport struct {
	Objects, Layers, Results int          // how many were checked
	Damage                   *DamageError // nil if none
	Users                    int          // results that need damaged entries (dropped when repairing)
	Links                    int          // files of working directories that were links to damaged objects (removed when repairing)
}

// Verify re-hashes every object and layer of the store and checks that
// every result's layers and objects are there. With repair it drops what
// is damaged and every result that needs it, and removes the files under
// linked (the caller's working directories, which restore files as hard
// links to objects) that are links to damaged objects (they hold the same
// bad bytes), so that the next run builds them again.
func (s *Store) Verify(repair bool, linked ...string) (*VerifyReport, error) {
	unlock, err := s.Lock(repair)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rep := &VerifyReport{}
	d := &DamageError{Store: s.Dir}
	var mu sync.Mutex
	bad := map[ObjectID]fs.FileInfo{} // damaged objects, by hash
	var objects []string
	root := filepath.Join(s.Dir, "objects")
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		objects = append(objects, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", root, err)
	}
	rep.Objects = len(objects)
	err = par.Each(runtime.GOMAXPROCS(0), objects, func(p string) error {
		rel, _ := filepath.Rel(root, p)
		name := ObjectID(strings.ReplaceAll(rel, string(filepath.Separator), ""))
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		h, _, err := HashFile(p)
		if err != nil {
			return err
		}
		if ObjectID(h) != name {
			mu.Lock()
			bad[name] = fi
			d.addObject(name, "object file", "its content no longer matches its hash")
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify objects: %w", err)
	}
	lroot := filepath.Join(s.Dir, "layers")
	err = filepath.WalkDir(lroot, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(lroot, p)
		id := LayerID(strings.TrimSuffix(strings.ReplaceAll(rel, string(filepath.Separator), ""), ".json"))
		rep.Layers++
		l, err := s.peekLayer(id)
		if err != nil {
			var ld *DamageError
			if !errors.As(err, &ld) {
				return err
			}
			d.merge(ld)
			return nil
		}
		for _, e := range l.Entries {
			if e.Type != TypeFile && e.Type != TypeExec {
				continue
			}
			if _, ok := e.inline(); ok {
				continue
			}
			if _, err := os.Lstat(s.ObjectPath(e.Hash)); errors.Is(err, fs.ErrNotExist) {
				d.addObject(e.Hash, e.Path, "missing")
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify layers: %w", err)
	}
	filepath.WalkDir(filepath.Join(s.Dir, "results"), func(p string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			rep.Results++
		}
		return nil
	})
	if rep.Users, err = s.dropUsers(d, !repair); err != nil {
		return nil, err
	}
	if len(d.Objects)+len(d.Layers) > 0 {
		rep.Damage = d
	}
	if !repair || rep.Damage == nil {
		return rep, nil
	}
	for h, fi := range bad {
		s.dropObject(h, fi)
	}
	for id := range d.layers {
		os.Remove(filepath.Join(s.Dir, s.layerRel(id)))
	}
	// The layers that name a damaged object are of no use either (their
	// results are dropped): gone, they are not found missing it next time.
	filepath.WalkDir(lroot, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(lroot, p)
		if l, err := s.peekLayer(LayerID(strings.TrimSuffix(strings.ReplaceAll(rel, string(filepath.Separator), ""), ".json"))); err == nil {
			for _, e := range l.Entries {
				if d.hashes[e.Hash] && (e.Type == TypeFile || e.Type == TypeExec) {
					os.Remove(p)
					break
				}
			}
		}
		return nil
	})
	rep.Links = unlinkCopies(bad, linked)
	return rep, nil
}

// peekLayer is readLayer without removing what it finds damaged.
func (s *Store) peekLayer(id LayerID) (*Layer, error) {
	p := filepath.Join(s.Dir, s.layerRel(id))
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var l Layer
	why := ""
	if LayerID(HashBytes(b)) != id {
		why = "changed since it was stored"
	} else if json.Unmarshal(b, &l) != nil {
		why = "unreadable"
	}
	if why != "" {
		d := &DamageError{Store: s.Dir}
		d.addLayer(id, why)
		return nil, d
	}
	return &l, nil
}

// unlinkCopies removes the files under the directories dirs that are hard
// links to the damaged objects bad, and returns how many: they hold the
// same bad bytes, and a restore would keep one whose size and mtime still
// look right.
func unlinkCopies(bad map[ObjectID]fs.FileInfo, dirs []string) int {
	inodes := map[[2]uint64]bool{}
	for _, fi := range bad {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			inodes[[2]uint64{st.Dev, st.Ino}] = true
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	n := 0
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
			if err != nil || !de.Type().IsRegular() {
				return nil
			}
			fi, err := de.Info()
			if err != nil {
				return nil
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && inodes[[2]uint64{st.Dev, st.Ino}] {
				if os.Remove(p) == nil {
					n++
				}
			}
			return nil
		})
	}
	return n
}
