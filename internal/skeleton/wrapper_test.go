package skeleton

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The wrapper passes cargo's queries and anything it cannot tell apart to
// the compiler, and fails every compile of a crate with the stubs' message.
func TestStubRustc(t *testing.T) {
	dir := t.TempDir()
	w := filepath.Join(dir, "stub-rustc")
	if err := os.WriteFile(w, []byte(StubRustc), 0o755); err != nil {
		t.Fatal(err)
	}
	// A stand-in compiler that says how it was called.
	fake := filepath.Join(dir, "rustc")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"ran: $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		ran  bool // the compiler ran (else the wrapper failed)
	}{
		{"version query", []string{fake, "-vV"}, true},
		{"target info", []string{fake, "-", "--crate-name", "___", "--print=file-names", "--crate-type", "bin"}, true},
		{"print with a space", []string{fake, "--print", "sysroot"}, true},
		{"compile of a member", []string{fake, "--crate-name", "app", "--edition=2021", "src/main.rs"}, false},
		{"compile of a build script", []string{fake, "--crate-name", "build_script_build", "build.rs"}, false},
		{"no crate name", []string{fake, "src/lib.rs"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(w, tc.args...).CombinedOutput()
			ran := strings.HasPrefix(string(out), "ran: "+strings.Join(tc.args[1:], " "))
			if ran != tc.ran || (err == nil) != tc.ran {
				t.Fatalf("ran %v (err %v), want %v; output %q", ran, err, tc.ran, out)
			}
			if !tc.ran && !strings.Contains(string(out), Marker) {
				t.Fatalf("the failure does not carry the stubs' marker: %q", out)
			}
		})
	}
	// A wrapper before ours (sccache style) may call it without the
	// compiler's path: RUSTC (or rustc on PATH) answers.
	cmd := exec.Command(w, "-vV")
	cmd.Env = append(os.Environ(), "RUSTC="+fake)
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "ran: -vV\n" {
		t.Fatalf("-vV without the compiler's path: %q, %v", out, err)
	}
}
