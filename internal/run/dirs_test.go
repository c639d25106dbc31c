package run

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"smelt/internal/store"
)

// A program is written once, executable, and found again by its content.
func TestProgram(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := program(st, "tool", []byte("#!/bin/sh\nexit 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(w); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s: %v, %v; want an executable file", w, fi, err)
	}
	if again, err := program(st, "tool", []byte("#!/bin/sh\nexit 0\n")); err != nil || again != w {
		t.Fatalf("second install: %q, %v; want %q", again, err, w)
	}
	if other, err := program(st, "tool", []byte("#!/bin/sh\nexit 1\n")); err != nil || other == w {
		t.Fatalf("other content: %q, %v; want a path other than %q", other, err, w)
	}
	if err := exec.Command(w).Run(); err != nil {
		t.Fatalf("run %s: %v", w, err)
	}
}
