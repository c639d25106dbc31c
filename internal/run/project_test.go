package run

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FindRoot: the workspace around a member, a lone crate, and the three
// mistakes a user makes with -C, each named with what to do.
func TestFindRoot(t *testing.T) {
	w := newWS(t)
	lone := t.TempDir()
	if err := os.WriteFile(filepath.Join(lone, "Cargo.toml"), []byte("[package]\nname = \"lone\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(lone, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	file := filepath.Join(empty, "notes.txt")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir, want, err string
	}{
		{dir: w.root, want: w.root},
		{dir: filepath.Join(w.root, "greet", "src"), want: w.root},
		{dir: filepath.Join(lone, "src"), want: lone},
		{dir: filepath.Join(w.root, "gret"), err: "does not exist: pass -C an existing directory"},
		{dir: file, err: "is not a directory"},
		{dir: empty, err: "no Cargo.toml in " + empty},
	} {
		got, err := FindRoot(tc.dir)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("FindRoot(%s) = %q, %v; want an error with %q", tc.dir, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("FindRoot(%s) = %q, %v; want %s", tc.dir, got, err, tc.want)
		}
	}
}

// Members lists the workspace's own packages, and a broken manifest is
// reported by its path in the project.
func TestMembers(t *testing.T) {
	w := newWS(t)
	got, err := Members(w.root)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"app", "greet"}) {
		t.Errorf("Members = %v, want app and greet", got)
	}
	w.write("greet/Cargo.toml", "[package\nname = \"greet\"\n")
	_, err = Members(w.root)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(w.root, "greet", "Cargo.toml")) {
		t.Errorf("Members with a broken manifest: %v, want the manifest's path in the project", err)
	}
}
