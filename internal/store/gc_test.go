package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// GC keeps everything a recent result needs and removes the rest.
func TestGC(t *testing.T) {
	st := openStore(t)
	keep := filepath.Join(t.TempDir(), "keep")
	writeFixture(t, keep, []fixture{{path: "a", typ: TypeFile, data: "kept", mtimeN: t1}})
	drop := filepath.Join(t.TempDir(), "drop")
	writeFixture(t, drop, []fixture{{path: "b", typ: TypeFile, data: "dropped", mtimeN: t1}})
	keptID, keptTree, err := st.Snapshot(keep, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	droppedID, droppedTree, err := st.Snapshot(drop, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Result{{Key: "aa" + HashBytes([]byte("k"))[2:], Artifacts: keptID}, {Key: "bb" + HashBytes([]byte("d"))[2:], Artifacts: droppedID}} {
		if err := st.SaveResult(r); err != nil {
			t.Fatal(err)
		}
	}
	// The second result was last used long ago.
	old := time.Now().Add(-60 * 24 * time.Hour)
	if err := os.Chtimes(filepath.Join(st.Dir, st.resultRel("bb"+HashBytes([]byte("d"))[2:])), old, old); err != nil {
		t.Fatal(err)
	}
	stats, err := st.GC(30 * 24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Results != 1 || stats.Layers != 1 || stats.Objects != 1 {
		t.Errorf("gc removed %+v, want 1 result, 1 layer, 1 object", stats)
	}
	if !st.HasObject(keptTree["a"].Hash) {
		t.Error("gc removed an object a live result needs")
	}
	if st.HasObject(droppedTree["b"].Hash) {
		t.Error("gc kept an object only an old result needed")
	}
	if _, err := st.Flatten(keptID); err != nil {
		t.Errorf("the live layer is gone: %v", err)
	}
	if r, _ := st.LookupResult("aa" + HashBytes([]byte("k"))[2:]); r == nil {
		t.Error("gc removed a recent result")
	}
}
