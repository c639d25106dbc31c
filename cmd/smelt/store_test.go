package main

// End-to-end tests of a damaged store: objects changed in place, writes
// through ./result, lost layers, changed vendored crates, `smelt store
// verify`, and gc roots. Each uses the real cargo on testdata/workspace.

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// objectOf is the path of the store object holding the content of file.
func (p *project) objectOf(file string) string {
	p.t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		p.t.Fatal(err)
	}
	s := sha256.Sum256(b)
	h := hex.EncodeToString(s[:])
	obj := filepath.Join(p.store, "objects", h[:2], h[2:])
	if _, err := os.Stat(obj); err != nil {
		p.t.Fatalf("no store object for %s: %v", file, err)
	}
	return obj
}

// corrupt overwrites the first occurrence of old in file with new (of the
// same length), in place, as bit rot or a tool writing through a hard link
// would; with keepTime it then puts the mtime back.
func corrupt(t *testing.T, file, old, new string, keepTime bool) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), old)
	if i < 0 || len(old) != len(new) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(new), int64(i)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if keepTime {
		if err := os.Chtimes(file, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
	} else {
		// The same second as the write, on a coarse clock: the mtime moves.
		later := time.Now().Add(time.Second)
		os.Chtimes(file, later, later)
	}
}

func warnings(o outcome) []string {
	var out []string
	for _, ev := range o.events {
		if ev["event"] == "warning" {
			out = append(out, ev["message"].(string))
		}
	}
	return out
}

func wantOneWarning(t *testing.T, o outcome, about string) {
	t.Helper()
	w := warnings(o)
	if len(w) != 1 || !strings.Contains(w[0], about) {
		t.Errorf("warnings %q, want one about %q\n%s", w, about, o.output)
	}
}

func runExe(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(path).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", path, err, out)
	}
	return strings.TrimSpace(string(out))
}

const appSays = "1 hello from build.rs: workspace"

// A store object changed in place is never handed out: `smelt restore`
// and `smelt build` find it changed, drop it, rebuild the step with one
// warning, and give the original bytes.
func TestCorruptedObject(t *testing.T) {
	p := newProject(t, "workspace")
	p.mustSmelt("build")
	obj := p.objectOf(filepath.Join(p.dir, "result", "bin", "app"))
	corrupt(t, obj, "workspace", "worksp4ce", false)

	dir := filepath.Join(t.TempDir(), "target")
	o := p.mustSmelt("restore", "package", dir)
	wantOneWarning(t, o, "changed since it was stored")
	wantStatus(t, o, map[string]string{"package": "built"})
	if got := runExe(t, filepath.Join(dir, "release", "app")); got != appSays {
		t.Errorf("restored app printed %q", got)
	}

	// Again, for the output of `smelt build` written afresh (a new
	// project's, or after gc): from an object changed in place.
	obj = p.objectOf(filepath.Join(p.dir, "result", "bin", "app"))
	corrupt(t, obj, "workspace", "worksp4ce", false)
	q := &project{t: t, dir: fixture(t, "workspace"), store: p.store, env: p.env}
	o = q.mustSmelt("build")
	wantOneWarning(t, o, "changed since it was stored")
	if got := q.runResult("app"); got != appSays {
		t.Errorf("result/bin/app printed %q", got)
	}
}

// A dependency's library changed in the store is not linked into the
// next build after an edit: the deps step is rebuilt.
func TestCorruptedDependency(t *testing.T) {
	p := newProject(t, "workspace")
	p.mustSmelt("build")
	libs, _ := filepath.Glob(filepath.Join(p.store, "work", "*", "package", "src", "target", "release", "deps", "libitoa-*.rlib"))
	if len(libs) == 0 {
		t.Fatalf("no itoa rlib in package's target/")
	}
	for _, l := range libs {
		obj := p.objectOf(l)
		b, _ := os.ReadFile(obj)
		corrupt(t, obj, string(b[len(b)/2:len(b)/2+64]), strings.Repeat("\x00", 64), false)
	}
	p.replace("app/src/main.rs", "greet::greet(1,", "greet::greet(2,")
	o := p.mustSmelt("build")
	wantOneWarning(t, o, "libitoa")
	wantStatus(t, o, map[string]string{"deps": "built", "package": "built"})
	if got := p.runResult("app"); got != "2 hello from build.rs: workspace" {
		t.Errorf("result/bin/app printed %q", got)
	}
}

// Writes through ./result never reach the store: strip in one project
// leaves another project's binary, and the next build's, as built.
func TestWriteThroughResult(t *testing.T) {
	p := newProject(t, "workspace")
	p.mustSmelt("build")
	bin := filepath.Join(p.dir, "result", "bin", "app")
	want := readAbs(t, bin)
	if out, err := exec.Command("strip", bin).CombinedOutput(); err != nil {
		t.Logf("strip: %v\n%s (writing in place instead)", err, out)
	}
	corrupt(t, bin, "workspace", "worksp4ce", false) // whatever strip did, a write in place too
	if readAbs(t, bin) == want {
		t.Fatal("the write through result/bin/app changed nothing")
	}
	q := &project{t: t, dir: fixture(t, "workspace"), store: p.store, env: p.env}
	q.mustSmelt("build")
	if readAbs(t, filepath.Join(q.dir, "result", "bin", "app")) != want {
		t.Errorf("another project's result/bin/app is not the binary as built")
	}
	os.Remove(filepath.Join(p.dir, "result"))
	p.mustSmelt("build")
	if readAbs(t, bin) != want {
		t.Errorf("after the write, a new build's result/bin/app is not the binary as built")
	}
	// Nothing in the store changed: it verifies clean.
	p.mustSmelt("store", "verify")
}

// A lost layer file makes the step that needs it rebuild, with one
// warning, and gc still works.
func TestDeletedLayer(t *testing.T) {
	p := newProject(t, "workspace")
	p.write("smelt.toml", "[step.deps]\nkind = \"deps\"\n\n[step.package]\nkind = \"package\"\nartifacts = \"deps\"\n")
	p.mustSmelt("check")
	layers, _ := filepath.Glob(filepath.Join(p.store, "layers", "*", "*.json"))
	if len(layers) == 0 {
		t.Fatal("no layers")
	}
	for _, l := range layers {
		if err := os.Remove(l); err != nil {
			t.Fatal(err)
		}
	}
	p.replace("app/src/main.rs", "greet::greet(1,", "greet::greet(2,")
	o := p.mustSmelt("build")
	wantOneWarning(t, o, "missing")
	wantStatus(t, o, map[string]string{"deps": "built", "package": "built"})
	if got := p.runResult("app"); got != "2 hello from build.rs: workspace" {
		t.Errorf("result/bin/app printed %q", got)
	}
	layers, _ = filepath.Glob(filepath.Join(p.store, "layers", "*", "*.json"))
	for _, l := range layers {
		os.Remove(l)
	}
	p.mustSmelt("gc")
	o = p.mustSmelt("check")
	wantStatus(t, o, map[string]string{"deps": "built", "package": "built"})
}

// A file changed in the store's pool of vendored crates is found by
// `smelt fetch`, and the crate vendored again, with one warning.
func TestVendorPoolModified(t *testing.T) {
	p := newProject(t, "workspace")
	p.mustSmelt("check", "deps")
	libs, _ := filepath.Glob(filepath.Join(p.store, "vendor", "pool", "itoa-*", "src", "lib.rs"))
	if len(libs) != 1 {
		t.Fatalf("itoa's lib.rs in the pool: %v", libs)
	}
	want := readAbs(t, libs[0])
	if err := os.WriteFile(libs[0], []byte(want+"\npub fn injected() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := p.mustSmelt("fetch")
	if !strings.Contains(o.output, "warning: vendored crates changed") || strings.Count(o.output, "warning:") != 1 {
		t.Errorf("smelt fetch gave no one warning:\n%s", o.output)
	}
	if readAbs(t, libs[0]) != want {
		t.Errorf("the pool's itoa lib.rs was not vendored again")
	}
	// And in a run that builds: changed again, found again, and cargo
	// (which checks .cargo-checksum.json itself) builds.
	corrupt(t, libs[0], "fn", "FN", false)
	p.replace("app/src/main.rs", "greet::greet(1,", "greet::greet(2,")
	o = p.mustSmelt("build")
	wantOneWarning(t, o, "vendored crates changed")
	if got := p.runResult("app"); got != "2 hello from build.rs: workspace" {
		t.Errorf("result/bin/app printed %q", got)
	}
}

// `smelt store verify` finds an object whose bytes rotted (its size and
// mtime kept, so no cheap check can); --repair drops it, and the next
// run rebuilds what needed it.
func TestStoreVerify(t *testing.T) {
	p := newProject(t, "workspace")
	p.mustSmelt("build")
	p.mustSmelt("store", "verify")
	obj := p.objectOf(filepath.Join(p.dir, "result", "bin", "app"))
	corrupt(t, obj, "workspace", "worksp4ce", true)
	o := p.smelt("store", "verify")
	if o.code != 1 || !strings.Contains(o.output, "damaged: store object "+filepath.Base(filepath.Dir(obj))) || !strings.Contains(o.output, "--repair") {
		t.Fatalf("smelt store verify: exit %d\n%s", o.code, o.output)
	}
	p.mustSmelt("store", "verify", "--repair")
	p.mustSmelt("store", "verify")
	dir := filepath.Join(t.TempDir(), "target")
	o = p.mustSmelt("restore", "package", dir)
	wantStatus(t, o, map[string]string{"package": "built"})
	if got := runExe(t, filepath.Join(dir, "release", "app")); got != appSays {
		t.Errorf("restored app printed %q", got)
	}
}

// gc keeps what a live ./result points at, and drops it once the link
// is gone.
func TestGCKeepsResult(t *testing.T) {
	p := newProject(t, "workspace")
	p.mustSmelt("build")
	p.mustSmelt("gc", "--older-than", "0")
	if got := p.runResult("app"); got != appSays {
		t.Errorf("after gc result/bin/app printed %q", got)
	}
	target, err := filepath.EvalSymlinks(filepath.Join(p.dir, "result"))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(p.dir, "result"))
	p.mustSmelt("gc", "--older-than", "0")
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("gc kept %s, which no link points at: %v", target, err)
	}
}
