package depsrc

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smelt/internal/store"
)

// crateDir writes a vendored crate with its .cargo-checksum.json and its
// stat record.
func crateDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "c-1.0.0")
	sums := map[string]string{}
	for f, data := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		sums[f] = store.HashBytes([]byte(data))
	}
	b, _ := json.Marshal(checksums{Files: sums, Package: "abc"})
	if err := os.WriteFile(filepath.Join(dir, ".cargo-checksum.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := record(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckCrate(t *testing.T) {
	files := map[string]string{"Cargo.toml": "[package]\n", "src/lib.rs": "pub fn f() {}\n"}
	later := time.Now().Add(time.Hour)
	tests := []struct {
		name   string
		change func(dir string)
		full   bool
		want   string // in the damage ("" for none)
	}{
		{"intact", func(string) {}, false, ""},
		{"touched", func(d string) { os.Chtimes(filepath.Join(d, "src/lib.rs"), later, later) }, false, ""},
		{"changed", func(d string) { os.WriteFile(filepath.Join(d, "src/lib.rs"), []byte("pub fn g() {}\n"), 0o644) }, false, "src/lib.rs changed"},
		{"removed", func(d string) { os.Remove(filepath.Join(d, "Cargo.toml")) }, false, "Cargo.toml missing"},
		{"checksums edited", func(d string) {
			os.WriteFile(filepath.Join(d, ".cargo-checksum.json"), []byte(`{"files":{},"package":"abc"}`), 0o644)
		}, false, ".cargo-checksum.json changed"},
		{"rotted, times kept, full check", func(d string) {
			p := filepath.Join(d, "src/lib.rs")
			fi, _ := os.Stat(p)
			os.WriteFile(p, []byte("pub fn h() {}\n"), 0o644)
			os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}, true, "src/lib.rs changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := crateDir(t, files)
			tt.change(dir)
			why, _, err := checkCrate(dir, tt.full)
			if err != nil {
				t.Fatal(err)
			}
			if (tt.want == "") != (why == "") || !strings.Contains(why, tt.want) {
				t.Errorf("checkCrate = %q, want %q", why, tt.want)
			}
		})
	}
}
