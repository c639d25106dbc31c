package run

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"smelt/internal/depsrc"
	"smelt/internal/store"
)

// gc keeps the output directory a live result link points at, removes an
// old one no link points at and old working directories, and keeps the
// vendored sets (and their pooled crates) that a remaining result names.
func TestGCCaches(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(st.Dir, "out", "live")
	dead := filepath.Join(st.Dir, "out", "dead")
	oldWork := filepath.Join(st.Dir, "work", "old-project")
	newWork := filepath.Join(st.Dir, "work", "new-project")
	proj := t.TempDir()
	for _, d := range []string{live, dead} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(proj, filepath.Base(d))
		if err := os.Symlink(d, link); err != nil {
			t.Fatal(err)
		}
		if err := saveRoot(st, &root{Link: link, Dir: d}); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(proj, "dead"))
	// Two vendored sets using the pool; a result names the first only.
	pool := depsrc.PoolDir(st)
	for set, crates := range map[string]string{"v1": `["a-1.0.0"]`, "v2": `["b-1.0.0"]`} {
		dir := filepath.Join(st.Dir, "vendor", set)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, depsrc.PoolList), []byte(crates), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{filepath.Join(pool, "a-1.0.0"), filepath.Join(pool, "b-1.0.0"), oldWork, newWork} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SaveResult(&Result{Result: store.Result{Key: store.Key(store.HashBytes([]byte("r")))}, Inputs: map[string]string{"vendor": "v1"}}); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	for _, d := range []string{live, dead, oldWork} {
		os.Chtimes(d, old, old)
	}
	stats, err := GC(st, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		kept bool
	}{
		{live, true}, {dead, false}, {oldWork, false}, {newWork, true},
		{filepath.Join(st.Dir, "vendor", "v1"), true}, {filepath.Join(st.Dir, "vendor", "v2"), false},
		{filepath.Join(pool, "a-1.0.0"), true}, {filepath.Join(pool, "b-1.0.0"), false},
	} {
		if _, err := os.Stat(c.path); (err == nil) != c.kept {
			t.Errorf("after gc %s kept = %v, want %v", c.path, err == nil, c.kept)
		}
	}
	// dead, old-project, v2, b-1.0.0 and the tmp/ directory b went through.
	if stats.Results != 0 || stats.Other != 5 {
		t.Errorf("gc stats %+v, want no result and 5 other entries removed", stats)
	}
	if tmp, _ := os.ReadDir(filepath.Join(st.Dir, "tmp")); len(tmp) != 0 {
		t.Errorf("gc left %v in tmp/", tmp)
	}
	var roots []string
	entries, _ := os.ReadDir(filepath.Join(st.Dir, "gcroots"))
	for _, e := range entries {
		roots = append(roots, e.Name())
	}
	if want := []string{filepath.Base(rootRel(filepath.Join(proj, "live")))}; !slices.Equal(roots, want) {
		t.Errorf("gc roots %v, want only the live link's %v", roots, want)
	}
}
