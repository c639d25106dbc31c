package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"smelt/internal/par"
)

// Entry types.
const (
	TypeFile    = "f"
	TypeExec    = "x"
	TypeSymlink = "l"
	TypeDir     = "d"
)

// Entry is one path of a tree. For files Hash is the content hash; for
// symlinks it is the link target (kept in the same field, so typed ObjectID
// too: convert it where it is read as a target). MTime (ns) is kept because cargo decides
// freshness by mtime: a restored target/ must carry the times it was built with.
type Entry struct {
	Path  string   `json:"p"`
	Type  string   `json:"t"`
	Size  int64    `json:"s,omitempty"`
	MTime int64    `json:"m,omitempty"`
	Hash  ObjectID `json:"h,omitempty"`
	// Data is the base64 content of a file of at most InlineMax bytes
	// (empty for an empty file). Such a file has no object of its own
	// (unless it was linked: see SnapshotOptions.Linkable): a restore writes the
	// small files (cargo's fingerprints, dep-info) from the manifest it has
	// already read, and a snapshot creates no store file per fingerprint
	// (a file creation cost 0.3 ms on this project's test machine).
	Data string `json:"d,omitempty"`
	// OM is the mtime (ns) of the file's object when the entry was
	// recorded, if not MTime (an object stored earlier from a file of other
	// times): with Size, the object's cheap identity (see vouch).
	OM int64 `json:"om,omitempty"`
}

// InlineMax is the largest file whose content a layer carries in Data.
// On fd-find's release target/ 943 of 2037 files are at most 1 KiB, and
// together 203 KB.
const InlineMax = 1024

// inline returns e's content from the manifest, if it carries it.
func (e Entry) inline() ([]byte, bool) {
	if e.Type != TypeFile && e.Type != TypeExec {
		return nil, false
	}
	if e.Size == 0 {
		return nil, true
	}
	if e.Data == "" {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(e.Data)
	if err != nil || int64(len(b)) != e.Size {
		return nil, false
	}
	return b, true
}

// Layer is a tree stored as the difference from its parent: the entries that
// are new or changed, and the paths that are gone. A chain of steps thus
// costs little more than its last delta.
type Layer struct {
	Parent  LayerID  `json:"parent,omitempty"`
	Depth   int      `json:"depth,omitempty"` // layers below this one
	Entries []Entry  `json:"entries"`
	Deleted []string `json:"deleted,omitempty"`
}

// MaxDepth bounds a layer chain's length.
const MaxDepth = 16

// Tree is a flattened layer chain: path → entry.
type Tree map[string]Entry

// Sorted returns the entries in path order.
func (t Tree) Sorted() []Entry {
	out := make([]Entry, 0, len(t))
	for _, e := range t {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// ContentID identifies a tree by content alone (paths, types, hashes; not
// mtimes), so that a step whose upstream re-ran but produced the same bytes
// keeps its key: early cutoff.
func (t Tree) ContentID() ContentID {
	var b strings.Builder
	for _, e := range t.Sorted() {
		if e.Type == TypeDir {
			continue
		}
		fmt.Fprintf(&b, "%s\x00%s\x00%s\n", e.Path, e.Type, e.Hash)
	}
	return ContentID(HashBytes([]byte(b.String())))
}

// Overlay returns top laid over base: every entry of top, and the entries of
// base that top does not replace. group names the directory an entry belongs
// to as a whole ("" for none): base's entries in a group that top also has
// are dropped, so a group comes entirely from one side.
func Overlay(base, top Tree, group func(string) string) Tree {
	topGroups := map[string]bool{}
	for p := range top {
		if g := group(p); g != "" {
			topGroups[g] = true
		}
	}
	out := make(Tree, len(base)+len(top))
	for p, e := range base {
		if _, ok := top[p]; ok || topGroups[group(p)] {
			continue
		}
		out[p] = e
	}
	for p, e := range top {
		out[p] = e
	}
	return out
}

// NewestWhere is the newest mtime among the tree's files for whose path
// keep holds.
func (t Tree) NewestWhere(keep func(string) bool) int64 {
	var m int64
	for p, e := range t {
		if e.Type != TypeDir && e.MTime > m && keep(p) {
			m = e.MTime
		}
	}
	return m
}

// MaxMTime is the newest mtime in the tree.
func (t Tree) MaxMTime() int64 {
	var m int64
	for _, e := range t {
		if e.Type != TypeDir && e.MTime > m {
			m = e.MTime
		}
	}
	return m
}

func (s *Store) layerRel(id LayerID) string {
	return filepath.Join("layers", string(id[:2]), string(id[2:])+".json")
}

// PutLayer stores a layer and returns its id.
func (s *Store) PutLayer(l *Layer) (LayerID, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return "", err
	}
	id := LayerID(HashBytes(b))
	dst := filepath.Join(s.Dir, s.layerRel(id))
	if _, err := os.Stat(dst); err == nil {
		return id, nil
	}
	return id, s.writeAtomic(dst, b)
}

// Flatten resolves a layer and its ancestors into a tree. An empty id is the
// empty tree.
func (s *Store) Flatten(id LayerID) (Tree, error) {
	var chain []*Layer
	var ids []LayerID
	for id != "" {
		l, err := s.readLayer(id)
		if err != nil {
			return nil, err
		}
		chain = append(chain, l)
		ids = append(ids, id)
		id = l.Parent
	}
	t := Tree{}
	for i := len(chain) - 1; i >= 0; i-- {
		for _, d := range chain[i].Deleted {
			delete(t, d)
		}
		for _, e := range chain[i].Entries {
			t[e.Path] = e
		}
		s.NoteOrigins(ids[i], chain[i])
	}
	return t, nil
}

// scan walks dir and returns its entries without hashing files.
func scan(dir string) ([]Entry, error) {
	var out []Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := Entry{Path: rel, MTime: info.ModTime().UnixNano()}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.Type, e.Hash, e.MTime = TypeSymlink, ObjectID(target), 0
		case info.IsDir():
			e.Type, e.MTime = TypeDir, 0
		case info.Mode().IsRegular():
			e.Type, e.Size = TypeFile, info.Size()
			if info.Mode()&0o111 != 0 {
				e.Type = TypeExec
			}
		default:
			return nil // sockets, fifos: not build outputs
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// ioWorkers is how many files a restore copies or links at once. Restoring
// is bound by the disk, not the CPU: with a cold page cache each file costs
// a few random reads (directory, inode, data), and more requests in flight
// let the device overlap them. Measured on fd-find's 519 MiB release
// target/ with caches dropped (6 runs each, 2 CPUs): median 0.54 s with 2
// workers, 0.465 s with 8, 0.455 s with 32.
func ioWorkers() int { return max(8, 4*runtime.GOMAXPROCS(0)) }

// SnapshotOptions says how Snapshot stores a directory. The zero value
// stores it whole, as a layer of its own, copying every file.
type SnapshotOptions struct {
	// Parent is the layer the new one is stored over, and Base its
	// flattened tree: the layer holds only what differs from Base. Files
	// whose type, size and mtime equal Base's are taken as unchanged
	// without being read, like git's index: smelt owns the directory and
	// restored those files itself.
	Parent LayerID
	Base   Tree
	// Known, when not nil, is what smelt restored into dir (a superset of
	// Base): its files too are taken as unchanged without being read.
	Known Tree
	// Linkable, when not nil, names the new files that become store
	// objects by hard link rather than by copy: the directory's file and
	// the object stay one file, nothing is copied and nothing is stored
	// twice. The rule of RestoreOptions.Linkable applies: only files that
	// are replaced, never rewritten in place.
	Linkable func(path string) bool
	// Keep, when not nil, is given dir's tree (its files already stored
	// as objects) and returns what of it the layer holds: for a caller
	// that stores only part of a directory, or another layer from it
	// first (PutTree).
	Keep func(Tree) (Tree, error)
}

// Snapshot stores the contents of dir as a layer (see SnapshotOptions) and
// returns the layer's id and the tree it holds.
func (s *Store) Snapshot(dir string, o SnapshotOptions) (id LayerID, tree Tree, err error) {
	if tree, err = s.capture(dir, o.Base, o.Known, o.Linkable); err != nil {
		return "", nil, err
	}
	if o.Keep != nil {
		if tree, err = o.Keep(tree); err != nil {
			return "", nil, err
		}
	}
	id, err = s.PutTree(o.Parent, o.Base, tree)
	return id, tree, err
}

// capture is Snapshot without the layer: it stores dir's files as
// objects and returns its tree.
func (s *Store) capture(dir string, base, known Tree, linkable func(string) bool) (Tree, error) {
	entries, err := scan(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", dir, err)
	}
	if known == nil {
		known = base
	}
	var toHash []*Entry
	for i := range entries {
		e := &entries[i]
		if e.Type != TypeFile && e.Type != TypeExec {
			continue
		}
		if b, ok := known[e.Path]; ok && b.Type == e.Type && b.Size == e.Size &&
			(b.MTime == e.MTime || s.isObject(filepath.Join(dir, filepath.FromSlash(e.Path)), b)) {
			// Unchanged (or still the hard link Restore with Linkable made).
			e.Hash, e.MTime, e.Data, e.OM = b.Hash, b.MTime, b.Data, b.OM
			continue
		}
		toHash = append(toHash, e)
	}
	err = par.Each(runtime.GOMAXPROCS(0), toHash, func(e *Entry) error {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		var h ObjectID
		if e.Size <= InlineMax {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h, e.Size = ObjectID(HashBytes(b)), int64(len(b))
			if len(b) <= InlineMax {
				e.Data = base64.StdEncoding.EncodeToString(b)
			}
		} else {
			hs, _, err := HashFile(p)
			if err != nil {
				return err
			}
			h = ObjectID(hs)
		}
		e.Hash = h
		if linkable != nil && linkable(e.Path) && s.adopt(p, h) == nil {
			e.OM = s.objectTime(h, e.MTime)
			return nil
		}
		if _, ok := e.inline(); ok {
			// The layer carries it: an object would be one more file to
			// create (cargo's fingerprints are most of a target/'s files).
			return nil
		}
		if err := s.putFileTime(p, h, e.MTime); err != nil {
			return err
		}
		e.OM = s.objectTime(h, e.MTime)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", dir, err)
	}
	tree := make(Tree, len(entries))
	for _, e := range entries {
		tree[e.Path] = e
	}
	return tree, nil
}

// objectTime is the OM of an entry of mtime mtime whose object is hash:
// the object's mtime if it differs.
func (s *Store) objectTime(hash ObjectID, mtime int64) int64 {
	if oi, err := os.Stat(s.ObjectPath(hash)); err == nil && oi.ModTime().UnixNano() != mtime {
		return oi.ModTime().UnixNano()
	}
	return 0
}

// PutTree stores tree, whose files' objects are in the store, as a layer
// over base (whose id is parent) and returns the layer's id: for a tree
// the caller made (Snapshot makes and stores a directory's).
func (s *Store) PutTree(parent LayerID, base, tree Tree) (LayerID, error) {
	// Chains stay short, so that flattening one stays cheap: past
	// MaxDepth a layer lists everything (only metadata: the file contents
	// are shared objects either way).
	depth := 0
	if parent != "" {
		pl, err := s.readLayer(parent)
		if err != nil {
			return "", err
		}
		depth = pl.Depth + 1
		if depth > MaxDepth {
			parent, base, depth = "", nil, 0
		}
	}
	layer := &Layer{Parent: parent, Depth: depth, Entries: []Entry{}}
	for _, e := range tree.Sorted() {
		if b, ok := base[e.Path]; !ok || b != e {
			layer.Entries = append(layer.Entries, e)
		}
	}
	for p := range base {
		if _, ok := tree[p]; !ok {
			layer.Deleted = append(layer.Deleted, p)
		}
	}
	sort.Strings(layer.Deleted)
	return s.PutLayer(layer)
}

// RestoreOptions says how Restore lays a tree out. The zero value copies
// every file and makes dir hold exactly the tree.
type RestoreOptions struct {
	// Linkable, when not nil, names the files that are hard links to the
	// store's objects instead of copies: no data is copied. Only files
	// that every program writing into the directory replaces (never
	// rewrites in place) may be linked, or the store's object would
	// change with them.
	Linkable func(path string) bool
	// Over lays the tree over what dir holds: what the tree does not name
	// stays.
	Over bool
}

// Restore makes dir hold tree, with the recorded mtimes (and, unless
// o.Over, nothing else). Files that are already in place with the same
// type, size and mtime are left alone, so restoring into a warm working
// directory costs only the difference.
func (s *Store) Restore(dir string, tree Tree, o RestoreOptions) error {
	linkable := o.Linkable
	existing, err := scan(dir)
	if err != nil {
		return fmt.Errorf("restore %s: %w", dir, err)
	}
	// Remove what should not be there, deepest first.
	sort.Slice(existing, func(i, j int) bool { return existing[i].Path > existing[j].Path })
	have := map[string]Entry{}
	var dmg damages
	for _, e := range existing {
		want, ok := tree[e.Path]
		if ok && (same(want, e) || s.isIntactObject(filepath.Join(dir, filepath.FromSlash(e.Path)), want, &dmg)) {
			have[e.Path] = e
			continue
		}
		if !ok && o.Over {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, filepath.FromSlash(e.Path))); err != nil {
			return fmt.Errorf("restore %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sorted := tree.Sorted()
	var files []Entry
	for _, e := range sorted {
		if _, ok := have[e.Path]; ok {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		switch e.Type {
		case TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(string(e.Hash), p); err != nil {
				return err
			}
		default:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			files = append(files, e)
		}
	}
	// Objects the store lacks come from the remote caches, if any; one
	// that cannot be fetched is damage that copyOut reports.
	s.fetchMissing(files)
	err = par.Each(ioWorkers(), files, func(e Entry) error {
		dst := filepath.Join(dir, filepath.FromSlash(e.Path))
		if linkable != nil && linkable(e.Path) && s.link(e, dst) == nil {
			return nil
		}
		if err := s.copyOut(e, dst); !dmg.add(err) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Every file that is not damaged is in place; the caller drops what
	// was built from the damaged ones.
	return dmg.err()
}

// adopt makes the file at p and the object with hash h one file: p becomes
// the object if there is none yet, else p is replaced by a link to it
// (when their modes agree).
func (s *Store) adopt(p string, h ObjectID) error { return s.share(p, h, true) }

// Share makes the file at p, whose contents hash to h, and the object h one
// file, as adopt does, but whatever their mtimes: for files that are only
// ever read and whose mtime nothing compares (vendored sources).
func (s *Store) Share(p string, h ObjectID) error { return s.share(p, h, false) }

func (s *Store) share(p string, h ObjectID, sameMTime bool) error {
	obj := s.ObjectPath(h)
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	oi, err := os.Stat(obj)
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(obj), 0o755); err != nil {
			return err
		}
		tmp := filepath.Join(s.Dir, "tmp", "adopt-"+string(h))
		os.Remove(tmp)
		if err := os.Link(p, tmp); err != nil {
			return err
		}
		return os.Rename(tmp, obj)
	}
	if os.SameFile(fi, oi) {
		return nil
	}
	if oi.Size() != fi.Size() {
		// The object is damaged (it is named by content p has): p,
		// just hashed, takes its place.
		tmp := filepath.Join(s.Dir, "tmp", "adopt-"+string(h))
		os.Remove(tmp)
		if err := os.Link(p, tmp); err != nil {
			return err
		}
		return os.Rename(tmp, obj)
	}
	if oi.Mode() != fi.Mode() || sameMTime && !oi.ModTime().Equal(fi.ModTime()) {
		// Linking would change the file's mode or mtime (see link): keep it.
		return nil
	}
	tmp := p + ".smelt-link"
	if err := os.Link(obj, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// link makes dst a hard link to e's object, if the object's mode and
// mtime are e's. A link carries the object's mtime, and cargo takes an
// output older than its sources for stale: a crate rebuilt with the same
// bytes (its object older) must be copied with its own mtime instead.
func (s *Store) link(e Entry, dst string) error {
	obj := s.ObjectPath(e.Hash)
	info, err := os.Stat(obj)
	if err != nil {
		return err
	}
	// The mtime check is also the object's cheap identity (vouch): a
	// write through another link changes it, and the file is copied
	// (and checked) instead.
	if (info.Mode()&0o111 != 0) != (e.Type == TypeExec) || info.ModTime().UnixNano() != e.MTime ||
		info.Size() != e.Size || e.objectMTime() != e.MTime {
		return fmt.Errorf("mode, size or mtime differs")
	}
	return os.Link(obj, dst)
}

// isObject reports whether the file at p is a hard link to want's object
// (restored by Restore with Linkable): its mtime is the object's, not want's, but
// its content is want's.
func (s *Store) isObject(p string, want Entry) bool {
	if want.Type != TypeFile && want.Type != TypeExec {
		return false
	}
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != want.Size {
		return false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Nlink < 2 {
		return false
	}
	oi, err := os.Stat(s.ObjectPath(want.Hash))
	return err == nil && os.SameFile(fi, oi)
}

// isIntactObject is isObject, for a link that is to stay: the object
// must also be intact (vouch), or it is dropped, its damage added to dmg,
// and the link replaced.
func (s *Store) isIntactObject(p string, want Entry, dmg *damages) bool {
	if !s.isObject(p, want) {
		return false
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	err = s.vouch(want, f, fi)
	dmg.add(err)
	return err == nil
}

// same reports whether an existing entry can stand for the wanted one
// without being rewritten.
func same(want, have Entry) bool {
	if want.Type != have.Type {
		return false
	}
	switch want.Type {
	case TypeDir:
		return true
	case TypeSymlink:
		return want.Hash == have.Hash
	}
	return want.Size == have.Size && want.MTime == have.MTime
}

// copyOut writes the object of e to dst with e's mode and mtime. It never
// links: cargo rewrites some files in place, which would corrupt the store.
func (s *Store) copyOut(e Entry, dst string) error {
	var src io.Reader
	if b, ok := e.inline(); ok {
		src = bytes.NewReader(b)
	} else {
		f, err := os.Open(s.ObjectPath(e.Hash))
		if errors.Is(err, fs.ErrNotExist) {
			d := &DamageError{Store: s.Dir}
			d.addObject(e.Hash, e.Path, s.missing())
			return d
		}
		if err != nil {
			return fmt.Errorf("restore %s: %w", dst, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if err := s.vouch(e, f, fi); err != nil {
			return err
		}
		src = f
	}
	mode := os.FileMode(0o644)
	if e.Type == TypeExec {
		mode = 0o755
	}
	// Where dst does not exist yet (a fresh directory), write it in place:
	// a file left half-written by an interruption lacks e's mtime, which
	// is set last, so the next restore replaces it. Else write a temporary
	// and rename it over dst, so that dst is never seen half-written.
	tmp := dst
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if errors.Is(err, fs.ErrExist) {
		tmp = dst + ".smelt-tmp"
		out, err = os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	}
	if err != nil {
		return err
	}
	fail := func(err error) error {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("restore %s: %w", dst, err)
	}
	// A reflink where the file system has them (btrfs, xfs): no data
	// copied, and a write to either file leaves the other alone.
	if f, ok := src.(*os.File); !ok || unix.IoctlFileClone(int(out.Fd()), int(f.Fd())) != nil {
		if _, err := io.Copy(out, src); err != nil {
			return fail(err)
		}
	}
	if err := out.Chmod(mode); err != nil { // whatever the umask
		return fail(err)
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if e.MTime != 0 {
		t := time.Unix(0, e.MTime)
		if err := os.Chtimes(tmp, t, t); err != nil {
			return err
		}
	}
	if tmp == dst {
		return nil
	}
	return os.Rename(tmp, dst)
}
