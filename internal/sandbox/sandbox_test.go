package sandbox

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A command in the sandbox finds its directories at the fixed paths, in
// the directory asked for, writes through them into the real ones, and
// still sees what Parent held before.
func TestWrap(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("no sandbox here: %v", err)
	}
	work, vendor := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(vendor, "lib.rs"), []byte("fn x() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadDir(Parent)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `pwd; cat `+Root+`/vendor/lib.rs; echo made > out; id -u; grep CapAmb /proc/self/status; ls -a `+Parent)
	cmd.Dir = work
	if err := Wrap(cmd, Root+"/work", []Mount{{Source: work, Target: Root + "/work"}, {Source: vendor, Target: Root + "/vendor"}}); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if lines[0] != Root+"/work" || lines[1] != "fn x() {}" || lines[2] != strconv.Itoa(os.Getuid()) || lines[3] != "CapAmb:\t0000000000000000" {
		t.Errorf("the command saw:\n%s", out)
	}
	for _, e := range before {
		if !strings.Contains(string(out), "\n"+e.Name()+"\n") && !strings.HasSuffix(string(out), "\n"+e.Name()+"\n") {
			t.Errorf("%s/%s is gone inside the sandbox:\n%s", Parent, e.Name(), out)
		}
	}
	if data, err := os.ReadFile(filepath.Join(work, "out")); err != nil || string(data) != "made\n" {
		t.Errorf("the file written in the sandbox: %q, %v", data, err)
	}
	if _, err := os.Stat(Root); err == nil {
		t.Errorf("%s exists outside the sandbox", Root)
	}
}

// What Parent held stays there inside the sandbox, files, directories and
// symbolic links alike, and a store that lies in Parent stays reachable.
func TestParentKept(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("no sandbox here: %v", err)
	}
	parent := t.TempDir()
	store := filepath.Join(parent, "store")
	for _, d := range []string{"data/sub", "store/work"} {
		if err := os.MkdirAll(filepath.Join(parent, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(parent, "data/sub/f"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "top"), []byte("top\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("data/sub", filepath.Join(parent, "link")); err != nil {
		t.Fatal(err)
	}
	root := parent + "/smelt"
	cmd := exec.Command("sh", "-c", `cat `+parent+`/data/sub/f `+parent+`/top `+parent+`/link/f; echo made > out`)
	if err := wrap(cmd, parent, root+"/work", []Mount{{Source: filepath.Join(store, "work"), Target: root + "/work"}}); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if string(out) != "kept\ntop\nkept\n" {
		t.Errorf("the command saw %q", out)
	}
	if data, err := os.ReadFile(filepath.Join(store, "work", "out")); err != nil || string(data) != "made\n" {
		t.Errorf("the file written in the sandbox: %q, %v", data, err)
	}
	if _, err := os.Stat(root); err == nil {
		t.Errorf("%s exists outside the sandbox", root)
	}
}

// The cost of the sandbox per command: go test -bench Wrap ./internal/sandbox
func BenchmarkWrap(b *testing.B) {
	if err := Available(); err != nil {
		b.Skipf("no sandbox here: %v", err)
	}
	dir := b.TempDir()
	for _, sandboxed := range []bool{false, true} {
		name := "direct"
		if sandboxed {
			name = "sandboxed"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				cmd := exec.Command("true")
				if sandboxed {
					if err := Wrap(cmd, Root+"/work", []Mount{{Source: dir, Target: Root + "/work"}, {Source: dir, Target: Root + "/vendor"}}); err != nil {
						b.Fatal(err)
					}
				}
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The directory the sandbox covers must be one no other user can remove or
// replace.
func TestSafeParent(t *testing.T) {
	if err := safeParent(Parent); err != nil {
		t.Logf("%s here: %v", Parent, err)
	}
	base := t.TempDir() // 0700, the test user's own
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	own := mk("own", 0o755)
	if err := safeParent(own); err != nil {
		t.Errorf("the user's own directory: %v", err)
	}
	if err := safeParent(mk("open", 0o777)); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("a directory anyone can write: %v", err)
	}
	sticky := mk("sticky", os.ModeSticky|0o777)
	inSticky := filepath.Join(sticky, "p")
	if err := os.Mkdir(inSticky, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := safeParent(inSticky); err != nil {
		t.Errorf("the user's own directory in a sticky one (/tmp): %v", err)
	}
	if err := os.Symlink(own, filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	if err := safeParent(filepath.Join(base, "link")); err != nil {
		t.Errorf("a link to the user's own directory: %v", err)
	}
	if os.Geteuid() == 0 {
		other := mk("other", 0o755)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := safeParent(other); err == nil || !strings.Contains(err.Error(), "another user") {
			t.Errorf("another user's directory: %v", err)
		}
	}
}

// The setup run without a namespace of its own (by hand, or by a caller
// that forgot attrs) mounts nothing.
func TestChildRefusesCallerNamespace(t *testing.T) {
	dir := t.TempDir()
	b, err := json.Marshal(spec{Parent: dir, Dir: dir, Probe: true, CallerNS: mountNS()})
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(self, childArg, string(b)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not in a mount namespace of its own") {
		t.Errorf("the setup ran in its caller's namespace: %v: %s", err, out)
	}
	if data, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(data), " "+dir+" ") {
		t.Errorf("%s is a mount point now", dir)
	}
}
