package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"smelt/internal/par"
)

// Fetcher brings layers and objects the store lacks from elsewhere (a
// remote cache), so that a result whose layers stayed remote ("build
// without the bytes") can still be restored. It hands over only bytes it
// has verified against their hash; the store checks them once more before
// publishing them.
type Fetcher interface {
	// FetchLayer returns the bytes of layer id.
	FetchLayer(id LayerID) ([]byte, error)
	// FetchObject writes the size bytes of object hash to f, from its start.
	FetchObject(hash ObjectID, size int64, f *os.File) error
}

// PackFetcher is a Fetcher that can bring many objects of known layers
// at once (a remote keeps a layer's small objects in packs, found by the
// layer's id). The store asks it first, then asks FetchObject for what it
// did not bring.
type PackFetcher interface {
	Fetcher
	// FetchPacked brings what it can of want, handing each object's
	// bytes, verified against its hash, to put. put may be called from
	// several goroutines at once.
	FetchPacked(want []Wanted, put func(e Entry, data []byte) error)
}

// Wanted is an object to fetch and the layers read in this process that
// name it, newest first (none: then only FetchObject can bring it).
type Wanted struct {
	Entry
	Layers []LayerID
}

// maxOrigins bounds the layers remembered per object: an object that many
// layers share (sibling steps rewrite the same files) is in the packs of
// each, and a few are enough to find one on the remote.
const maxOrigins = 4

// NoteOrigins records that layer l, of id, names its files' objects, for
// the fetcher (Flatten does it for every layer it reads).
func (s *Store) NoteOrigins(id LayerID, l *Layer) {
	s.originsMu.Lock()
	defer s.originsMu.Unlock()
	if s.origins == nil {
		s.origins = map[ObjectID][]LayerID{}
	}
	for _, e := range l.Entries {
		if (e.Type == TypeFile || e.Type == TypeExec) && !e.Inline() {
			old := s.origins[e.Hash]
			if slices.Contains(old, id) {
				continue
			}
			s.origins[e.Hash] = append([]LayerID{id}, old[:min(len(old), maxOrigins-1)]...)
		}
	}
}

// missing is why an object or layer is not in the store.
func (s *Store) missing() string {
	if s.fetch != nil {
		return "missing, and not to be had from the remote caches"
	}
	return "missing"
}

// SetFetcher makes the store read through f when a layer or an object is
// missing (nil: never).
func (s *Store) SetFetcher(f Fetcher) { s.fetch = f }

// fetchLayer brings a missing layer from the fetcher, if there is one. It
// reports whether the layer is now in the store.
func (s *Store) fetchLayer(id LayerID) (bool, error) {
	if s.fetch == nil {
		return false, nil
	}
	b, err := s.fetch.FetchLayer(id)
	if err != nil {
		return false, err
	}
	if LayerID(HashBytes(b)) != id {
		return false, fmt.Errorf("fetched layer %.12s does not hash to its id", id)
	}
	if err := s.writeAtomic(filepath.Join(s.Dir, s.layerRel(id)), b); err != nil {
		return false, err
	}
	return true, nil
}

// fetchMissing brings the objects of files the store lacks from the
// fetcher, in parallel: what a restore of files needs, and nothing else
// (files carried inline in their layer need no object).
func (s *Store) fetchMissing(files []Entry) {
	if s.fetch == nil {
		return
	}
	var missing []Entry
	seen := map[ObjectID]bool{}
	for _, e := range files {
		if _, ok := e.inline(); ok || seen[e.Hash] {
			continue
		}
		if _, err := os.Stat(s.ObjectPath(e.Hash)); errors.Is(err, fs.ErrNotExist) {
			seen[e.Hash] = true
			missing = append(missing, e)
		}
	}
	if pf, ok := s.fetch.(PackFetcher); ok && len(missing) > 0 {
		want := make([]Wanted, len(missing))
		s.originsMu.Lock()
		for i, e := range missing {
			want[i] = Wanted{Entry: e, Layers: slices.Clone(s.origins[e.Hash])}
		}
		s.originsMu.Unlock()
		pf.FetchPacked(want, func(e Entry, data []byte) error {
			return s.fetchObject(e, func(f *os.File) error {
				_, err := f.Write(data)
				return err
			})
		})
		rest := missing[:0]
		for _, e := range missing {
			if !s.HasObject(e.Hash) {
				rest = append(rest, e)
			}
		}
		missing = rest
	}
	par.Each(16, missing, func(e Entry) error {
		// The fetcher warned of what failed.
		s.fetchObject(e, func(f *os.File) error { return s.fetch.FetchObject(e.Hash, e.Size, f) })
		return nil
	})
}

// fetchObject brings one object into the store, written by fill, with the
// mode and mtime its entry records (cargo and the store's checks compare
// them), once its bytes hash to its name.
func (s *Store) fetchObject(e Entry, fill func(*os.File) error) error {
	tmp, err := s.TempFile("fetch-*")
	if err != nil {
		return err
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := fill(tmp); err != nil {
		return fail(err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	h, n, err := HashFile(tmp.Name())
	if err != nil {
		return fail(err)
	}
	if ObjectID(h) != e.Hash || n != e.Size {
		return fail(fmt.Errorf("fetched object %.12s (%s) does not hash to its name", e.Hash, e.Path))
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	mode := os.FileMode(0o644)
	if e.Type == TypeExec {
		mode = 0o755
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return fail(err)
	}
	if m := e.objectMTime(); m != 0 {
		t := time.Unix(0, m)
		if err := os.Chtimes(tmp.Name(), t, t); err != nil {
			return fail(err)
		}
	}
	return publish(tmp.Name(), s.ObjectPath(e.Hash))
}

// LayerBytes returns the bytes of a layer in the store, checked against
// its id (for uploading it as it is).
func (s *Store) LayerBytes(id LayerID) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, s.layerRel(id)))
	if err != nil {
		return nil, err
	}
	if LayerID(HashBytes(b)) != id {
		return nil, fmt.Errorf("store layer %.12s changed since it was stored", id)
	}
	return b, nil
}

// HasLayer reports whether a layer is in the store.
func (s *Store) HasLayer(id LayerID) bool {
	_, err := os.Stat(filepath.Join(s.Dir, s.layerRel(id)))
	return err == nil
}

// Inline reports whether a file entry's content travels in its layer (so
// it needs no object).
func (e Entry) Inline() bool { _, ok := e.inline(); return ok }

// FetchTree brings every object of tree the store lacks through the
// fetcher (smelt pull).
func (s *Store) FetchTree(tree Tree) error {
	var files []Entry
	for _, e := range tree {
		if e.Type == TypeFile || e.Type == TypeExec {
			files = append(files, e)
		}
	}
	s.fetchMissing(files)
	for _, e := range files {
		if !e.Inline() && !s.HasObject(e.Hash) {
			return fmt.Errorf("object %.12s (%s) is neither in the store nor in a usable remote cache", e.Hash, e.Path)
		}
	}
	return nil
}
