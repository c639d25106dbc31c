package store

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// GC keeps everything a recent result needs and removes the rest.
func TestGC(t *testing.T) {
	st := openStore(t)
	keep := filepath.Join(t.TempDir(), "keep")
	// Larger than InlineMax, so that each has an object.
	writeFixture(t, keep, []fixture{{path: "a", typ: TypeFile, data: strings.Repeat("kept", InlineMax), mtimeN: t1}})
	drop := filepath.Join(t.TempDir(), "drop")
	writeFixture(t, drop, []fixture{{path: "b", typ: TypeFile, data: strings.Repeat("dropped", InlineMax), mtimeN: t1}})
	keptID, keptTree, err := st.Snapshot(keep, SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	droppedID, droppedTree, err := st.Snapshot(drop, SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Result{{Key: Key("aa" + HashBytes([]byte("k"))[2:]), Artifacts: keptID}, {Key: Key("bb" + HashBytes([]byte("d"))[2:]), Artifacts: droppedID}} {
		if err := st.SaveResult(r); err != nil {
			t.Fatal(err)
		}
	}
	// The second result was last used long ago.
	old := time.Now().Add(-60 * 24 * time.Hour)
	if err := os.Chtimes(filepath.Join(st.Dir, st.resultRel(Key("bb"+HashBytes([]byte("d"))[2:]))), old, old); err != nil {
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
	if r, _ := st.LookupResult(Key("aa" + HashBytes([]byte("k"))[2:])); r == nil {
		t.Error("gc removed a recent result")
	}
}

// GC removes the pooled crates that no live vendored set lists, and keeps
// the whole pool when a live set has no list (made by an older smelt).
func TestGCVendorPool(t *testing.T) {
	for _, tt := range []struct {
		name     string
		lists    map[string]string // vendored set → its pool.json ("" for none)
		live     []string          // vendored sets a recent result uses
		wantPool []string
	}{
		{
			name:     "unlisted crates go",
			lists:    map[string]string{"v1": `["a-1.0.0","b-1.0.0"]`, "v2": `["a-1.0.0","c-2.0.0"]`},
			live:     []string{"v1"},
			wantPool: []string{"a-1.0.0", "b-1.0.0"},
		},
		{
			name:     "every live set counts",
			lists:    map[string]string{"v1": `["a-1.0.0"]`, "v2": `["c-2.0.0"]`},
			live:     []string{"v1", "v2"},
			wantPool: []string{"a-1.0.0", "c-2.0.0"},
		},
		{
			name:     "a set without a list keeps the pool",
			lists:    map[string]string{"v1": `["a-1.0.0"]`, "v2": ""},
			live:     []string{"v1", "v2"},
			wantPool: []string{"a-1.0.0", "b-1.0.0", "c-2.0.0"},
		},
		{
			name:     "a set not vendored here uses nothing",
			lists:    map[string]string{"v1": `["b-1.0.0"]`},
			live:     []string{"v1", "gone"},
			wantPool: []string{"b-1.0.0"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			for _, c := range []string{"a-1.0.0", "b-1.0.0", "c-2.0.0"} {
				writeFixture(t, filepath.Join(st.Dir, "vendor", "pool", c), []fixture{{path: "src/lib.rs", typ: TypeFile, data: c, mtimeN: t1}})
			}
			for id, list := range tt.lists {
				dir := filepath.Join(st.Dir, "vendor", id)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if list != "" {
					if err := os.WriteFile(filepath.Join(dir, PoolList), []byte(list), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i, id := range tt.live {
				r := &Result{Key: Key(HashBytes([]byte{byte(i)})), Inputs: map[string]string{"vendor": id}}
				if err := st.SaveResult(r); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := st.GC(time.Hour); err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(filepath.Join(st.Dir, "vendor", "pool"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			if !slices.Equal(got, tt.wantPool) {
				t.Errorf("pool after gc: %v, want %v", got, tt.wantPool)
			}
			if tmp, _ := os.ReadDir(filepath.Join(st.Dir, "tmp")); len(tmp) != 0 {
				t.Errorf("gc left %d entries in tmp/", len(tmp))
			}
		})
	}
}
