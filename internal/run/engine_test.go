package run

// The engine's behaviour, driven through Run over the fake cargo of
// fake_test.go: caching, why, early cutoff, warm starts, the mtime rule,
// fused first builds, failures, store damage and the per-key lock.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"smelt/internal/config"
	"smelt/internal/store"
)

// ws is a fake workspace with its own store and fake cargo.
type ws struct {
	t     *testing.T
	root  string
	st    *store.Store
	fake  string // the fake's directory (calls.jsonl)
	mu    sync.Mutex
	warns []string
}

var wsFiles = map[string]string{
	"Cargo.toml": "[workspace]\nmembers = [\"app\", \"greet\"]\nresolver = \"2\"\n",
	"Cargo.lock": "version = 3\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\n \"fakedep\",\n \"greet\",\n]\n\n" +
		"[[package]]\nname = \"fakedep\"\nversion = \"1.0.0\"\n\n[[package]]\nname = \"greet\"\nversion = \"0.1.0\"\n",
	"app/Cargo.toml":   "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ngreet = { path = \"../greet\" }\nfakedep = \"1\"\n",
	"app/src/main.rs":  "fn main() { greet::hi(); }\n\n#[test]\nfn runs() {}\n",
	"greet/Cargo.toml": "[package]\nname = \"greet\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
	"greet/src/lib.rs": "pub fn hi() {}\n\n#[test]\nfn a() {}\n\n#[test]\nfn b() {}\n",
	"README.md":        "# a fake workspace\n",
}

func newWS(t *testing.T) *ws {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fake := t.TempDir()
	bin := filepath.Join(fake, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// The LLVM tools as the coverage kind looks for them: named by the
	// fake rustc's LLVM major version.
	for _, tool := range []string{"cargo", "rustc", "llvm-profdata-99", "llvm-cov-99"} {
		script := fmt.Sprintf("#!/bin/sh\nSMELT_FAKE=%s SMELT_FAKE_DIR='%s' exec '%s' \"$@\"\n", strings.TrimSuffix(tool, "-99"), fake, exe)
		if err := os.WriteFile(filepath.Join(bin, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(filepath.ListSeparator)+os.Getenv("PATH"))
	t.Setenv("HOME", fake)
	t.Setenv("CARGO_HOME", filepath.Join(fake, "cargo-home"))
	t.Setenv("RUSTUP_HOME", filepath.Join(fake, "rustup-home"))
	os.Unsetenv("RUSTUP_TOOLCHAIN")
	w := &ws{t: t, root: t.TempDir(), fake: fake}
	for rel, data := range wsFiles {
		w.write(rel, data)
	}
	if w.st, err = store.Open(filepath.Join(t.TempDir(), "store")); err != nil {
		t.Fatal(err)
	}
	w.st.Warn = func(msg string) {
		w.mu.Lock()
		w.warns = append(w.warns, msg)
		w.mu.Unlock()
	}
	return w
}

// clone copies the workspace's files (as first written) to a new root.
func (w *ws) clone() string {
	w.t.Helper()
	root := w.t.TempDir()
	for rel, data := range wsFiles {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	return root
}

// corrupt changes a file's first byte in place, as bit rot or a tool
// writing through a hard link would, and moves its mtime.
func corrupt(t *testing.T, file string) {
	t.Helper()
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(file, later, later); err != nil {
		t.Fatal(err)
	}
}

func (w *ws) write(rel, data string) {
	w.t.Helper()
	p := filepath.Join(w.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *ws) replace(rel, old, new string) {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.root, rel))
	if err != nil {
		w.t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		w.t.Fatalf("%s does not contain %q", rel, old)
	}
	w.write(rel, strings.Replace(string(b), old, new, 1))
}

func parseConfig(t *testing.T, toml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("smelt.toml", []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// run runs the named steps, failing the test if smelt itself fails.
func (w *ws) run(cfg *config.Config, names ...string) *Report {
	w.t.Helper()
	rep, err := Run(context.Background(), w.root, cfg, names, Options{Store: w.st, Jobs: 2})
	if err != nil {
		w.t.Fatalf("run %v: %v", names, err)
	}
	return rep
}

// calls returns the fake's invocations since the last call of calls, by
// step ("" for those outside a step: the toolchain's identity).
func (w *ws) calls() map[string][]fakeCall {
	w.t.Helper()
	logs, err := filepath.Glob(filepath.Join(w.st.Dir, "work", "*", "*", "calls.jsonl"))
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string][]fakeCall{}
	for _, p := range append(logs, filepath.Join(w.fake, "calls.jsonl")) {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			w.t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			w.t.Fatal(err)
		}
		step := ""
		if p != filepath.Join(w.fake, "calls.jsonl") {
			step = filepath.Base(filepath.Dir(p))
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var c fakeCall
			if err := json.Unmarshal([]byte(line), &c); err != nil {
				w.t.Fatal(err)
			}
			out[step] = append(out[step], c)
		}
	}
	return out
}

// compiled lists the units the fake compiled for a step, as "NAME MODE".
func compiled(calls []fakeCall) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Compiled...)
	}
	slices.Sort(out)
	return out
}

func statuses(rep *Report) map[string]string {
	m := map[string]string{}
	for _, s := range rep.Steps {
		m[s.Name] = s.Status.String()
	}
	return m
}

func wantStatuses(t *testing.T, rep *Report, want map[string]string) {
	t.Helper()
	got := statuses(rep)
	for name, st := range want {
		if got[name] != st {
			t.Errorf("step %s %s, want %s (all: %v)", name, got[name], st, got)
			for _, s := range rep.Steps {
				if s.Err != nil {
					t.Logf("%s: %v\n%s", s.Name, s.Err, strings.Join(s.Tail, "\n"))
				}
			}
		}
	}
}

func all(status string, names ...string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[n] = status
	}
	return m
}

// memberHash is the hash of a member's .rs files as the fake computes it
// from the project's own files.
func (w *ws) memberHash(name string) string {
	w.t.Helper()
	ms, err := fakeMembers(w.root)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, m := range ms {
		if m.name == name {
			return m.hash
		}
	}
	w.t.Fatalf("no member %s", name)
	return ""
}

// artifact returns the first line (with its newline) of the stored
// target/ file of a step's result whose path has the given prefix and
// suffix.
func (w *ws) artifact(res *Result, prefix, suffix string) string {
	w.t.Helper()
	tree, err := w.st.Flatten(res.Artifacts)
	if err != nil {
		w.t.Fatal(err)
	}
	for p, e := range tree {
		if strings.HasPrefix(p, prefix) && strings.HasSuffix(p, suffix) && e.Type == store.TypeFile {
			dir := w.t.TempDir()
			e.Path = "f"
			if err := w.st.Restore(dir, store.Tree{e.Path: e}, store.RestoreOptions{}); err != nil {
				w.t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Path))
			if err != nil {
				w.t.Fatal(err)
			}
			line, _, _ := strings.Cut(string(b), "\n")
			return line + "\n"
		}
	}
	w.t.Fatalf("no %s…%s in the artifacts of %s", prefix, suffix, res.Step)
	return ""
}

var checks = []string{"clippy", "test", "fmt", "doc", "package"}

// The default pipeline: a first build, a cached rerun that starts no
// process, and an edit that reruns exactly the steps whose inputs changed,
// each saying why and recompiling only the edited member.
func TestEngineCacheAndEdit(t *testing.T) {
	w := newWS(t)
	cfg := config.Default()
	rep := w.run(cfg, checks...)
	wantStatuses(t, rep, all("built", "deps", "clippy", "test", "fmt", "doc", "package"))
	if t.Failed() {
		t.FailNow()
	}
	for _, s := range rep.Steps {
		if s.Reason != "first run" {
			t.Errorf("%s ran because %q, want first run", s.Name, s.Reason)
		}
	}
	if got := rep.Step("test").Result.Summary; !strings.Contains(got, "3 tests passed") {
		t.Errorf("test summary %q, want the fake's 3 passed tests", got)
	}
	if got := rep.Step("package").Result.Bins; got["app"] != "app" || len(got) != 1 {
		t.Errorf("package bins %v, want app", got)
	}
	w.calls()

	rep = w.run(cfg, checks...)
	wantStatuses(t, rep, all("cached", "deps", "clippy", "test", "fmt", "doc", "package"))
	if c := w.calls(); len(c) != 0 {
		t.Errorf("a cached run started the fake: %v", c)
	}

	w.replace("greet/src/lib.rs", "pub fn hi() {}", "pub fn hi() { let _ = 1; }")
	rep = w.run(cfg, checks...)
	wantStatuses(t, rep, map[string]string{"deps": "cached", "clippy": "built", "test": "built", "fmt": "built", "doc": "built", "package": "built"})
	calls := w.calls()
	for _, step := range []string{"clippy", "test", "doc", "package"} {
		if r := rep.Step(step).Reason; r != "source changed: greet/src/lib.rs" {
			t.Errorf("%s ran because %q, want the edited file named", step, r)
		}
		for _, u := range compiled(calls[step]) {
			if !strings.HasPrefix(u, "greet ") {
				t.Errorf("after editing greet, %s compiled %v; want greet alone", step, compiled(calls[step]))
				break
			}
		}
		if len(compiled(calls[step])) == 0 {
			t.Errorf("after editing greet, %s compiled nothing", step)
		}
	}
	if len(calls["deps"]) != 0 {
		t.Errorf("deps ran after an edit of code: %v", calls["deps"])
	}

	// A file outside the cleaned source reruns nothing.
	w.write("README.md", "# edited\n")
	rep = w.run(cfg, checks...)
	wantStatuses(t, rep, all("cached", "deps", "clippy", "test", "fmt", "doc", "package"))
}

// Why tells what a run would do without running anything.
func TestEngineWhy(t *testing.T) {
	w := newWS(t)
	cfg := config.Default()
	w.run(cfg, "test")
	w.replace("app/src/main.rs", "fn runs() {}", "fn runs() { assert!(true); }")
	w.calls()
	lines, err := Why(context.Background(), w.root, cfg, []string{"test", "clippy"}, w.st)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"deps", "cached", "test", "would run: source changed: app/src/main.rs", "clippy", "would run: first run"}
	text := strings.Join(lines, "\n")
	for i := 0; i < len(want); i += 2 {
		if !slices.ContainsFunc(lines, func(l string) bool {
			f := strings.Fields(l)
			return len(f) > 0 && f[0] == want[i] && strings.Contains(l, want[i+1])
		}) {
			t.Errorf("why says nothing of %s %q:\n%s", want[i], want[i+1], text)
		}
	}
	if c := w.calls(); len(c) != 0 {
		t.Errorf("why ran the fake: %v", c)
	}
}

// Early cutoff: a step that reruns and leaves what its heir keys on
// byte-identical stops the rebuild there. A user's command keys on all of
// the target/ it inherits; a step that runs cargo on its dependencies'
// part only (the workspace's own units there are rebuilt by cargo if its
// source leaves them stale). The heirs leave out the files edited, so
// only what they inherit can make them run.
func TestEngineEarlyCutoff(t *testing.T) {
	const toml = `
[step.deps]
kind = "deps"

[step.lint]
kind = "clippy"
artifacts = "deps"

[step.heir]
artifacts = "lint"
exclude = ["tools/**", "greet/**"]
`
	for _, tc := range []struct {
		name, kind, edit string
		want, why        string
	}{
		{"command, lint's output unchanged", "kind = \"command\"\nrun = [\"true\"]\n", "tools/gen.rs", "cached", ""},
		{"command, lint's output changed", "kind = \"command\"\nrun = [\"true\"]\n", "greet/src/lib.rs", "built", "the artifacts it inherits changed"},
		{"package, lint's own units changed", "kind = \"package\"\n", "greet/src/lib.rs", "cached", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWS(t)
			w.write("tools/gen.rs", "// in no package\n")
			cfg := parseConfig(t, toml+tc.kind)
			wantStatuses(t, w.run(cfg, "heir"), all("built", "deps", "lint", "heir"))
			w.calls()
			w.write(tc.edit, "// edited\n"+wsFiles[tc.edit])
			rep := w.run(cfg, "heir")
			wantStatuses(t, rep, map[string]string{"deps": "cached", "lint": "built", "heir": tc.want})
			if r := rep.Step("lint").Reason; r != "source changed: "+tc.edit {
				t.Errorf("lint ran because %q", r)
			}
			calls := w.calls()
			if got := compiled(calls["lint"]); (tc.edit == "greet/src/lib.rs") != slices.Equal(got, []string{"greet rmeta"}) {
				t.Errorf("after editing %s lint compiled %v", tc.edit, got)
			}
			if r := rep.Step("heir").Reason; r != tc.why {
				t.Errorf("heir ran because %q, want %q", r, tc.why)
			}
			if tc.want == "cached" && len(calls["heir"]) != 0 {
				t.Errorf("the fake ran for heir, which was cached: %v", calls["heir"])
			}
		})
	}
}

// A warm start: a step starts from its own last target/ under what it
// inherits, and the fake recompiles only the edited member.
func TestEngineWarmStart(t *testing.T) {
	w := newWS(t)
	cfg := parseConfig(t, `
[step.deps]
kind = "deps"

[step.crate]
kind = "package"
artifacts = "deps"
`)
	w.run(cfg, "crate")
	// An edit of greet first, so that the deps step's seed (the first
	// build's target/) is no longer a stand-in for crate's own.
	w.replace("greet/src/lib.rs", "pub fn hi() {}", "pub fn hi() { }")
	w.run(cfg, "crate")
	w.calls()
	w.replace("app/src/main.rs", "fn main() { greet::hi(); }", "fn main() { greet::hi(); greet::hi(); }")
	rep := w.run(cfg, "crate")
	wantStatuses(t, rep, map[string]string{"deps": "cached", "crate": "built"})
	if got := compiled(w.calls()["crate"]); !slices.Equal(got, []string{"app rlib"}) {
		t.Errorf("after editing app, crate compiled %v; want app alone", got)
	}
	if log, _ := os.ReadFile(rep.Step("crate").Log); !strings.Contains(string(log), "# warm start: its own target/ of its last success") {
		t.Errorf("crate's log does not say it started warm:\n%s", log)
	}
	if got, want := w.artifact(rep.Step("crate").Result, "release/deps/libapp-", ".rlib"), "app rlib of "+w.memberHash("app")+"\n"; got != want {
		t.Errorf("app's rlib holds %q, want %q", got, want)
	}
}

// The mtime rule: a changed file is laid out newer than every artifact
// built from other content, whatever its own mtime, so the fake (which,
// like cargo, looks only at mtimes) recompiles it. The table covers a step
// over its own last target/ and one over inherited artifacts.
func TestEngineMTimeRule(t *testing.T) {
	for _, tc := range []struct{ name, toml, step string }{
		{"own target", "[step.crate]\nkind = \"package\"\nenv = { RUN = \"%d\" }\n", "crate"},
		{"inherited", "[step.deps]\nkind = \"deps\"\n\n[step.test]\nkind = \"test\"\nartifacts = \"deps\"\n\n[step.crate]\nkind = \"package\"\nartifacts = \"test\"\nenv = { RUN = \"%d\" }\n", "crate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWS(t)
			// Each run a new key (env), so that going back to content
			// built before is a build over newer artifacts, not a cache hit.
			toml := func(i int) string { return fmt.Sprintf(tc.toml, i) }
			w.run(parseConfig(t, toml(1)), tc.step)
			old := time.Unix(1, 0)
			for i, text := range []string{"pub fn hi() { /* B */ }", "pub fn hi() {}"} {
				w.write("greet/src/lib.rs", strings.Replace(wsFiles["greet/src/lib.rs"], "pub fn hi() {}", text, 1))
				if err := os.Chtimes(filepath.Join(w.root, "greet/src/lib.rs"), old, old); err != nil {
					t.Fatal(err)
				}
				w.calls()
				rep := w.run(parseConfig(t, toml(i+2)), tc.step)
				wantStatuses(t, rep, map[string]string{tc.step: "built"})
				if got, want := w.artifact(rep.Step(tc.step).Result, "release/deps/libgreet-", ".rlib"), "greet rlib of "+w.memberHash("greet")+"\n"; got != want {
					t.Fatalf("stale build: after edit %d (mtime 1970) greet's rlib holds %q, want %q", i+1, got, want)
				}
			}
		})
	}
}

// A first build runs fused: the deps step builds the workspace's own code
// on its heirs' source, keeps only the dependencies' part as its result,
// and the steps that build start from the rest (its seed) and compile
// nothing. Clippy, which only checks, takes no seed.
func TestEngineFusedFirstBuild(t *testing.T) {
	w := newWS(t)
	cfg := config.Default()
	rep := w.run(cfg, "clippy", "test", "package")
	wantStatuses(t, rep, all("built", "deps", "clippy", "test", "package"))
	calls := w.calls()
	deps := compiled(calls["deps"])
	for _, u := range []string{"fakedep rlib", "fakedep rmeta", "app rlib", "greet rlib"} {
		if !slices.Contains(deps, u) {
			t.Errorf("the first deps step compiled %v; want %s among them", deps, u)
		}
	}
	for _, step := range []string{"test", "package"} {
		if c := compiled(calls[step]); len(c) != 0 {
			t.Errorf("%s compiled %v; the fused deps step had built them", step, c)
		}
	}
	if got := compiled(calls["clippy"]); !slices.Equal(got, []string{"app rmeta", "greet rmeta"}) {
		t.Errorf("clippy compiled %v; want the members checked", got)
	}
	res := rep.Step("deps").Result
	if res.Seed == "" {
		t.Fatal("the deps step kept no seed")
	}
	tree, err := w.st.Flatten(res.Artifacts)
	if err != nil {
		t.Fatal(err)
	}
	for p := range tree {
		if strings.Contains(p, "greet") || strings.Contains(p, "app") {
			t.Errorf("the deps step's result holds the workspace's %s", p)
		}
	}
	// The deps result equals what an unfused build gives: a later run of
	// deps alone (no heir selected) on a fresh store is a cache hit of it
	// by content.
	w2 := newWS(t)
	rep2 := w2.run(cfg, "deps")
	if a, b := rep2.Step("deps").Result.ArtifactsID, res.ArtifactsID; a != b {
		t.Errorf("deps alone gave artifacts %s, fused %s: early cutoff between them is lost", a[:12], b[:12])
	}
	if rep2.Step("deps").Result.Seed != "" {
		t.Error("deps without heirs kept a seed")
	}

	// A crate that does not compile on the first build fails the step that
	// builds it, not the deps step.
	w3 := newWS(t)
	w3.replace("greet/src/lib.rs", "pub fn hi() {}", "pub fn hi() { FAIL_BUILD }")
	rep = w3.run(cfg, "test", "package")
	wantStatuses(t, rep, map[string]string{"deps": "built", "test": "failed", "package": "failed"})
	if err := rep.Step("test").Err; err == nil || !strings.Contains(err.Error(), "FAIL_BUILD") {
		t.Errorf("test failed with %v; want greet's compile error", err)
	}
}

// A failing step: the steps after it are skipped, the failure is not
// cached (the next run runs it again and says why), and the fix runs it.
func TestEngineFailure(t *testing.T) {
	for _, tc := range []struct {
		marker, step, heir, errText string
	}{
		{"FAIL_LINT", "lint", "tests", "`cargo clippy` failed"},
		{"FAIL_TEST", "tests", "crate", "`cargo test` failed"},
	} {
		t.Run(tc.marker, func(t *testing.T) {
			w := newWS(t)
			cfg := parseConfig(t, `
[step.deps]
kind = "deps"

[step.lint]
kind = "clippy"
artifacts = "deps"

[step.tests]
kind = "test"
artifacts = "lint"

[step.crate]
kind = "package"
artifacts = "tests"
`)
			w.run(cfg, "crate")
			w.replace("greet/src/lib.rs", "pub fn hi() {}", "pub fn hi() {} // "+tc.marker)
			rep := w.run(cfg, "crate")
			wantStatuses(t, rep, map[string]string{tc.step: "failed", tc.heir: "skipped"})
			if err := rep.Step(tc.step).Err; err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("%s failed with %v; want %q", tc.step, err, tc.errText)
			}
			if r := rep.Step(tc.heir).Reason; r != tc.step+" failed" {
				t.Errorf("%s skipped because %q", tc.heir, r)
			}
			if !rep.Failed() {
				t.Error("the report does not say the run failed")
			}
			w.calls()
			rep = w.run(cfg, "crate")
			wantStatuses(t, rep, map[string]string{tc.step: "failed", tc.heir: "skipped"})
			if r := rep.Step(tc.step).Reason; r != "it failed last time, with the same inputs (failures are not cached)" {
				t.Errorf("the failed step ran again because %q", r)
			}
			if len(w.calls()[tc.step]) == 0 {
				t.Error("the failure was cached: the fake did not run again")
			}
			w.replace("greet/src/lib.rs", "// "+tc.marker, "// fixed")
			rep = w.run(cfg, "crate")
			wantStatuses(t, rep, map[string]string{tc.step: "built", tc.heir: "built"})
			if r := rep.Step(tc.step).Reason; !strings.Contains(r, "source changed: greet/src/lib.rs") || !strings.HasSuffix(r, ", since it failed last time") {
				t.Errorf("after the fix %s ran because %q", tc.step, r)
			}
		})
	}
}

// Store damage: an object changed in place is found when a step uses it,
// dropped with the results built from it (one warning), and rebuilt.
func TestEngineDamage(t *testing.T) {
	w := newWS(t)
	cfg := parseConfig(t, `
[step.deps]
kind = "deps"

[step.crate]
kind = "package"
artifacts = "deps"
`)
	rep := w.run(cfg, "crate")
	deps := rep.Step("deps").Result
	content := w.artifact(deps, "release/deps/libfakedep-", ".rlib")
	obj := w.st.ObjectPath(store.ObjectID(store.HashBytes([]byte(content + strings.Repeat("#", 2000) + "\n"))))
	corrupt(t, obj)
	// A second copy of the project on the same store: its crate step
	// restores deps' artifacts into a working directory of its own.
	w.root = w.clone()
	w.replace("app/src/main.rs", "fn main() { greet::hi(); }", "fn main() { greet::hi(); greet::hi(); }")
	w.calls()
	rep = w.run(cfg, "crate")
	wantStatuses(t, rep, map[string]string{"deps": "built", "crate": "built"})
	if len(w.warns) != 1 || !strings.Contains(w.warns[0], "dropped it and the") {
		t.Errorf("warnings %q; want one about the damaged object", w.warns)
	}
	if got := compiled(w.calls()["deps"]); !slices.Contains(got, "fakedep rlib") {
		t.Errorf("deps compiled %v; want the damaged dependency rebuilt", got)
	}
	if got := w.artifact(rep.Step("crate").Result, "release/deps/libfakedep-", ".rlib"); got != content {
		t.Errorf("crate's fakedep rlib holds %q after the repair, want %q", got, content)
	}
}

// Two runs at once on one store, for two copies of a project (the same
// keys, different working directories), build each step once: the second
// waits for the first's key and takes its result.
func TestEngineKeyLock(t *testing.T) {
	w := newWS(t)
	other := w.clone()
	cfg := config.Default()
	reps := make([]*Report, 2)
	var wg sync.WaitGroup
	for i, root := range []string{w.root, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := Run(context.Background(), root, cfg, []string{"test", "package"}, Options{Store: w.st, Jobs: 2})
			if err != nil {
				t.Error(err)
			}
			reps[i] = rep
		}()
	}
	wg.Wait()
	if reps[0] == nil || reps[1] == nil {
		t.FailNow()
	}
	for _, name := range []string{"deps", "test", "package"} {
		a, b := reps[0].Step(name), reps[1].Step(name)
		built := 0
		for _, s := range []*StepReport{a, b} {
			if s.Status == Built {
				built++
			} else if s.Status != Cached {
				t.Errorf("%s %s: %v", name, s.Status, s.Err)
			}
		}
		if built != 1 {
			t.Errorf("%s built %d times by two runs at once; want once", name, built)
		}
	}
}

// A command step's declared outputs appear in its heirs' source, and the
// package step's binaries are linked as ./result after the run (Finish).
func TestEngineCommandOutputsAndResult(t *testing.T) {
	w := newWS(t)
	cfg := parseConfig(t, `
[step.gen]
kind = "command"
run = ["sh", "-c", "echo '// generated' > greet/src/generated.rs"]
outputs = ["greet/src/generated.rs"]

[step.crate]
kind = "package"
artifacts = "gen"
`)
	link := filepath.Join(w.root, "result")
	opt := Options{Store: w.st, Finish: func(rep *Report) error {
		_, err := LinkResult(w.st, rep.Step("crate").Result, "app", link)
		return err
	}}
	rep, err := Run(context.Background(), w.root, cfg, []string{"crate"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, rep, all("built", "gen", "crate"))
	if got := rep.Step("gen").Result.Summary; got != "1 output files" {
		t.Errorf("gen's summary %q", got)
	}
	// greet as the fake sees it with the generated file.
	w.write("greet/src/generated.rs", "// generated\n")
	want := "greet rlib of " + w.memberHash("greet") + "\n"
	os.Remove(filepath.Join(w.root, "greet/src/generated.rs"))
	if got := w.artifact(rep.Step("crate").Result, "release/deps/libgreet-", ".rlib"); got != want {
		t.Errorf("crate built greet as %q, want %q (with gen's output)", got, want)
	}
	out, err := exec.Command(filepath.Join(link, "bin", "app")).Output()
	if err != nil {
		t.Fatalf("run result/bin/app: %v", err)
	}
	if got, want := string(out), "app rlib of "+w.memberHash("app")+"\n"; got != want {
		t.Errorf("result/bin/app printed %q, want %q", got, want)
	}
}
