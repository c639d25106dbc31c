package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Restore with Linkable links the files it may link (same inode as the object, no
// data copied) and copies the others; a snapshot over such a restore sees
// nothing changed.
func TestRestoreLinking(t *testing.T) {
	st := openStore(t)
	src := filepath.Join(t.TempDir(), "src")
	big := func(s string) string { return strings.Repeat(s, InlineMax) } // each with an object
	writeFixture(t, src, []fixture{
		{path: "release/deps/libx.rlib", typ: TypeFile, data: big("rlib"), mtimeN: t1},
		{path: "release/deps/x-test", typ: TypeExec, data: big("exe"), mtimeN: t2},
		{path: "release/.fingerprint/x/lib-x", typ: TypeFile, data: big("fp"), mtimeN: t1},
	})
	id, tree, err := st.Snapshot(src, SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	linkable := func(p string) bool { return strings.Contains(p, "/deps/") }
	if err := st.Restore(dst, tree, RestoreOptions{Linkable: linkable}); err != nil {
		t.Fatal(err)
	}
	for p, e := range tree {
		if e.Type == TypeDir {
			continue
		}
		linked := inode(t, filepath.Join(dst, filepath.FromSlash(p))) == inode(t, st.ObjectPath(e.Hash))
		if linked != linkable(p) {
			t.Errorf("%s: linked = %v, want %v", p, linked, linkable(p))
		}
	}
	if got, want := describe(t, dst), describe(t, src); len(got) != len(want) {
		t.Errorf("restored %v, want %v", got, want)
	}
	// A second restore keeps the links; a snapshot over it stores nothing new.
	if err := st.Restore(dst, tree, RestoreOptions{Linkable: linkable}); err != nil {
		t.Fatal(err)
	}
	if inode(t, filepath.Join(dst, "release/deps/libx.rlib")) != inode(t, st.ObjectPath(tree["release/deps/libx.rlib"].Hash)) {
		t.Error("a second restore replaced a link that was already right")
	}
	child, _, err := st.Snapshot(dst, SnapshotOptions{Parent: id, Base: tree})
	if err != nil {
		t.Fatal(err)
	}
	if l := readLayer(t, st, child); len(l.Entries) != 0 || len(l.Deleted) != 0 {
		t.Errorf("snapshot over a linked restore recorded changes: %+v", l)
	}
	// A linked object carries the mtime the file was built with.
	if e := tree["release/deps/libx.rlib"]; mtimeOf(t, st.ObjectPath(e.Hash)) != t1 {
		t.Errorf("object mtime %d, want %d", mtimeOf(t, st.ObjectPath(e.Hash)), t1)
	}
}

func mtimeOf(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime().UnixNano()
}

// Snapshot with Linkable makes new linkable files store objects without a copy:
// the directory's file and the object are one inode.
func TestSnapshotLinking(t *testing.T) {
	st := openStore(t)
	dir := filepath.Join(t.TempDir(), "dir")
	writeFixture(t, dir, []fixture{
		{path: "deps/liba.rlib", typ: TypeFile, data: "a", mtimeN: t1},
		{path: "fp/a", typ: TypeFile, data: strings.Repeat("fingerprint", InlineMax), mtimeN: t1}, // with an object
	})
	_, tree, err := st.Snapshot(dir, SnapshotOptions{Linkable: func(p string) bool { return strings.HasPrefix(p, "deps/") }})
	if err != nil {
		t.Fatal(err)
	}
	if inode(t, filepath.Join(dir, "deps/liba.rlib")) != inode(t, st.ObjectPath(tree["deps/liba.rlib"].Hash)) {
		t.Error("a linkable file was copied into the store")
	}
	if inode(t, filepath.Join(dir, "fp/a")) == inode(t, st.ObjectPath(tree["fp/a"].Hash)) {
		t.Error("a file that is rewritten in place was linked into the store")
	}
	// A second directory with the same content and mtime shares the object.
	other := filepath.Join(t.TempDir(), "other")
	writeFixture(t, other, []fixture{{path: "deps/liba.rlib", typ: TypeFile, data: "a", mtimeN: t1}})
	if _, _, err := st.Snapshot(other, SnapshotOptions{Linkable: func(string) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	if inode(t, filepath.Join(other, "deps/liba.rlib")) != inode(t, filepath.Join(dir, "deps/liba.rlib")) {
		t.Error("the same content is stored twice")
	}
	// With another mtime it keeps its own file: a link would give it the
	// object's mtime, and cargo reads an output older than its sources as
	// stale.
	third := filepath.Join(t.TempDir(), "third")
	writeFixture(t, third, []fixture{{path: "deps/liba.rlib", typ: TypeFile, data: "a", mtimeN: t2}})
	if _, _, err := st.Snapshot(third, SnapshotOptions{Linkable: func(string) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	if mtimeOf(t, filepath.Join(third, "deps/liba.rlib")) != t2 {
		t.Error("snapshot changed a file's mtime by linking it to an older object")
	}
	assertNoTemp(t, st)
}
