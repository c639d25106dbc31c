package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ErrDamaged is what every DamageError is: the store held something that
// is no longer what its name says (an object changed or lost, a layer
// lost or altered). The damaged piece is already dropped; what was built
// from it must be dropped too (DropUsers) and built again.
var ErrDamaged = errors.New("damaged store entry")

// DamageError lists the damaged objects and layers one use found.
type DamageError struct {
	Store     string   // the store's directory
	Objects   []string // "hash (path): why"
	Layers    []string // "id: why"
	hashes    map[ObjectID]bool
	layers    map[LayerID]bool
	objKeys   []ObjectID // the keys of Objects and Layers, in their order
	layerKeys []LayerID
}

func (d *DamageError) Error() string {
	var parts []string
	for _, o := range d.Objects {
		parts = append(parts, "store object "+o)
	}
	for _, l := range d.Layers {
		parts = append(parts, "store layer "+l)
	}
	if len(parts) > 3 {
		parts = append(parts[:3], fmt.Sprintf("and %d more", len(parts)-3))
	}
	return strings.Join(parts, "; ") + " (store " + d.Store + ")"
}

// Is makes errors.Is(err, ErrDamaged) hold.
func (d *DamageError) Is(target error) bool { return target == ErrDamaged }

func (d *DamageError) addObject(hash ObjectID, path, why string) {
	if d.hashes == nil {
		d.hashes = map[ObjectID]bool{}
	}
	if !d.hashes[hash] {
		d.hashes[hash] = true
		d.objKeys = append(d.objKeys, hash)
		d.Objects = append(d.Objects, fmt.Sprintf("%.12s (%s): %s", hash, path, why))
	}
}

func (d *DamageError) addLayer(id LayerID, why string) {
	if d.layers == nil {
		d.layers = map[LayerID]bool{}
	}
	if !d.layers[id] {
		d.layers[id] = true
		d.layerKeys = append(d.layerKeys, id)
		d.Layers = append(d.Layers, fmt.Sprintf("%.12s: %s", id, why))
	}
}

func (d *DamageError) merge(o *DamageError) {
	d.Store = o.Store
	if d.hashes == nil {
		d.hashes, d.layers = map[ObjectID]bool{}, map[LayerID]bool{}
	}
	for i, h := range o.objKeys {
		if !d.hashes[h] {
			d.hashes[h] = true
			d.objKeys = append(d.objKeys, h)
			d.Objects = append(d.Objects, o.Objects[i])
		}
	}
	for i, l := range o.layerKeys {
		if !d.layers[l] {
			d.layers[l] = true
			d.layerKeys = append(d.layerKeys, l)
			d.Layers = append(d.Layers, o.Layers[i])
		}
	}
}

// damages collects the DamageErrors of work done in parallel.
type damages struct {
	mu sync.Mutex
	d  *DamageError
}

// add keeps err if it is damage and reports whether it was.
func (ds *damages) add(err error) bool {
	var d *DamageError
	if !errors.As(err, &d) {
		return false
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.d == nil {
		ds.d = &DamageError{}
	}
	ds.d.merge(d)
	return true
}

func (ds *damages) err() error {
	if ds.d == nil {
		return nil
	}
	return ds.d
}

// Warnf prints one line starting "warning: " through s.Warn, or to
// standard error when it is nil.
func (s *Store) Warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s.Warn != nil {
		s.Warn(msg)
		return
	}
	fmt.Fprintln(os.Stderr, "warning: "+msg)
}

// objectMTime is the mtime e's object had when e was recorded: the
// object's size and mtime are its cheap identity. Writing a file changes
// its mtime, and hard links (work directories, the vendor pool, `restore
// --link`) leave it alone; its ctime would be cheaper still to trust but
// every link(2) and unlink(2) of a restore changes it.
func (e Entry) objectMTime() int64 {
	if e.OM != 0 {
		return e.OM
	}
	return e.MTime
}

// vouch checks that the object file f (fi: its stat) still holds e's
// content: at the cost of nothing more when its size and mtime are those
// recorded, else by hashing it again. A damaged object is dropped from the
// store and reported as a *DamageError. f is left at offset 0.
func (s *Store) vouch(e Entry, f *os.File, fi fs.FileInfo) error {
	why := ""
	switch {
	case fi.Size() != e.Size:
		why = fmt.Sprintf("size %d, stored with %d", fi.Size(), e.Size)
	case fi.ModTime().UnixNano() == e.objectMTime():
		return nil
	default:
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("read %s: %w", f.Name(), err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if ObjectID(hex.EncodeToString(h.Sum(nil))) == e.Hash {
			return nil
		}
		why = "changed since it was stored"
	}
	s.dropObject(e.Hash, fi)
	d := &DamageError{Store: s.Dir}
	d.addObject(e.Hash, e.Path, why)
	return d
}

// vouchPath is vouch for the object at its path.
func (s *Store) vouchPath(e Entry) error {
	f, err := os.Open(s.ObjectPath(e.Hash))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			d := &DamageError{Store: s.Dir}
			d.addObject(e.Hash, e.Path, "missing")
			return d
		}
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return s.vouch(e, f, fi)
}

// dropObject removes the object hash if it is still the file fi (another
// smelt may have stored it again, intact, since).
func (s *Store) dropObject(hash ObjectID, fi fs.FileInfo) {
	p := s.ObjectPath(hash)
	if cur, err := os.Lstat(p); err == nil && (fi == nil || os.SameFile(cur, fi)) {
		os.Remove(p)
	}
}

// DropObjectOf removes the object hash if the file at p is it (a hard
// link to it) and holds other bytes: found changed through p.
func (s *Store) DropObjectOf(hash ObjectID, p string) {
	if fi, err := os.Lstat(p); err == nil {
		s.dropObject(hash, fi)
	}
}

// readLayer reads a layer and checks it against its id, the hash of its
// bytes: a missing or altered layer is a *DamageError.
func (s *Store) readLayer(id LayerID) (*Layer, error) {
	p := filepath.Join(s.Dir, s.layerRel(id))
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		// Not here: from the remote caches, if any (they warn of what
		// fails; a layer still missing is damage).
		if ok, _ := s.fetchLayer(id); ok {
			b, err = os.ReadFile(p)
		}
	}
	why := ""
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = s.missing()
	case err != nil:
		return nil, fmt.Errorf("read layer %.12s: %w", id, err)
	case LayerID(HashBytes(b)) != id:
		why = "changed since it was stored"
		os.Remove(p)
	}
	var l Layer
	if why == "" {
		if err := json.Unmarshal(b, &l); err != nil {
			why = "unreadable"
			os.Remove(p)
		}
	}
	if why != "" {
		d := &DamageError{Store: s.Dir}
		d.addLayer(id, why)
		return nil, d
	}
	return &l, nil
}

// DropUsers removes every result that needs what d found damaged (an
// object or layer in its layers' chains, its log), so that the next run
// builds it again, and returns how many it removed.
func (s *Store) DropUsers(d *DamageError) (int, error) { return s.dropUsers(d, false) }

// dropUsers is DropUsers; with dry, it only counts them.
func (s *Store) dropUsers(d *DamageError, dry bool) (int, error) {
	layers := map[LayerID]bool{} // layer id → it or an ancestor is damaged
	var damaged func(id LayerID) bool
	damaged = func(id LayerID) bool {
		if id == "" {
			return false
		}
		if v, ok := layers[id]; ok {
			return v
		}
		layers[id] = false // no cycles: ids are hashes
		v := d.layers[id]
		if !v {
			l, err := s.peekLayer(id)
			if err != nil {
				v = true
			} else {
				for _, e := range l.Entries {
					if d.hashes[e.Hash] && (e.Type == TypeFile || e.Type == TypeExec) {
						v = true
						break
					}
				}
				v = v || damaged(l.Parent)
			}
		}
		layers[id] = v
		return v
	}
	n := 0
	err := filepath.WalkDir(filepath.Join(s.Dir, "results"), func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		var r Result
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if json.Unmarshal(b, &r) == nil && r.Seed != "" && damaged(r.Seed) && !damaged(r.Artifacts) && !damaged(r.Output) && !d.hashes[r.Log] {
			// Only its seed (a warm start for its heirs) is spoilt:
			// the result stands without it.
			n++
			if dry {
				return nil
			}
			rel, _ := filepath.Rel(s.Dir, p)
			return s.WriteJSON(rel, withoutSeed(b))
		}
		if json.Unmarshal(b, &r) != nil || d.hashes[r.Log] || damaged(r.Artifacts) || damaged(r.Seed) || damaged(r.Output) {
			if dry {
				n++
				return nil
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("drop the results that use damaged store entries: %w", err)
	}
	return n, nil
}

// withoutSeed is the record b without its seed: without the field seed
// and every field named seed_* (see Result.Seed).
func withoutSeed(b []byte) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	json.Unmarshal(b, &m) // b was read as a Result just before
	for k := range m {
		if k == "seed" || strings.HasPrefix(k, "seed_") {
			delete(m, k)
		}
	}
	return m
}
