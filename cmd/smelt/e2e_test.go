package main

// End-to-end tests: the smelt binary on copies of the projects under
// testdata/, with the real cargo, clippy, rustfmt and rustdoc, and real
// dependencies from the crate registry.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var smeltBin string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "smelt-bin-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		smeltBin = filepath.Join(dir, "smelt")
		out, err := exec.Command("go", "build", "-o", smeltBin, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build smelt: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func needCargo(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: runs cargo (skipped with -short)")
	}
	if _, err := exec.LookPath("cargo"); err != nil {
		t.Skip("cargo not on PATH")
	}
}

// fixture copies testdata/NAME to a temporary directory.
func fixture(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", name)
	dst := filepath.Join(t.TempDir(), name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if d.Name() == "target" || rel == "result" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// project is a fixture copy with its own store.
type project struct {
	t     *testing.T
	dir   string
	store string
	env   []string
}

func newProject(t *testing.T, name string) *project {
	needCargo(t)
	return &project{t: t, dir: fixture(t, name), store: filepath.Join(t.TempDir(), "store"), env: os.Environ()}
}

// outcome is one smelt run: exit code, text, and each step's status.
type outcome struct {
	code   int
	output string
	status map[string]string
	events []map[string]any
}

func (p *project) smelt(args ...string) outcome {
	p.t.Helper()
	args = append(args, "-C", p.dir, "--store", p.store, "--json")
	cmd := exec.Command(smeltBin, args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	o := parseOutcome(string(out))
	if ee, ok := err.(*exec.ExitError); ok {
		o.code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("run smelt: %v", err)
	}
	return o
}

// parseOutcome reads the events and the steps' statuses of --json output.
func parseOutcome(out string) outcome {
	o := outcome{output: out, status: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(o.output))
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		o.events = append(o.events, ev)
		if ev["event"] == "finish" {
			o.status[ev["step"].(string)] = ev["status"].(string)
		}
	}
	return o
}

func (p *project) mustSmelt(args ...string) outcome {
	p.t.Helper()
	o := p.smelt(args...)
	if o.code != 0 {
		p.t.Fatalf("smelt %s exited %d:\n%s", strings.Join(args, " "), o.code, o.output)
	}
	return o
}

func (p *project) write(rel, content string) {
	p.t.Helper()
	path := filepath.Join(p.dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func readAbs(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func (p *project) read(rel string) string {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, rel))
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

func (p *project) replace(rel, old, new string) {
	p.t.Helper()
	s := p.read(rel)
	if !strings.Contains(s, old) {
		p.t.Fatalf("%s does not contain %q", rel, old)
	}
	p.write(rel, strings.Replace(s, old, new, 1))
}

// updateLock brings Cargo.lock up to date with the manifests (a dependency
// added), as `cargo update --workspace` does.
func (p *project) updateLock() {
	p.t.Helper()
	cmd := exec.Command("cargo", "update", "--workspace")
	cmd.Dir = p.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("cargo update: %v\n%s", err, out)
	}
}

// log returns the last log of a step.
func (p *project) log(step string) string {
	p.t.Helper()
	cmd := exec.Command(smeltBin, "log", step, "-C", p.dir, "--store", p.store)
	out, err := cmd.Output()
	if err != nil {
		p.t.Fatalf("smelt log %s: %v", step, err)
	}
	return string(out)
}

// runResult runs result/bin/NAME and returns its output.
func (p *project) runResult(name string) string {
	p.t.Helper()
	out, err := exec.Command(filepath.Join(p.dir, "result", "bin", name)).CombinedOutput()
	if err != nil {
		p.t.Fatalf("result/bin/%s: %v\n%s", name, err, out)
	}
	return strings.TrimSpace(string(out))
}

func wantStatus(t *testing.T, o outcome, want map[string]string) {
	t.Helper()
	for step, s := range want {
		if o.status[step] != s {
			t.Errorf("step %s: status %q, want %q\n%s", step, o.status[step], s, o.output)
		}
	}
}

var reCompiling = regexp.MustCompile(`(?m)^\s+(Compiling|Checking|Documenting) (\S+) v`)

// compiled lists the crates that cargo compiled in a log.
func compiled(log string) map[string]bool {
	m := map[string]bool{}
	for _, s := range reCompiling.FindAllStringSubmatch(log, -1) {
		m[s[2]] = true
	}
	return m
}

// shimPath puts logging wrappers for cargo and rustc first on PATH, so a
// test can see every process of theirs that smelt starts.
func shimPath(t *testing.T, p *project) string {
	t.Helper()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "calls.log")
	for _, tool := range []string{"cargo", "rustc"} {
		real, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		script := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >> %s\nexec %s \"$@\"\n", tool, logFile, real)
		if err := os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var env []string
	for _, kv := range p.env {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	p.env = append(env, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return logFile
}

var allSteps = []string{"deps", "clippy", "test", "fmt", "doc", "package"}

func each(status string, steps ...string) map[string]string {
	m := map[string]string{}
	for _, s := range steps {
		m[s] = status
	}
	return m
}

// The default pipeline on a single binary crate: built once, then cached
// without starting cargo or rustc; an edit recompiles only the crate.
func TestSingleCrate(t *testing.T) {
	p := newProject(t, "hello")
	calls := shimPath(t, p)

	o := p.mustSmelt("check")
	wantStatus(t, o, each("built", allSteps...))
	if c := compiled(p.log("deps")); !c["anyhow"] || !c["itoa"] {
		t.Errorf("deps did not build the dependencies: %v", c)
	}
	for _, step := range []string{"clippy", "test", "doc", "package"} {
		for dep := range compiled(p.log(step)) {
			if dep != "hello" {
				t.Errorf("step %s recompiled dependency %s", step, dep)
			}
		}
	}

	// Nothing changed: every step cached, and no cargo or rustc process.
	if err := os.Remove(calls); err != nil {
		t.Fatal(err)
	}
	o = p.mustSmelt("check")
	wantStatus(t, o, each("cached", allSteps...))
	if b, err := os.ReadFile(calls); err == nil {
		t.Errorf("a cached check started processes:\n%s", b)
	}

	p.mustSmelt("build")
	if got := p.runResult("hello"); got != "answer: 42" {
		t.Fatalf("result/bin/hello printed %q", got)
	}

	// One line changed: deps cached, the crate recompiled, no dependency.
	p.replace("src/lib.rs", "    42\n", "    43\n")
	o = p.mustSmelt("check")
	wantStatus(t, o, each("cached", "deps"))
	wantStatus(t, o, each("built", "clippy", "test", "fmt", "doc", "package"))
	for _, step := range []string{"clippy", "test", "doc", "package"} {
		c := compiled(p.log(step))
		if !c["hello"] {
			t.Errorf("step %s did not recompile hello after the edit", step)
		}
		for dep := range c {
			if dep != "hello" {
				t.Errorf("step %s recompiled dependency %s after a one-line edit", step, dep)
			}
		}
	}
	p.mustSmelt("build")
	if got := p.runResult("hello"); got != "answer: 43" {
		t.Fatalf("after the edit result/bin/hello printed %q, want answer: 43", got)
	}

	// A README or docs/ edit reruns nothing.
	p.write("README.md", "# hello, edited\n")
	p.write("docs/notes.md", "edited\n")
	o = p.mustSmelt("check")
	wantStatus(t, o, each("cached", allSteps...))

	// A version bump of the crate itself keeps deps cached.
	p.replace("Cargo.toml", `version = "0.1.0"`, `version = "0.2.0"`)
	p.replace("Cargo.lock", "name = \"hello\"\nversion = \"0.1.0\"", "name = \"hello\"\nversion = \"0.2.0\"")
	o = p.mustSmelt("check")
	wantStatus(t, o, map[string]string{"deps": "cached", "package": "built"})
}

// The stale-build hazard (docs/design.md, "The mtime rule"): a changed source file whose
// mtime is older than the artifacts it is laid out over must still be
// rebuilt. A package step without inherited artifacts starts from its own
// last target/ (which holds the crate built from the old source), so the
// layout must give the changed file a fresh mtime; if it kept an old one,
// cargo would silently reuse the old binary and this test fails.
func TestStaleBuildHazard(t *testing.T) {
	p := newProject(t, "hello")
	p.write("smelt.toml", "[step.crate]\nkind = \"package\"\n")
	p.mustSmelt("build")
	if got := p.runResult("hello"); got != "answer: 42" {
		t.Fatalf("result/bin/hello printed %q", got)
	}
	p.replace("src/lib.rs", "    42\n", "    43\n")
	old := time.Unix(0, 0)
	if err := os.Chtimes(filepath.Join(p.dir, "src", "lib.rs"), old, old); err != nil {
		t.Fatal(err)
	}
	p.mustSmelt("build")
	if got := p.runResult("hello"); got != "answer: 43" {
		t.Fatalf("stale build: after changing 42 to 43 (mtime 1970) result/bin/hello printed %q", got)
	}
	// And back: content equal to an earlier build must not be confused
	// with the newer artifacts either.
	p.replace("src/lib.rs", "    43\n", "    42\n")
	p.mustSmelt("build")
	if got := p.runResult("hello"); got != "answer: 42" {
		t.Fatalf("after reverting, result/bin/hello printed %q", got)
	}
}

// chainTOML is a chain in which crate inherits test's target/; its env
// changes crate's key (and nothing cargo looks at), so crate can rerun on
// top of a test result from an earlier run.
const chainTOML = `[step.deps]
kind = "deps"

[step.test]
kind = "test"
artifacts = "deps"

[step.crate]
kind = "package"
artifacts = "test"
env = { SMELT_TEST_RUN = "%s" }
`

// A step that inherits artifacts starts from its own target/ of its last
// success with the parent's laid over it, so it rebuilds only what changed,
// and the mtime rule still sees every change. The hazard: crate's own
// target/ holds app built against greet B, its parent (a cached test
// result) greet A, built earlier; a merge that trusted the parent's times
// would pass the newer app for fresh and ship it with greet B's text.
func TestWarmStartChain(t *testing.T) {
	p := newProject(t, "workspace")
	p.write("smelt.toml", fmt.Sprintf(chainTOML, "1"))
	p.mustSmelt("build")
	if got := p.runResult("app"); got != "1 hello from build.rs: workspace" {
		t.Fatalf("result/bin/app printed %q", got)
	}
	// An edit of app alone: neither step rebuilds greet, as cargo would not.
	p.replace("app/src/main.rs", "greet::greet(1,", "greet::greet(2,")
	o := p.mustSmelt("build")
	wantStatus(t, o, map[string]string{"deps": "cached", "test": "built", "crate": "built"})
	for _, step := range []string{"test", "crate"} {
		if c := compiled(p.log(step)); len(c) != 1 || !c["app"] {
			t.Errorf("after editing app, %s compiled %v; want app alone", step, c)
		}
	}
	if got := p.runResult("app"); got != "2 hello from build.rs: workspace" {
		t.Fatalf("after editing app, result/bin/app printed %q", got)
	}
	greetB := func() {
		p.replace("greet/src/lib.rs", `"{} {}: {}"`, `"{} {} to {}"`)
		p.replace("greet/src/lib.rs", `"1 hello from build.rs: x"`, `"1 hello from build.rs to x"`)
	}
	greetA := func() {
		p.replace("greet/src/lib.rs", `"{} {} to {}"`, `"{} {}: {}"`)
		p.replace("greet/src/lib.rs", `"1 hello from build.rs to x"`, `"1 hello from build.rs: x"`)
	}
	greetB()
	p.write("smelt.toml", fmt.Sprintf(chainTOML, "2"))
	p.mustSmelt("build")
	if got := p.runResult("app"); got != "2 hello from build.rs to workspace" {
		t.Fatalf("with greet B, result/bin/app printed %q", got)
	}
	greetA()
	p.write("smelt.toml", fmt.Sprintf(chainTOML, "3"))
	o = p.mustSmelt("build")
	wantStatus(t, o, map[string]string{"test": "cached", "crate": "built"})
	if got := p.runResult("app"); got != "2 hello from build.rs: workspace" {
		t.Fatalf("stale build: back to greet A over a cached test result, result/bin/app printed %q", got)
	}
	// A dependency added to app reruns deps; the steps after it rebuild app,
	// whose dependencies changed, and not greet, whose did not.
	p.replace("app/Cargo.toml", "anyhow = \"1\"\n", "anyhow = \"1\"\nfnv = \"1\"\n")
	p.updateLock()
	o = p.mustSmelt("build")
	wantStatus(t, o, map[string]string{"deps": "built", "test": "built", "crate": "built"})
	for _, step := range []string{"test", "crate"} {
		if c := compiled(p.log(step)); len(c) != 1 || !c["app"] {
			t.Errorf("after adding fnv to app, %s compiled %v; want app alone\n%s\n%s", step, c, p.log(step), p.log("deps"))
		}
	}
}

// A build script that names no rerun-if-changed reruns when the newest
// mtime among its package's files is not the one it ran with (cargo compares
// them for equality). A step warm-started under a deps step must give the
// files of a package that did not change exactly the times it built with,
// or every edit anywhere rebuilds that package.
func TestWarmStartBuildScriptWithoutRerunIf(t *testing.T) {
	p := newProject(t, "workspace")
	p.replace("greet/build.rs", "    println!(\"cargo:rerun-if-changed=build.rs\");\n", "")
	p.write("smelt.toml", fmt.Sprintf(chainTOML, "1"))
	p.mustSmelt("build")
	for i := 2; i <= 3; i++ {
		p.replace("app/src/main.rs", fmt.Sprintf("greet::greet(%d,", i-1), fmt.Sprintf("greet::greet(%d,", i))
		o := p.mustSmelt("build")
		wantStatus(t, o, map[string]string{"deps": "cached", "test": "built", "crate": "built"})
		if c := compiled(p.log("test")); len(c) != 1 || !c["app"] {
			t.Errorf("edit %d of app: test compiled %v; want app alone", i, c)
		}
		if got, want := p.runResult("app"), fmt.Sprintf("%d hello from build.rs: workspace", i); got != want {
			t.Fatalf("edit %d of app: result/bin/app printed %q, want %q", i, got, want)
		}
	}
}

// A unit left in a step's own target/ from an older run, built from older
// source and not used since, must not come back as fresh: crate builds app
// with feature x (from main.rs v1), then with y (v2); back to x with v2, the
// x unit of v1 is still in crate's target/, newer than the time test (the
// parent) gave main.rs v2.
func TestWarmStartLeftover(t *testing.T) {
	p := newProject(t, "workspace")
	p.replace("app/Cargo.toml", "[dependencies]", "[features]\nx = []\ny = []\n\n[dependencies]")
	conf := func(feature string) {
		p.write("smelt.toml", "[step.deps]\nkind = \"deps\"\n\n[step.test]\nkind = \"test\"\nartifacts = \"deps\"\n\n"+
			"[step.crate]\nkind = \"package\"\nartifacts = \"test\"\nfeatures = [\""+feature+"\"]\n")
	}
	conf("x")
	p.mustSmelt("build")
	p.replace("app/src/main.rs", "greet::greet(1,", "greet::greet(2,")
	conf("y")
	p.mustSmelt("build")
	if got := p.runResult("app"); got != "2 hello from build.rs: workspace" {
		t.Fatalf("with feature y, result/bin/app printed %q", got)
	}
	conf("x")
	o := p.mustSmelt("build")
	wantStatus(t, o, map[string]string{"test": "cached", "crate": "built"})
	if got := p.runResult("app"); got != "2 hello from build.rs: workspace" {
		t.Fatalf("stale build: back to feature x, result/bin/app printed %q (the unit built from main.rs v1)", got)
	}
}

// Steps running side by side share one jobserver: however many cargos
// run, no more compilers run at once than there are cores. A RUSTC_WRAPPER
// logs when each compiler starts and ends; four steps after deps run in
// parallel (-j 4), each compiling greet then app.
func TestJobserverCapsCompilers(t *testing.T) {
	p := newProject(t, "workspace")
	logFile := filepath.Join(t.TempDir(), "rustc.log")
	wrapper := filepath.Join(t.TempDir(), "wrap-rustc")
	script := `#!/bin/sh
name=; prev=
for a in "$@"; do [ "$prev" = "--crate-name" ] && name=$a; prev=$a; done
case "$name" in ""|___) exec "$@";; esac
echo "start $(date +%s%N)" >> ` + logFile + `
"$@"; rc=$?
echo "end $(date +%s%N)" >> ` + logFile + `
exit $rc
`
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	toml := "[common]\nenv = { RUSTC_WRAPPER = \"" + wrapper + "\" }\n\n[step.deps]\nkind = \"deps\"\n"
	for _, k := range []string{"clippy", "test", "doc", "package"} {
		toml += fmt.Sprintf("\n[step.%s]\nkind = %q\nartifacts = \"deps\"\n", k, k)
	}
	p.write("smelt.toml", toml)
	p.mustSmelt("check", "-j", "4")
	var events [][2]int64 // time, +1 or -1
	for _, line := range strings.Split(strings.TrimSpace(readAbs(t, logFile)), "\n") {
		kind, ts, _ := strings.Cut(line, " ")
		n, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			t.Fatalf("wrapper log line %q", line)
		}
		d := int64(1)
		if kind == "end" {
			d = -1
		}
		events = append(events, [2]int64{n, d})
	}
	sort.Slice(events, func(i, j int) bool {
		if events[i][0] != events[j][0] {
			return events[i][0] < events[j][0]
		}
		return events[i][1] < events[j][1] // an end before a start at the same instant
	})
	running, most := 0, 0
	for _, e := range events {
		running += int(e[1])
		most = max(most, running)
	}
	t.Logf("%d compiler runs, at most %d at once on %d cores", len(events)/2, most, runtime.NumCPU())
	if most > runtime.NumCPU() {
		t.Errorf("%d compilers ran at once on %d cores", most, runtime.NumCPU())
	}
}

// A step keeps its own cache of cargo's compiler queries
// (target/.rustc_info.json): the one it inherits from clippy was written
// for clippy-driver, and cargo would query rustc again on every run of the
// step. Cargo rewrites the file only when it queried.
func TestOwnRustcInfo(t *testing.T) {
	p := newProject(t, "workspace")
	p.write("smelt.toml", "[step.deps]\nkind = \"deps\"\n\n[step.clippy]\nkind = \"clippy\"\nartifacts = \"deps\"\n\n[step.test]\nkind = \"test\"\nartifacts = \"clippy\"\n")
	p.mustSmelt("check")
	infos, _ := filepath.Glob(filepath.Join(p.store, "work", "*", "test", "src", "target", ".rustc_info.json"))
	if len(infos) != 1 {
		t.Fatalf("the test step's .rustc_info.json: %v", infos)
	}
	p.write("app/src/main.rs", p.read("app/src/main.rs")+"\n// an edit\n")
	before := time.Now()
	o := p.mustSmelt("check")
	wantStatus(t, o, map[string]string{"deps": "cached", "clippy": "built", "test": "built"})
	fi, err := os.Stat(infos[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi.ModTime().After(before) {
		t.Errorf("cargo rewrote the test step's .rustc_info.json at %v (run started %v): it queried the compiler again", fi.ModTime(), before)
	}
}

// After a fused first build, only the steps that build the workspace's code
// start from the seed: were clippy to take it, its artifacts would carry the
// seed's build of greet to the test step after it, standing over the test
// step's own build of greet from an edit since, and every later run of
// clippy would make the test step rebuild greet.
func TestFusedSeedOnlyForBuilders(t *testing.T) {
	p := newProject(t, "workspace")
	p.write("smelt.toml", "[step.deps]\nkind = \"deps\"\n\n[step.clippy]\nkind = \"clippy\"\nartifacts = \"deps\"\n\n[step.test]\nkind = \"test\"\nartifacts = \"clippy\"\n")
	p.mustSmelt("check")
	if c := compiled(p.log("test")); len(c) != 0 {
		t.Errorf("first build: the test step compiled %v; the deps step had built them", c)
	}
	p.replace("greet/src/lib.rs", `"{} {}: {}"`, `"{} {} to {}"`)
	p.replace("greet/src/lib.rs", `"1 hello from build.rs: x"`, `"1 hello from build.rs to x"`)
	p.mustSmelt("check")
	p.replace("app/Cargo.toml", "anyhow = \"1\"\n", "anyhow = \"1\"\nfnv = \"1\"\n")
	p.updateLock()
	o := p.mustSmelt("check")
	wantStatus(t, o, map[string]string{"deps": "built", "clippy": "built", "test": "built"})
	if c := compiled(p.log("test")); c["greet"] || !c["app"] {
		t.Errorf("a dependency added to app: the test step compiled %v; want app, not greet", c)
	}
}

// A fused deps step (a first build) keeps in its result the compiler-query
// cache that its skeleton builds wrote, with the stub wrapper, not the one
// its builds on the real source left: it starts from its result when it
// runs again, with the stub wrapper, and then asks rustc nothing. (The
// clippy step gives it a build on the skeleton, its cargo check.)
func TestFusedDepsKeepsStubQueries(t *testing.T) {
	p := newProject(t, "workspace")
	p.write("smelt.toml", "[step.deps]\nkind = \"deps\"\n\n[step.clippy]\nkind = \"clippy\"\nartifacts = \"deps\"\n\n[step.test]\nkind = \"test\"\nartifacts = \"clippy\"\n")
	p.mustSmelt("check")
	if !strings.Contains(p.log("deps"), "run on the source of the steps after this one") {
		t.Fatalf("the first build was not fused:\n%s", p.log("deps"))
	}
	p.replace("app/Cargo.toml", "anyhow = \"1\"\n", "anyhow = \"1\"\nfnv = \"1\"\n")
	p.updateLock()
	before := time.Now()
	o := p.mustSmelt("check")
	wantStatus(t, o, map[string]string{"deps": "built", "clippy": "built", "test": "built"})
	infos, _ := filepath.Glob(filepath.Join(p.store, "work", "*", "deps", "src", "target", ".rustc_info.json"))
	if len(infos) != 1 {
		t.Fatalf("the deps step's .rustc_info.json: %v", infos)
	}
	if fi, err := os.Stat(infos[0]); err != nil {
		t.Fatal(err)
	} else if fi.ModTime().After(before) {
		t.Errorf("cargo rewrote the deps step's .rustc_info.json at %v (run started %v): it queried the compiler again", fi.ModTime(), before)
	}
}

// A warm start is an optimisation: when the layer of the step's last
// success is gone from the store, the step runs from what it inherits.
func TestWarmStartMissingLayer(t *testing.T) {
	p := newProject(t, "workspace")
	p.write("smelt.toml", "[step.deps]\nkind = \"deps\"\n\n[step.test]\nkind = \"test\"\nartifacts = \"deps\"\n")
	p.mustSmelt("check")
	states, _ := filepath.Glob(filepath.Join(p.store, "state", "projects", "*", "test.json"))
	if len(states) != 1 {
		t.Fatalf("state files of test: %v", states)
	}
	var state struct {
		LastGood string `json:"last_good"`
	}
	if err := json.Unmarshal([]byte(readAbs(t, states[0])), &state); err != nil || state.LastGood == "" {
		t.Fatalf("state of test: %v %+v", err, state)
	}
	var res struct {
		Artifacts string `json:"artifacts"`
	}
	k := state.LastGood
	if err := json.Unmarshal([]byte(readAbs(t, filepath.Join(p.store, "results", k[:2], k[2:]+".json"))), &res); err != nil || res.Artifacts == "" {
		t.Fatalf("result of test: %v %+v", err, res)
	}
	a := res.Artifacts
	if err := os.Remove(filepath.Join(p.store, "layers", a[:2], a[2:]+".json")); err != nil {
		t.Fatal(err)
	}
	p.replace("app/src/main.rs", "greet::greet(1,", "greet::greet(2,")
	o := p.mustSmelt("check")
	wantStatus(t, o, map[string]string{"deps": "cached", "test": "built"})
	if l := p.log("test"); !strings.Contains(l, "no warm start") {
		t.Errorf("test's log does not say it started cold:\n%s", l)
	}
}

// Adding a dependency reruns deps.
func TestDependencyAdded(t *testing.T) {
	p := newProject(t, "hello")
	p.mustSmelt("build")
	p.replace("Cargo.toml", "itoa = \"1\"\n", "itoa = \"1\"\nfnv = \"1\"\n")
	p.replace("src/lib.rs", "pub fn answer() -> u32 {", "/// A hasher from the new dependency.\npub type Hasher = fnv::FnvHasher;\n\n/// The number the binary prints.\npub fn answer() -> u32 {")
	p.updateLock()
	o := p.mustSmelt("build")
	wantStatus(t, o, each("built", "deps", "package"))
	c := compiled(p.log("deps"))
	if !c["fnv"] {
		t.Errorf("deps did not build the new dependency fnv: %v", c)
	}
	// It starts from its last target/, as cargo would: the dependencies
	// that did not change are not rebuilt.
	if c["anyhow"] || c["itoa"] {
		t.Errorf("adding fnv rebuilt unchanged dependencies: %v", c)
	}
	if got := p.runResult("hello"); got != "answer: 42" {
		t.Fatalf("result/bin/hello printed %q", got)
	}
}

// A workspace with two members, a path dependency and a build.rs.
func TestWorkspace(t *testing.T) {
	p := newProject(t, "workspace")
	// The deps step alone, so on the skeleton only (not fused: no heir
	// runs); then the rest from its result.
	o := p.mustSmelt("check", "deps")
	wantStatus(t, o, map[string]string{"deps": "built"})
	o = p.mustSmelt("check")
	wantStatus(t, o, map[string]string{"deps": "cached", "clippy": "built", "test": "built", "fmt": "built", "doc": "built", "package": "built"})
	// The deps step built everything, itoa as greet's build-dependency
	// too, though the skeleton's build script fails; and without
	// dev-dependencies it left out its plain `cargo build`.
	for _, step := range allSteps {
		if step == "deps" {
			continue
		}
		for dep := range compiled(p.log(step)) {
			if dep != "greet" && dep != "app" {
				t.Errorf("step %s compiled dependency %s", step, dep)
			}
		}
	}
	if log := p.log("deps"); !strings.Contains(log, "not run, as no package has dev-dependencies") || strings.Contains(log, "run on the source of the steps after this one") {
		t.Errorf("the deps step ran its plain cargo build, or ran fused:\n%s", log)
	}
	p.mustSmelt("build", "app")
	if got := p.runResult("app"); got != "1 hello from build.rs: workspace" {
		t.Fatalf("result/bin/app printed %q", got)
	}
	// An edit in the library member rebuilds its dependents, not deps.
	p.replace("greet/src/lib.rs", `"{} {}: {}"`, `"{} {} to {}"`)
	p.replace("greet/src/lib.rs", `"1 hello from build.rs: x"`, `"1 hello from build.rs to x"`)
	o = p.mustSmelt("build", "app")
	wantStatus(t, o, map[string]string{"deps": "cached", "package.app": "built"})
	if got := p.runResult("app"); got != "1 hello from build.rs to workspace" {
		t.Fatalf("after the edit result/bin/app printed %q", got)
	}
	for dep := range compiled(p.log("package.app")) {
		if dep != "greet" && dep != "app" {
			t.Errorf("package recompiled dependency %s", dep)
		}
	}
	o = p.smelt("build", "nosuch")
	if o.code == 0 || !strings.Contains(o.output, "nosuch is neither a step") {
		t.Errorf("smelt build nosuch: exit %d\n%s", o.code, o.output)
	}
}

// The seed's sequential chain: a clippy failure stops test and package.
func TestSequentialChain(t *testing.T) {
	p := newProject(t, "sequential")
	o := p.mustSmelt("check")
	wantStatus(t, o, each("built", "deps", "clippy", "test", "crate"))
	for _, step := range []string{"clippy", "test", "crate"} {
		for dep := range compiled(p.log(step)) {
			if dep != "seq" {
				t.Errorf("step %s recompiled dependency %s", step, dep)
			}
		}
	}
	p.mustSmelt("build")
	if got := p.runResult("seq"); got != "double: 42" {
		t.Fatalf("result/bin/seq printed %q", got)
	}

	// A lint that --deny warnings rejects.
	p.replace("src/main.rs", "fn main() {\n", "fn main() {\n    let unused = 1;\n")
	o = p.smelt("check")
	if o.code == 0 {
		t.Fatalf("check passed with a clippy error:\n%s", o.output)
	}
	wantStatus(t, o, map[string]string{"deps": "cached", "clippy": "failed", "test": "skipped", "crate": "skipped"})
	if !strings.Contains(o.output, "clippy") || !strings.Contains(o.output, "unused") {
		t.Errorf("the failure does not show clippy's complaint:\n%s", o.output)
	}
	// The failure was not cached: the same input fails again.
	o = p.smelt("check")
	wantStatus(t, o, map[string]string{"clippy": "failed"})
}

// On a first build the deps step builds the crate too, in the same cargo as
// its dependencies (fused): the steps after it start from that and compile
// nothing, and the result is the crate's. A crate that does not compile
// fails the step that builds it, not the deps step.
func TestFusedFirstBuild(t *testing.T) {
	p := newProject(t, "sequential")
	o := p.mustSmelt("check")
	wantStatus(t, o, each("built", "deps", "clippy", "test", "crate"))
	if deps := p.log("deps"); !compiled(deps)["seq"] || !strings.Contains(deps, "run on the source of the steps after this one") {
		t.Errorf("the deps step did not build seq on its heirs' source:\n%s", deps)
	}
	for _, step := range []string{"test", "crate"} {
		if c := compiled(p.log(step)); len(c) != 0 {
			t.Errorf("step %s compiled %v; the deps step had built them", step, c)
		}
	}
	if !strings.Contains(p.log("test"), "1 passed") {
		t.Errorf("test did not run the test:\n%s", p.log("test"))
	}
	p.mustSmelt("build")
	if got := p.runResult("seq"); got != "double: 42" {
		t.Fatalf("result/bin/seq printed %q", got)
	}

	q := newProject(t, "sequential")
	q.replace("src/main.rs", "n * 2", "n * \"2\"")
	o = q.smelt("check")
	wantStatus(t, o, map[string]string{"deps": "built", "clippy": "failed", "test": "skipped", "crate": "skipped"})
	if !strings.Contains(o.output, "E0277") && !strings.Contains(o.output, "cannot multiply") {
		t.Errorf("the failure does not show the compiler's error:\n%s", o.output)
	}
	q.replace("src/main.rs", "n * \"2\"", "n * 2")
	o = q.mustSmelt("build")
	wantStatus(t, o, map[string]string{"deps": "cached", "crate": "built"})
	if got := q.runResult("seq"); got != "double: 42" {
		t.Fatalf("after the fix, result/bin/seq printed %q", got)
	}
}

// Bad input gets one clear message naming the file, and nothing is built.
func TestBadInput(t *testing.T) {
	t.Run("smelt.toml typo", func(t *testing.T) {
		p := newProject(t, "sequential")
		p.replace("smelt.toml", `profile = "release"`, `profle = "release"`)
		o := p.smelt("check")
		if o.code == 0 || !strings.Contains(o.output, "smelt.toml:4:") || !strings.Contains(o.output, `did you mean "profile"`) {
			t.Errorf("exit %d, output:\n%s", o.code, o.output)
		}
	})
	t.Run("missing Cargo.lock", func(t *testing.T) {
		p := newProject(t, "hello")
		os.Remove(filepath.Join(p.dir, "Cargo.lock"))
		o := p.smelt("check")
		if o.code == 0 || !strings.Contains(o.output, "no Cargo.lock") || !strings.Contains(o.output, "cargo generate-lockfile") {
			t.Errorf("exit %d, output:\n%s", o.code, o.output)
		}
	})
	t.Run("outdated Cargo.lock", func(t *testing.T) {
		p := newProject(t, "hello")
		p.replace("Cargo.toml", "itoa = \"1\"\n", "itoa = \"1\"\nfnv = \"1\"\n")
		o := p.smelt("check")
		if o.code == 0 || !strings.Contains(o.output, "Cargo.lock is out of date") {
			t.Errorf("exit %d, output:\n%s", o.code, o.output)
		}
	})
	t.Run("checksum mismatch", func(t *testing.T) {
		p := newProject(t, "hello")
		p.replace("Cargo.lock", "checksum = \"3bd1574e", "checksum = \"0bd1574e")
		o := p.smelt("check")
		if o.code == 0 || !strings.Contains(o.output, "itoa") || !strings.Contains(o.output, "Cargo.lock") {
			t.Errorf("exit %d, output:\n%s", o.code, o.output)
		}
		entries, _ := os.ReadDir(filepath.Join(p.store, "vendor"))
		if len(entries) != 0 {
			t.Errorf("a failed fetch left vendored sources in the store: %v", entries)
		}
	})
}

// Two smelt processes on one project and one store at once both succeed,
// and leave a store that a third run finds complete.
func TestConcurrentRuns(t *testing.T) {
	p := newProject(t, "hello")
	results := make(chan outcome, 2)
	for i := 0; i < 2; i++ {
		go func() { results <- p.smelt("check", "-j", "1") }()
	}
	for i := 0; i < 2; i++ {
		if o := <-results; o.code != 0 {
			t.Fatalf("concurrent smelt check exited %d:\n%s", o.code, o.output)
		}
	}
	o := p.mustSmelt("check")
	wantStatus(t, o, each("cached", allSteps...))
	p.mustSmelt("build")
	if got := p.runResult("hello"); got != "answer: 42" {
		t.Fatalf("result/bin/hello printed %q", got)
	}
}

// A git dependency (from a local repository, as a git server would serve
// it) is vendored with the rest and builds offline.
func TestGitDependency(t *testing.T) {
	needCargo(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	repo := filepath.Join(t.TempDir(), "shout")
	p := &project{t: t, dir: repo, env: os.Environ()}
	p.write("Cargo.toml", "[package]\nname = \"shout\"\nversion = \"0.1.0\"\nedition = \"2021\"\n")
	p.write("src/lib.rs", "/// Shouts.\npub fn shout(s: &str) -> String {\n    s.to_uppercase()\n}\n")
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "shout"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	p = &project{t: t, dir: filepath.Join(t.TempDir(), "app"), store: filepath.Join(t.TempDir(), "store"), env: os.Environ()}
	p.write("Cargo.toml", "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nshout = { git = \"file://"+repo+"\" }\n")
	p.write("src/main.rs", "fn main() {\n    println!(\"{}\", shout::shout(\"git\"));\n}\n")
	cmd := exec.Command("cargo", "generate-lockfile")
	cmd.Dir = p.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cargo generate-lockfile: %v\n%s", err, out)
	}
	o := p.mustSmelt("build")
	wantStatus(t, o, map[string]string{"deps": "built", "package": "built"})
	if c := compiled(p.log("deps")); !c["shout"] {
		t.Errorf("deps did not build the git dependency: %v", c)
	}
	if got := p.runResult("app"); got != "GIT" {
		t.Fatalf("result/bin/app printed %q", got)
	}
}

// smelt init writes a smelt.toml that smelt reads back, and never
// overwrites one without --force.
func TestInit(t *testing.T) {
	p := newProject(t, "hello")
	p.mustSmelt("init")
	if !strings.Contains(p.read("smelt.toml"), "[step.deps]") {
		t.Fatalf("smelt.toml:\n%s", p.read("smelt.toml"))
	}
	if o := p.smelt("init", "--sequential"); o.code == 0 || !strings.Contains(o.output, "--force") {
		t.Errorf("init over an existing smelt.toml: exit %d\n%s", o.code, o.output)
	}
	p.mustSmelt("init", "--sequential", "--force")
	// Flags before the command, as the usage says they may come.
	cmd := exec.Command(smeltBin, "-C", p.dir, "--store", p.store, "why")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "crate") || !strings.Contains(string(out), "would run") {
		t.Errorf("smelt why on the sequential smelt.toml: %v\n%s", err, out)
	}
}
