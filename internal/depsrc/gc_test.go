package depsrc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"smelt/internal/store"
)

// gc removes the pooled crates that no live vendored set lists, and keeps
// the whole pool when a live set has no list (made by an older smelt).
func TestSweepPool(t *testing.T) {
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
			st, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []string{"a-1.0.0", "b-1.0.0", "c-2.0.0"} {
				if err := os.MkdirAll(filepath.Join(PoolDir(st), c, "src"), 0o755); err != nil {
					t.Fatal(err)
				}
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
			live := map[string]bool{}
			for _, id := range tt.live {
				live[id] = true
			}
			// Under gc, which empties tmp/ after the sweep.
			sweep := func([]store.Record) (int, error) { return Sweep(st, live) }
			if _, err := st.GC(store.GCOptions{Sweep: sweep}); err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(PoolDir(st))
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
