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
	stats, err := st.GC(GCOptions{Keep: usedWithin(30 * 24 * time.Hour)})
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
	if r, _ := lookupResult(st, Key("aa"+HashBytes([]byte("k"))[2:])); r == nil {
		t.Error("gc removed a recent result")
	}
}

// usedWithin keeps the results used in the last d.
func usedWithin(d time.Duration) func(Record, time.Time) bool {
	cutoff := time.Now().Add(-d)
	return func(_ Record, used time.Time) bool { return !used.Before(cutoff) }
}

// named is a record with a step field of its own.
type named struct {
	Result
	Step string `json:"step"`
}

// GC reads results into New's records, calls Sweep with exactly the
// results that stay, then empties tmp/.
func TestGCSweepGetsKeptResults(t *testing.T) {
	st := openStore(t)
	var keys []Key
	for _, n := range []string{"a", "b", "c"} {
		k := Key(HashBytes([]byte(n)))
		keys = append(keys, k)
		if err := st.SaveResult(&named{Result: Result{Key: k}, Step: n}); err != nil {
			t.Fatal(err)
		}
	}
	debris, err := st.TempDir("debris-")
	if err != nil {
		t.Fatal(err)
	}
	var swept []string
	stats, err := st.GC(GCOptions{
		New:  func() Record { return &named{} },
		Keep: func(r Record, _ time.Time) bool { return r.(*named).Step != "b" },
		Sweep: func(kept []Record) (int, error) {
			for _, r := range kept {
				swept = append(swept, r.(*named).Step)
			}
			if _, err := os.Stat(debris); err != nil {
				t.Errorf("tmp/ was emptied before Sweep: %v", err)
			}
			return 2, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(swept)
	if !slices.Equal(swept, []string{"a", "c"}) {
		t.Errorf("Sweep was given %v, want the kept results a and c", swept)
	}
	if stats.Results != 1 || stats.Other != 3 {
		t.Errorf("gc stats %+v, want 1 result and 3 others (2 swept, 1 in tmp/)", stats)
	}
	if r, _ := lookupResult(st, keys[1]); r != nil {
		t.Error("gc kept the result Keep rejected")
	}
	if _, err := os.Stat(debris); err == nil {
		t.Error("gc left tmp/ debris")
	}
}
