// Package store is smelt's content-addressed store on local disk: file
// contents by hash, tree layers, and the map from a step's key to its result.
//
// Every write goes to a temporary file in the store and is renamed into
// place, so a reader never sees half a file and an interrupted smelt leaves
// only garbage under tmp/, never a corrupt entry. Objects and layers are
// named by their content, so two processes writing the same one race
// harmlessly: both write the same bytes.
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
	"sync"
	"time"
)

// FormatVersion enters every key: bump it when the meaning of stored data changes.
const FormatVersion = "smelt-store-1"

// Store is one store directory.
type Store struct {
	Dir string
	// Warn, when not nil, prints a warning (the message without
	// "warning: "); else Warnf prints to standard error.
	Warn  func(msg string)
	fetch Fetcher // see SetFetcher
	// origins maps an object to a layer that names it, as Flatten read
	// them: a remote keeps a layer's small objects in packs that the
	// layer's id finds (see PackFetcher).
	origins   map[ObjectID][]LayerID
	originsMu sync.Mutex
}

// DefaultDir is $SMELT_STORE, else $XDG_CACHE_HOME/smelt, else ~/.cache/smelt.
func DefaultDir() (string, error) {
	if d := os.Getenv("SMELT_STORE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache directory for the store (set SMELT_STORE): %w", err)
	}
	return filepath.Join(d, "smelt"), nil
}

// Open creates the store's directories if needed: only what the store
// owns. The caches kept beside it (the vendored sources, the working
// directories, the logs, the state, the output directories, smelt's
// helper programs) are made by their packages when they first need them.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"objects", "layers", "results", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o755); err != nil {
			return nil, fmt.Errorf("open store %s: %w", abs, err)
		}
	}
	return &Store{Dir: abs}, nil
}

// HashBytes is the store's hash function, as lowercase hex.
func HashBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// HashFile hashes a file's contents.
func HashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func fanout(dir, name string) string {
	if len(name) < 3 {
		return filepath.Join(dir, name)
	}
	return filepath.Join(dir, name[:2], name[2:])
}

// ObjectPath is where the object with this hash lives.
func (s *Store) ObjectPath(hash ObjectID) string {
	return fanout(filepath.Join(s.Dir, "objects"), string(hash))
}

// HasObject reports whether an object is present.
func (s *Store) HasObject(hash ObjectID) bool {
	_, err := os.Stat(s.ObjectPath(hash))
	return err == nil
}

// TempFile creates a file under the store's tmp/ directory, on the same file
// system as its final place so that a rename publishes it atomically.
func (s *Store) TempFile(pattern string) (*os.File, error) {
	return os.CreateTemp(filepath.Join(s.Dir, "tmp"), pattern)
}

// TempDir creates a directory under tmp/.
func (s *Store) TempDir(pattern string) (string, error) {
	return os.MkdirTemp(filepath.Join(s.Dir, "tmp"), pattern)
}

// publish renames tmp to dst, creating dst's directory.
func publish(tmp, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// PutEntry stores the file at path as an object, unless it is there, and
// returns its entry at the path rel of a tree: for a caller that makes a
// layer of files it picks itself (PutLayer, PutTree).
func (s *Store) PutEntry(path, rel string) (Entry, error) {
	info, err := os.Stat(path)
	if err != nil {
		return Entry{}, err
	}
	hash, size, err := HashFile(path)
	if err != nil {
		return Entry{}, err
	}
	h, mtime := ObjectID(hash), info.ModTime().UnixNano()
	if err := s.putFileTime(path, h, mtime); err != nil {
		return Entry{}, err
	}
	typ := TypeFile
	if info.Mode()&0o111 != 0 {
		typ = TypeExec
	}
	return Entry{Path: rel, Type: typ, Size: size, MTime: mtime, Hash: h, OM: s.objectTime(h, mtime)}, nil
}

// putFileTime copies the file at path into the store under the given hash
// (which the caller computed) unless it is already there, giving a new
// object the mtime (ns) mtime (0: now): a hard link to the object (Restore
// with Linkable) then carries the time the file was built, so cargo sees
// no dependency newer than it was.
func (s *Store) putFileTime(path string, hash ObjectID, mtime int64) error {
	dst := s.ObjectPath(hash)
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	if oi, err := os.Stat(dst); err == nil {
		if si, err := src.Stat(); err != nil || si.Size() == oi.Size() {
			return nil
		}
		// An object of another size than its content: damaged; this
		// file, just hashed, replaces it.
	}
	tmp, err := s.TempFile("obj-*")
	if err != nil {
		return err
	}
	// io.Copy between two *os.File uses copy_file_range, so the kernel copies
	// (or clones) without the data passing through smelt.
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("store %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	mode := os.FileMode(0o644)
	if info, err := src.Stat(); err == nil && info.Mode()&0o111 != 0 {
		mode = 0o755
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	if mtime != 0 {
		t := time.Unix(0, mtime)
		if err := os.Chtimes(tmp.Name(), t, t); err != nil {
			return err
		}
	}
	return publish(tmp.Name(), dst)
}

// PutBytes stores b and returns its hash.
func (s *Store) PutBytes(b []byte) (ObjectID, error) {
	hash := ObjectID(HashBytes(b))
	dst := s.ObjectPath(hash)
	if _, err := os.Stat(dst); err == nil {
		return hash, nil
	}
	if err := s.writeAtomic(dst, b); err != nil {
		return "", err
	}
	return hash, nil
}

// readObject returns an object's bytes.
func (s *Store) readObject(hash ObjectID) ([]byte, error) {
	return os.ReadFile(s.ObjectPath(hash))
}

// writeAtomic writes b to dst through a temporary file and a rename.
func (s *Store) writeAtomic(dst string, b []byte) error {
	tmp, err := s.TempFile("w-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return werr
	}
	return publish(tmp.Name(), dst)
}

// WriteJSON atomically writes v as JSON to a path relative to the store.
func (s *Store) WriteJSON(rel string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.writeAtomic(filepath.Join(s.Dir, rel), b)
}

// ReadJSON reads a JSON file relative to the store. A missing file returns
// an error wrapping fs.ErrNotExist.
func (s *Store) ReadJSON(rel string, v any) error {
	b, err := os.ReadFile(filepath.Join(s.Dir, rel))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s (corrupt; delete it and rerun): %w", filepath.Join(s.Dir, rel), err)
	}
	return nil
}

// Result is the store's part of a result record: what a successful step
// left behind, found by its key. The store reads only these fields: the
// layers and the log a result references (gc keeps them, damage to them
// drops the result), when it was made, and whether it came from a remote.
// The step's own fields (kind, inputs, source times, summary…) are in the
// same JSON object, written by the package that made it (package run's
// Result embeds this one), and pass through the store untouched.
type Result struct {
	Key       Key     `json:"key"`
	Artifacts LayerID `json:"artifacts,omitempty"` // layer id of target/ ("" if the step keeps none)
	// Seed is a second target/ kept beside Artifacts (see run's fusing):
	// optional, so a result whose only damaged layer is its seed stays
	// without it, and without every field of the record named seed_*.
	Seed    LayerID   `json:"seed,omitempty"`
	Output  LayerID   `json:"output,omitempty"` // layer id of the step's output tree
	Log     ObjectID  `json:"log,omitempty"`    // object hash of the step's log
	Created time.Time `json:"created"`
	// Pulled marks a result taken from a remote cache: its layers and
	// objects may be there only (fetched when a restore needs them).
	// Set locally, never pushed.
	Pulled bool `json:"pulled,omitempty"`
}

// Record is a whole result record: the store's Result within the fields
// of the step that made it. A struct that embeds Result is one.
type Record interface {
	StoreResult() *Result
}

// StoreResult makes a *Result a Record, and so every struct embedding one.
func (r *Result) StoreResult() *Result { return r }

func (s *Store) resultRel(key Key) string {
	return filepath.Join("results", string(key[:2]), string(key[2:])+".json")
}

// LookupResult reads the result stored for key into rec and reports
// whether there is one. A result that cannot be read as one (damaged) is
// dropped, with a warning: the step is built again.
func (s *Store) LookupResult(key Key, rec Record) (bool, error) {
	p := filepath.Join(s.Dir, s.resultRel(key))
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, rec); err != nil || rec.StoreResult().Key != key {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("drop the damaged result %s: %w", p, err)
		}
		s.Warnf("the stored result %s was damaged (not the result of its key); dropped it, to build again", p)
		return false, nil
	}
	return true, nil
}

// SaveResult records a successful step. It is written last, after every
// object and layer it names, so a result that exists is always complete.
func (s *Store) SaveResult(rec Record) error {
	return s.WriteJSON(s.resultRel(rec.StoreResult().Key), rec)
}
