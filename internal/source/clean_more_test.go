package source

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"
)

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// What cargo reads that a plain walk of the workspace misses (issue 15):
// a symbolic link to a directory inside the workspace (serde's
// serde/src/core -> ../../serde_core/src), a path dependency outside it,
// a file named relative to CARGO_MANIFEST_DIR. Links that leave what the
// build may read, or loop, are not followed.
func TestCleanReadsWhatCargoReads(t *testing.T) {
	top := t.TempDir()
	root := filepath.Join(top, "ws")
	write(t, top, map[string]string{
		"ws/Cargo.toml":                "[workspace]\nmembers = [\"serde\", \"serde_core\"]\n",
		"ws/Cargo.lock":                "version = 4\n",
		"ws/serde/Cargo.toml":          "[package]\nname = \"serde\"\n[dependencies]\nlib = { path = \"../../lib\" }\n",
		"ws/serde/src/lib.rs":          "mod core;\nconst M: &str = include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/data/msg.txt\"));\n",
		"ws/serde/data/msg.txt":        "hello\n",
		"ws/serde_core/Cargo.toml":     "[package]\nname = \"serde_core\"\n",
		"ws/serde_core/src/lib.rs":     "pub mod de;\n",
		"ws/serde_core/src/de.rs":      "// de\n",
		"lib/Cargo.toml":               "[package]\nname = \"lib\"\n[dev-dependencies]\nhelper = { path = \"../helper\" }\n",
		"lib/src/lib.rs":               "pub fn f() {}\n",
		"lib/README.md":                "not read\n",
		"helper/Cargo.toml":            "[package]\nname = \"helper\"\n",
		"helper/src/lib.rs":            "\n",
		"elsewhere/secret.rs":          "// outside: never read\n",
		"ws/serde/src/loop/keep.rs":    "// kept once\n",
		"ws/serde_core/target/x.rs":    "// not a target dir (no CACHEDIR.TAG), kept\n",
		"ws/serde_core/src/nested.txt": "",
	})
	symlink(t, "../../serde_core/src", filepath.Join(root, "serde/src/core"))
	symlink(t, "../../../elsewhere", filepath.Join(root, "serde/src/outside"))
	symlink(t, "..", filepath.Join(root, "serde/src/loop/up"))
	write(t, root, map[string]string{"target/release/build/x/out/gen.rs": "// generated\n"})
	symlink(t, "../target/release", filepath.Join(root, "serde/latest"))
	tr, err := Clean(root, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"../helper/Cargo.toml", "../helper/src/lib.rs",
		"../lib/Cargo.toml", "../lib/src/lib.rs",
		"Cargo.lock", "Cargo.toml",
		"serde/Cargo.toml", "serde/data/msg.txt",
		"serde/src/core/de.rs", "serde/src/core/lib.rs",
		"serde/src/lib.rs", "serde/src/loop/keep.rs",
		"serde_core/Cargo.toml", "serde_core/src/de.rs", "serde_core/src/lib.rs",
		"serde_core/target/x.rs",
	}
	if got := paths(tr); !reflect.DeepEqual(got, want) {
		t.Errorf("cleaned source =\n %v\nwant\n %v", got, want)
	}
	if d := tr.Depth(); d != 1 {
		t.Errorf("Depth = %d, want 1", d)
	}
}

// A tree that reaches above the workspace is laid out with the workspace
// nested as deep, the outside files at their relative place, the nested
// target/ left alone and stale files removed.
func TestLayoutNested(t *testing.T) {
	base := t.TempDir()
	tr := FromMap(map[string][]byte{"Cargo.toml": []byte("ws"), "../lib/src/lib.rs": []byte("lib")})
	ws := Nest(base, "/home/u/proj/ws", tr.Depth())
	if want := filepath.Join(base, "ws"); ws != want {
		t.Fatalf("Nest = %s, want %s", ws, want)
	}
	if got := Nest(base, "/home/u/proj/ws", 0); got != base {
		t.Errorf("Nest at depth 0 = %s, want %s", got, base)
	}
	write(t, base, map[string]string{"ws/target/release/app": "binary", "stale.rs": "", "lib/old.rs": ""})
	if err := Layout(ws, tr, MTimes(tr, nil, 0, time.Now(), time.Second)); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"ws/Cargo.toml": "ws", "lib/src/lib.rs": "lib", "ws/target/release/app": "binary"} {
		if b, err := os.ReadFile(filepath.Join(base, rel)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", rel, b, err, want)
		}
	}
	for _, gone := range []string{"stale.rs", "lib/old.rs"} {
		if _, err := os.Stat(filepath.Join(base, gone)); !os.IsNotExist(err) {
			t.Errorf("stale %s not removed (%v)", gone, err)
		}
	}
}

// A file or directory nobody lets smelt read, which cargo never reads,
// does not stop the build (issue 15). As root, the test runs Clean again
// as user nobody, for whom mode 000 means something.
func TestCleanSkipsUnreadable(t *testing.T) {
	if dir := os.Getenv("SMELT_TEST_UNREADABLE"); dir != "" {
		tr, err := Clean(dir, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := paths(tr), []string{"Cargo.toml", "src/main.rs"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("cleaned source = %v, want %v", got, want)
		}
		return
	}
	top, err := os.MkdirTemp("", "smelt-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(top)
	os.Chmod(top, 0o755)
	root := filepath.Join(top, "p")
	write(t, root, map[string]string{
		"Cargo.toml": "[package]\nname = \"p\"\n", "src/main.rs": "fn main() {}\n",
		"scratch.rs": "// an editor's file, unreadable\n", "private/key.rs": "", "notes.txt": "",
	})
	for _, p := range []string{"scratch.rs", "private", "notes.txt"} {
		if err := os.Chmod(filepath.Join(root, p), 0); err != nil {
			t.Fatal(err)
		}
	}
	defer os.Chmod(filepath.Join(root, "private"), 0o755)
	if os.Geteuid() != 0 {
		t.Setenv("SMELT_TEST_UNREADABLE", root)
		TestCleanSkipsUnreadable(t)
		return
	}
	// Root reads anything: run this test as nobody, from a copy of the
	// test binary that nobody may run.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(top, "source.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestCleanSkipsUnreadable$", "-test.v")
	cmd.Env = []string{"SMELT_TEST_UNREADABLE=" + root, "PATH=/usr/bin:/bin"}
	cmd.Dir = top
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Clean as nobody: %v\n%s", err, out)
	}
}
