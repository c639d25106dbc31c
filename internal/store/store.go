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

// Open creates the store's directories if needed.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"objects", "layers", "results", "vendor", "out", "logs", "tmp", "state", "work"} {
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

// PutFile copies the file at path into the store under the given hash (which
// the caller computed) unless it is already there.
func (s *Store) PutFile(path string, hash ObjectID) error { return s.PutFileTime(path, hash, 0) }

// PutFileTime is PutFile, giving a new object the mtime (ns) mtime: a hard
// link to the object (RestoreLinking) then carries the time the file was
// built, so cargo sees no dependency newer than it was.
func (s *Store) PutFileTime(path string, hash ObjectID, mtime int64) error {
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

// ReadObject returns an object's bytes.
func (s *Store) ReadObject(hash ObjectID) ([]byte, error) {
	return os.ReadFile(s.ObjectPath(hash))
}

func (s *Store) writeAtomic(dst string, b []byte) error { return s.writeAtomicMode(dst, b, 0) }

// writeAtomicMode is writeAtomic giving the file mode perm (0: the
// temporary file's own).
func (s *Store) writeAtomicMode(dst string, b []byte, perm fs.FileMode) error {
	tmp, err := s.TempFile("w-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil && perm != 0 {
		werr = os.Chmod(tmp.Name(), perm)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return werr
	}
	return publish(tmp.Name(), dst)
}

// Program returns the path of an executable file under bin/ holding b,
// writing it the first time. It is named by its content: a file another
// smelt may be running never changes.
func (s *Store) Program(name string, b []byte) (string, error) {
	dst := filepath.Join(s.Dir, "bin", name+"-"+HashBytes(b)[:12])
	if fi, err := os.Stat(dst); err == nil && fi.Mode()&0o111 != 0 {
		return dst, nil
	}
	if err := s.writeAtomicMode(dst, b, 0o755); err != nil {
		return "", fmt.Errorf("write %s: %w", dst, err)
	}
	return dst, nil
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

// Result is what a successful step left behind, found by its key.
type Result struct {
	Key         Key               `json:"key"`
	Step        string            `json:"step"`
	Kind        string            `json:"kind"`
	Inputs      map[string]string `json:"inputs"`
	Artifacts   LayerID           `json:"artifacts,omitempty"`    // layer id of target/ ("" if the step keeps none)
	ArtifactsID ContentID         `json:"artifacts_id,omitempty"` // content identity of the flattened target/
	// DepsID is the content identity of its dependencies' part alone: what
	// the steps after it that run cargo key on ("" for none: they use
	// ArtifactsID). See run's inputs.
	DepsID   ContentID    `json:"deps_id,omitempty"`
	MaxMTime int64        `json:"max_mtime,omitempty"` // newest mtime in target/, for the mtime rule
	Source   []SourceFile `json:"source,omitempty"`    // the source laid out for this step, with the mtimes it got
	// A deps step that also built the workspace's own code on its heirs'
	// source (see run's fusing) keeps that whole target/ as a seed: its
	// heirs start from it as from their own last target/.
	Seed         LayerID           `json:"seed,omitempty"`           // layer id of that target/
	SeedSource   []SourceFile      `json:"seed_source,omitempty"`    // the source it was built from, with its mtimes
	SeedMaxMTime int64             `json:"seed_max_mtime,omitempty"` // its newest mtime
	Output       LayerID           `json:"output,omitempty"`         // layer id of the step's output tree
	Bins         map[string]string `json:"bins,omitempty"`           // binary name → workspace package that owns it
	Summary      string            `json:"summary,omitempty"`
	Log          ObjectID          `json:"log,omitempty"` // object hash of the step's log
	Seconds      float64           `json:"seconds"`
	Units        int               `json:"units,omitempty"` // cargo units its commands reported (compiler-artifact messages): the next run's progress total
	Created      time.Time         `json:"created"`
	// Pulled marks a result taken from a remote cache: its layers and
	// objects may be there only (fetched when a restore needs them).
	// Set locally, never pushed.
	Pulled bool `json:"pulled,omitempty"`
}

// SourceFile records one source file as a step saw it.
type SourceFile struct {
	Path  string `json:"p"`
	Hash  string `json:"h"`
	MTime int64  `json:"m"`
}

func (s *Store) resultRel(key Key) string {
	return filepath.Join("results", string(key[:2]), string(key[2:])+".json")
}

// LookupResult returns the result stored for key, or (nil, nil) if none.
// A result that cannot be read as one (damaged) is dropped, with a
// warning: the step is built again.
func (s *Store) LookupResult(key Key) (*Result, error) {
	p := filepath.Join(s.Dir, s.resultRel(key))
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil || r.Key != key {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("drop the damaged result %s: %w", p, err)
		}
		s.Warnf("the stored result %s was damaged (not the result of its key); dropped it, to build again", p)
		return nil, nil
	}
	return &r, nil
}

// SaveResult records a successful step. It is written last, after every
// object and layer it names, so a result that exists is always complete.
func (s *Store) SaveResult(r *Result) error {
	return s.WriteJSON(s.resultRel(r.Key), r)
}
