package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bigTree snapshots a directory of two files with objects of their own.
func bigTree(t *testing.T, st *Store) (LayerID, Tree) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	writeFixture(t, src, []fixture{
		{path: "deps/liba.rlib", typ: TypeFile, data: strings.Repeat("a", 2*InlineMax), mtimeN: t1},
		{path: "bin/app", typ: TypeExec, data: strings.Repeat("b", 2*InlineMax), mtimeN: t2},
	})
	id, tree, err := st.Snapshot(src, SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return id, tree
}

// writeInPlace changes byte 10 of a file, as a tool writing through a
// hard link does; with keep its mtime is put back (bit rot, or a tool
// that restores times).
func writeInPlace(t *testing.T, p string, keep bool) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), 10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mt := fi.ModTime().Add(time.Second)
	if keep {
		mt = fi.ModTime()
	}
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
}

// An object changed in place or truncated is never restored: the restore
// reports the damage, drops the object and restores every other file.
func TestRestoreChangedObject(t *testing.T) {
	for _, c := range []struct {
		linking, truncate bool
	}{{false, false}, {true, false}, {false, true}, {true, true}} {
		linking := c.linking
		st := openStore(t)
		_, tree := bigTree(t, st)
		obj := st.ObjectPath(tree["deps/liba.rlib"].Hash)
		if c.truncate {
			fi, _ := os.Stat(obj)
			if err := os.Truncate(obj, 100); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(obj, fi.ModTime(), fi.ModTime()) // only the size tells
		} else {
			writeInPlace(t, obj, false)
		}
		var linkable func(string) bool
		if linking {
			linkable = func(p string) bool { return strings.HasPrefix(p, "deps/") }
		}
		dst := filepath.Join(t.TempDir(), "dst")
		err := st.Restore(dst, tree, RestoreOptions{Linkable: linkable})
		var d *DamageError
		if !errors.As(err, &d) || !errors.Is(err, ErrDamaged) || len(d.Objects) != 1 || !strings.Contains(d.Objects[0], "deps/liba.rlib") {
			t.Fatalf("linking %v: restore of a changed object: %v", linking, err)
		}
		if st.HasObject(tree["deps/liba.rlib"].Hash) {
			t.Errorf("linking %v: the changed object is still in the store", linking)
		}
		if _, err := os.Stat(filepath.Join(dst, "deps/liba.rlib")); err == nil {
			t.Errorf("linking %v: the changed object was restored", linking)
		}
		if b, err := os.ReadFile(filepath.Join(dst, "bin/app")); err != nil || string(b) != strings.Repeat("b", 2*InlineMax) {
			t.Errorf("linking %v: the intact file was not restored: %v", linking, err)
		}
	}
}

// An object whose mtime alone changed (touched) is re-hashed, found
// intact, and restored.
func TestRestoreTouchedObject(t *testing.T) {
	st := openStore(t)
	_, tree := bigTree(t, st)
	obj := st.ObjectPath(tree["bin/app"].Hash)
	later := time.Now()
	if err := os.Chtimes(obj, later, later); err != nil {
		t.Fatal(err)
	}
	if err := st.Restore(filepath.Join(t.TempDir(), "dst"), tree, RestoreOptions{}); err != nil {
		t.Fatalf("restore of a touched, intact object: %v", err)
	}
}

// A link that an earlier restore made stays only while its object is
// intact: written through (another link), it is replaced, and the
// object dropped.
func TestRestoreKeepsOnlyIntactLinks(t *testing.T) {
	st := openStore(t)
	_, tree := bigTree(t, st)
	linkable := func(p string) bool { return strings.HasPrefix(p, "deps/") }
	dst := filepath.Join(t.TempDir(), "dst")
	if err := st.Restore(dst, tree, RestoreOptions{Linkable: linkable}); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if err := st.Restore(other, tree, RestoreOptions{Linkable: linkable}); err != nil {
		t.Fatal(err)
	}
	writeInPlace(t, filepath.Join(other, "deps/liba.rlib"), false)
	if err := st.Restore(dst, tree, RestoreOptions{Linkable: linkable}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("restore over a link to a changed object: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "deps/liba.rlib")); err == nil {
		t.Error("the link to the changed object was kept")
	}
}

// A layer is checked against its id: changed or lost, it is damage.
func TestFlattenChangedLayer(t *testing.T) {
	st := openStore(t)
	id, _ := bigTree(t, st)
	p := filepath.Join(st.Dir, st.layerRel(id))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "bin/app", "bin/xyz", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Flatten(id); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Flatten of a changed layer: %v", err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Error("the changed layer is still in the store")
	}
}

// DropUsers drops the results that need a damaged object, keeps the
// others, and keeps a result whose seed alone needs it, without the seed.
func TestDropUsers(t *testing.T) {
	st := openStore(t)
	id, tree := bigTree(t, st)
	other := filepath.Join(t.TempDir(), "other")
	writeFixture(t, other, []fixture{{path: "c", typ: TypeFile, data: strings.Repeat("c", 2*InlineMax), mtimeN: t1}})
	otherID, _, err := st.Snapshot(other, SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key := func(s string) Key { return Key(HashBytes([]byte(s))) }
	// A step's record: the store's fields and its own.
	type stepResult struct {
		Result
		Summary      string `json:"summary"`
		SeedMaxMTime int64  `json:"seed_max_mtime,omitempty"`
	}
	results := []*stepResult{
		{Result: Result{Key: key("uses"), Artifacts: id}},
		{Result: Result{Key: key("seed"), Artifacts: otherID, Seed: id}, Summary: "3 passed", SeedMaxMTime: 5},
		{Result: Result{Key: key("other"), Artifacts: otherID}},
	}
	for _, r := range results {
		if err := st.SaveResult(r); err != nil {
			t.Fatal(err)
		}
	}
	d := &DamageError{Store: st.Dir}
	d.addObject(tree["bin/app"].Hash, "bin/app", "changed")
	n, err := st.DropUsers(d)
	if err != nil || n != 2 {
		t.Fatalf("DropUsers = %d, %v; want 2", n, err)
	}
	if r, _ := lookupResult(st, key("uses")); r != nil {
		t.Error("a result that uses the damaged object is still there")
	}
	var seeded stepResult
	if ok, _ := st.LookupResult(key("seed"), &seeded); !ok || seeded.Seed != "" || seeded.SeedMaxMTime != 0 || seeded.Artifacts != otherID || seeded.Summary != "3 passed" {
		t.Errorf("the result whose seed used it: %+v, want it without its seed and seed_* fields, the rest kept", seeded)
	}
	if r, _ := lookupResult(st, key("other")); r == nil {
		t.Error("a result that does not use it was dropped")
	}
}

// gc drops a result whose layer is lost, instead of failing.
func TestGCLostLayer(t *testing.T) {
	st := openStore(t)
	var warned []string
	st.Warn = func(m string) { warned = append(warned, m) }
	id, _ := bigTree(t, st)
	k := Key(HashBytes([]byte("k")))
	if err := st.SaveResult(&Result{Key: k, Artifacts: id}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(st.Dir, st.layerRel(id))); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GC(GCOptions{Keep: usedWithin(time.Hour)}); err != nil {
		t.Fatalf("gc with a lost layer: %v", err)
	}
	if r, _ := lookupResult(st, k); r != nil {
		t.Error("gc kept a result whose layer is lost")
	}
	if len(warned) != 1 {
		t.Errorf("warnings %q, want one", warned)
	}
}

// Verify finds an object that rotted with its size and mtime kept; repair
// drops it, the results that need it, and the working directories' links
// to it.
func TestVerifyRepair(t *testing.T) {
	st := openStore(t)
	id, tree := bigTree(t, st)
	k := Key(HashBytes([]byte("k")))
	if err := st.SaveResult(&Result{Key: k, Artifacts: id}); err != nil {
		t.Fatal(err)
	}
	workRoot := t.TempDir()
	work := filepath.Join(workRoot, "p", "step")
	if err := st.Restore(work, tree, RestoreOptions{Linkable: func(p string) bool { return strings.HasPrefix(p, "deps/") }}); err != nil {
		t.Fatal(err)
	}
	if rep, err := st.Verify(false); err != nil || rep.Damage != nil || rep.Objects != 2 {
		t.Fatalf("Verify of an intact store: %+v, %v", rep, err)
	}
	writeInPlace(t, st.ObjectPath(tree["deps/liba.rlib"].Hash), true)
	rep, err := st.Verify(false)
	if err != nil || rep.Damage == nil || len(rep.Damage.Objects) != 1 || rep.Users != 1 {
		t.Fatalf("Verify of a rotted object: %+v, %v", rep, err)
	}
	if r, _ := lookupResult(st, k); r == nil {
		t.Fatal("Verify without repair dropped a result")
	}
	if rep, err = st.Verify(true, workRoot); err != nil || rep.Users != 1 || rep.Links != 1 {
		t.Fatalf("Verify --repair: %+v, %v", rep, err)
	}
	if r, _ := lookupResult(st, k); r != nil {
		t.Error("repair kept a result that needs the rotted object")
	}
	if _, err := os.Stat(filepath.Join(work, "deps/liba.rlib")); err == nil {
		t.Error("repair kept a working directory's link to the rotted object")
	}
	if rep, err := st.Verify(false); err != nil || rep.Damage != nil {
		t.Errorf("Verify after repair: %+v, %v", rep, err)
	}
}

// Sharing a file with an object of another size (damaged: truncated)
// makes the file the object, instead of linking the file to it.
func TestShareReplacesDamagedObject(t *testing.T) {
	st := openStore(t)
	_, tree := bigTree(t, st)
	e := tree["bin/app"]
	if err := os.Truncate(st.ObjectPath(e.Hash), 10); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(p, []byte(strings.Repeat("b", 2*InlineMax)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := st.Share(p, e.Hash); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || len(b) != 2*InlineMax {
		t.Fatalf("the shared file now holds %d bytes (%v)", len(b), err)
	}
	if inode(t, p) != inode(t, st.ObjectPath(e.Hash)) {
		t.Error("the file did not become the object")
	}
}
