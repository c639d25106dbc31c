package run

// A fake cargo and rustc, so that the engine runs in unit tests without
// Rust. The test binary is the fake: TestMain turns into it when
// SMELT_FAKE names the tool, and a two-line shell script per tool, first on
// PATH, execs it. (Steps see only a few variables of smelt's environment,
// envKeep, so the script carries SMELT_FAKE and the log's directory.)
//
// The fake plays what the engine depends on in cargo, and nothing else:
//   - a unit per workspace member and mode (rmeta for check and clippy,
//     rlib for build, test and doc) under target/PROFILE/.fingerprint and
//     deps/, its content a hash of the member's .rs files, so a stale unit
//     is visible in the artifacts;
//   - cargo's mtime rule: a unit is rebuilt only when it is missing or one
//     of its member's .rs files is newer than it, so a source file laid out
//     with an old mtime over newer artifacts is silently not recompiled;
//   - a unit per package of Cargo.lock that is not a member (the
//     "dependencies"), built once and fresh whenever present;
//   - the skeleton's stubs fail as they do in rustc (skeleton.Marker);
//     FAIL_BUILD in a member's source fails its compilation, FAIL_LINT its
//     clippy, FAIL_TEST its tests, FAIL_FMT `cargo fmt --check`;
//   - `cargo build --message-format=json…` reports the binaries (src/main.rs)
//     as cargo does; `cargo test` prints cargo's test result lines.
//
// Each invocation appends one JSON line to calls.jsonl in the step's
// working directory (or the fake's own, outside a step): its arguments,
// working directory and the units it compiled.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"smelt/internal/skeleton"
)

func TestMain(m *testing.M) {
	if tool := os.Getenv("SMELT_FAKE"); tool != "" {
		os.Exit(fakeMain(tool, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeCall is one logged invocation of the fake.
type fakeCall struct {
	Tool     string   `json:"tool"`
	Args     []string `json:"args"`
	Cwd      string   `json:"cwd"`
	Compiled []string `json:"compiled,omitempty"` // "NAME MODE", in order
	Tested   []string `json:"tested,omitempty"`   // members whose tests ran
	Exit     int      `json:"exit"`
}

const fakeRustcVV = "rustc 1.99.0-fake (000000000 2026-01-01)\nbinary: rustc\ncommit-hash: 0000000000000000000000000000000000000000\ncommit-date: 2026-01-01\nhost: x86_64-unknown-linux-gnu\nrelease: 1.99.0-fake\nLLVM version: 99.1.0\n"

func fakeMain(tool string, args []string) (code int) {
	cwd, _ := os.Getwd()
	call := &fakeCall{Tool: tool, Args: args, Cwd: cwd}
	defer func() {
		call.Exit = code
		b, _ := json.Marshal(call)
		f, err := os.OpenFile(filepath.Join(fakeLogDir(cwd), "calls.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake:", err)
			code = 99
			return
		}
		f.Write(append(b, '\n'))
		f.Close()
	}()
	if tool == "llvm-profdata" || tool == "llvm-cov" {
		return fakeLLVM(tool, args)
	}
	if tool == "rustc" {
		if slices.Equal(args, []string{"-vV"}) {
			fmt.Print(fakeRustcVV)
			return 0
		}
		fmt.Fprintf(os.Stderr, "error: the fake rustc does not do %q\n", args)
		return 1
	}
	if len(args) == 0 {
		return 1
	}
	if args[0] == "-V" || args[0] == "--version" {
		fmt.Println("cargo 1.99.0-fake (000000000 2026-01-01)")
		return 0
	}
	c := &fakeCargo{call: call, cwd: cwd, args: args, sub: args[0]}
	return c.run()
}

// fakeLogDir is where an invocation logs itself: the step's working
// directory (the nearest above cwd with the engine's .procs.lock), so that
// the test can tell the steps apart even where a sandbox shows every step
// its directory at the same path; else the fake's own directory.
func fakeLogDir(cwd string) string {
	for d := cwd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ".procs.lock")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return os.Getenv("SMELT_FAKE_DIR")
		}
	}
}

type fakeCargo struct {
	call    *fakeCall
	cwd     string
	args    []string
	sub     string
	target  string
	profile string
	failed  bool
	json    []string
}

func (c *fakeCargo) has(a string) bool {
	i := slices.Index(c.args, "--")
	if i < 0 {
		i = len(c.args)
	}
	return slices.Contains(c.args[:i], a)
}

func (c *fakeCargo) run() int {
	members, err := fakeMembers(c.cwd)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 101
	}
	if c.sub == "fmt" {
		for _, m := range members {
			if f := m.contains("FAIL_FMT"); f != "" {
				fmt.Printf("Diff in %s at line 1:\n-FAIL_FMT\n+fail_fmt\n", f)
				return 1
			}
		}
		return 0
	}
	switch c.sub {
	case "check", "clippy", "build", "test", "doc":
	default:
		fmt.Fprintf(os.Stderr, "error: no such command: `%s`\n", c.sub)
		return 101
	}
	c.target = os.Getenv("CARGO_TARGET_DIR")
	if c.target == "" {
		c.target = filepath.Join(c.cwd, "target")
	}
	c.profile = "debug"
	if i := slices.Index(c.args, "--profile"); i >= 0 && i+1 < len(c.args) && (c.args[i+1] == "release" || c.args[i+1] == "bench") {
		c.profile = "release"
	}
	if err := c.rustcInfo(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 101
	}
	mode := "rlib"
	if c.sub == "check" || c.sub == "clippy" {
		mode = "rmeta"
	}
	for _, d := range fakeDependencies(c.cwd, members) {
		if err := c.dependency(d, mode); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			return 101
		}
	}
	for _, m := range members {
		if err := c.member(m, mode); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			return 101
		}
	}
	for _, line := range c.json {
		fmt.Println(line)
	}
	if c.failed {
		return 101
	}
	if c.sub == "test" && !c.has("--no-run") {
		return c.tests(members)
	}
	return 0
}

// rustcInfo writes cargo's cache of its compiler queries, keyed (as
// cargo's is) by the wrapper it runs with; as big as cargo's (about 1 kB:
// the queries' outputs), too big to travel inline in a layer.
func (c *fakeCargo) rustcInfo() error {
	if err := os.MkdirAll(c.target, 0o755); err != nil {
		return err
	}
	want := fmt.Sprintf("{\"rustc_fingerprint\":1,\"wrapper\":%q,\"outputs\":%q}\n", filepath.Base(os.Getenv("RUSTC_WORKSPACE_WRAPPER")), strings.Repeat("x", 1100))
	p := filepath.Join(c.target, ".rustc_info.json")
	if b, err := os.ReadFile(p); err == nil && string(b) == want {
		return nil
	}
	return os.WriteFile(p, []byte(want), 0o644)
}

func fakeUnitHash(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])[:16]
}

// dependency builds a package of Cargo.lock that is not a member, once.
func (c *fakeCargo) dependency(d, mode string) error {
	h := fakeUnitHash(d, mode, c.profile)
	out := filepath.Join(c.target, c.profile, "deps", "lib"+strings.ReplaceAll(d, "-", "_")+"-"+h+"."+mode)
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	c.call.Compiled = append(c.call.Compiled, d+" "+mode)
	return writeUnit(filepath.Join(c.target, c.profile, ".fingerprint", d+"-"+h, mode+"-"+d), out, "dependency "+d+" "+mode+"\n")
}

func writeUnit(fingerprint, out, content string) error {
	for _, p := range []string{fingerprint, out} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	// Replaced, never rewritten in place, as rustc does (cargo.Replaced).
	// Padded past store.InlineMax, as a real crate is: a store object of
	// its own, not content inlined in a layer.
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, []byte(content+strings.Repeat("#", 2000)+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	return os.WriteFile(fingerprint, []byte(content), 0o644)
}

// member builds (or finds fresh) a workspace member's unit.
func (c *fakeCargo) member(m *fakeMember, mode string) error {
	h := fakeUnitHash(m.name, mode, c.profile)
	prof := filepath.Join(c.target, c.profile)
	out := filepath.Join(prof, "deps", "lib"+m.name+"-"+h+"."+mode)
	content := fmt.Sprintf("%s %s of %s\n", m.name, mode, m.hash)
	bin := filepath.Join(prof, m.name)
	// Cargo's rule: stale when missing or a source file is newer than it.
	stale := true
	if info, err := os.Stat(out); err == nil {
		stale = m.newest.After(info.ModTime())
	}
	if stale {
		if f := m.contains(skeleton.Marker); f != "" {
			fmt.Fprintf(os.Stderr, "error: %s\n --> %s:1:1\n\nerror: could not compile `%s` (lib) due to 1 previous error\n", skeleton.Marker, f, m.name)
			c.failed = true
			return nil
		}
		if f := m.contains("FAIL_BUILD"); f != "" {
			fmt.Fprintf(os.Stderr, "error[E0425]: cannot find value `FAIL_BUILD` in this scope\n --> %s:1:1\n\nerror: could not compile `%s` (lib) due to 1 previous error\n", f, m.name)
			c.failed = true
			return nil
		}
		c.call.Compiled = append(c.call.Compiled, m.name+" "+mode)
		if err := writeUnit(filepath.Join(prof, ".fingerprint", m.name+"-"+h, mode+"-"+m.name), out, content); err != nil {
			return err
		}
		if c.sub == "build" && m.bin {
			if err := os.WriteFile(bin+".tmp", []byte("#!/bin/sh\necho '"+content[:len(content)-1]+"'\n"), 0o755); err != nil {
				return err
			}
			if err := os.Rename(bin+".tmp", bin); err != nil {
				return err
			}
		}
		if c.sub == "doc" {
			p := filepath.Join(c.target, "doc", m.name, "index.html")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte("<p>"+content+"</p>\n"), 0o644); err != nil {
				return err
			}
		}
	}
	if c.sub == "clippy" {
		// clippy reports its lints from a fresh unit's cache too.
		if f := m.contains("FAIL_LINT"); f != "" {
			fmt.Fprintf(os.Stderr, "error: FAIL_LINT is not allowed\n --> %s:1:1\n\nerror: could not compile `%s` (lib) due to 1 previous error\n", f, m.name)
			c.failed = true
		}
	}
	if c.sub == "test" && c.has("--message-format=json-render-diagnostics") {
		// The test executable, as cargo reports it (coverage reads it).
		exe := filepath.Join(prof, "deps", m.name+"-"+fakeUnitHash(m.name, "test", c.profile))
		if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
			return err
		}
		c.artifact(m, "lib", true, exe, !stale)
	}
	if c.sub == "build" && m.bin && c.has("--message-format=json-render-diagnostics") {
		c.artifact(m, "bin", false, bin, !stale)
	}
	return nil
}

// artifact reports an executable as cargo's compiler-artifact message does.
func (c *fakeCargo) artifact(m *fakeMember, kind string, test bool, exe string, fresh bool) {
	b, _ := json.Marshal(map[string]any{
		"reason": "compiler-artifact", "package_id": "path+file://" + m.dir + "#" + m.name + "@0.1.0",
		"target": map[string]any{"kind": []string{kind}, "name": m.name}, "profile": map[string]any{"test": test},
		"executable": exe, "fresh": fresh,
	})
	c.json = append(c.json, string(b))
}

// tests runs the members' tests, printing what cargo test prints.
func (c *fakeCargo) tests(members []*fakeMember) int {
	code := 0
	for _, m := range members {
		n := 0
		for _, f := range m.files {
			n += strings.Count(f.data, "#[test]")
		}
		c.call.Tested = append(c.call.Tested, m.name)
		if err := m.profile(); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			return 101
		}
		fmt.Printf("     Running unittests src/lib.rs (target/%s/deps/%s)\n\nrunning %d tests\n", c.profile, m.name, n)
		if f := m.contains("FAIL_TEST"); f != "" {
			fmt.Printf("test tests::fails ... FAILED\n\ntest result: FAILED. %d passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\n", n-1)
			fmt.Fprintf(os.Stderr, "error: test failed, to rerun pass `-p %s --lib`\n", m.name)
			code = 101
			break
		}
		fmt.Printf("test result: ok. %d passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\n", n)
	}
	return code
}

type fakeFile struct {
	path string
	data string
}

// fakeMember is a workspace package as the fake sees it.
type fakeMember struct {
	name   string
	dir    string
	files  []fakeFile // its .rs files
	hash   string     // of their paths and contents
	newest time.Time  // their newest mtime
	bin    bool       // has src/main.rs
}

func (m *fakeMember) contains(s string) string {
	for _, f := range m.files {
		if strings.Contains(f.data, s) {
			return f.path
		}
	}
	return ""
}

var reName = regexp.MustCompile(`(?m)^name\s*=\s*["']([^"']+)["']`)

// fakeMembers finds the packages under dir (every Cargo.toml with a
// [package]) and reads their .rs files; a nested package's files are its own.
func fakeMembers(dir string) ([]*fakeMember, error) {
	var members []*fakeMember
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && (d.Name() == "target" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.Name() != "Cargo.toml" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "[package]") {
			return nil
		}
		m := reName.FindSubmatch(b)
		if m == nil {
			return fmt.Errorf("%s: no package name", p)
		}
		members = append(members, &fakeMember{name: string(m[1]), dir: filepath.Dir(p)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(members, func(i, j int) bool { return len(members[i].dir) > len(members[j].dir) })
	owner := func(p string) *fakeMember {
		for _, m := range members { // deepest first
			if strings.HasPrefix(p, m.dir+string(filepath.Separator)) {
				return m
			}
		}
		return nil
	}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && (d.Name() == "target" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".rs") {
			return nil
		}
		m := owner(p)
		if m == nil {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(m.dir, p)
		m.files = append(m.files, fakeFile{path: rel, data: string(b)})
		if info.ModTime().After(m.newest) {
			m.newest = info.ModTime()
		}
		if rel == filepath.Join("src", "main.rs") {
			m.bin = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		h := sha256.New()
		for _, f := range m.files {
			fmt.Fprintf(h, "%s\x00%s\x00", f.path, f.data)
		}
		m.hash = hex.EncodeToString(h.Sum(nil))[:16]
	}
	sort.Slice(members, func(i, j int) bool { return members[i].name < members[j].name })
	return members, nil
}

var reLockName = regexp.MustCompile(`(?m)^\[\[package\]\]\nname = "([^"]+)"`)

// fakeDependencies are the packages of Cargo.lock that are not members.
func fakeDependencies(dir string, members []*fakeMember) []string {
	b, _ := os.ReadFile(filepath.Join(dir, "Cargo.lock"))
	var deps []string
	for _, m := range reLockName.FindAllSubmatch(b, -1) {
		name := string(m[1])
		if !slices.ContainsFunc(members, func(x *fakeMember) bool { return x.name == name }) {
			deps = append(deps, name)
		}
	}
	return deps
}

// profile writes, when the tests run instrumented (LLVM_PROFILE_FILE set,
// %p and %m as LLVM expands them), the member's raw coverage profile:
// "NAME COVERED TOTAL", its non-empty .rs lines and those of them without
// UNCOVERED.
func (m *fakeMember) profile() error {
	pattern := os.Getenv("LLVM_PROFILE_FILE")
	if pattern == "" {
		return nil
	}
	covered, total := 0, 0
	for _, f := range m.files {
		for _, line := range strings.Split(f.data, "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			total++
			if !strings.Contains(line, "UNCOVERED") {
				covered++
			}
		}
	}
	p := strings.NewReplacer("%p", fmt.Sprint(os.Getpid()), "%m", m.name).Replace(pattern)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(fmt.Sprintf("%s %d %d\n", m.name, covered, total)), 0o644)
}

// fakeLLVM plays llvm-profdata (merge: the raw profiles' lines, sorted)
// and llvm-cov (export as lcov or a summary, show as HTML) on the fake's
// profiles, at LLVM 99 as the fake rustc reports it.
func fakeLLVM(tool string, args []string) int {
	if len(args) == 1 && args[0] == "--version" {
		fmt.Println("LLVM (http://llvm.org/):\n  LLVM version 99.1.0\n  Optimized build.")
		return 0
	}
	flag := func(name string) string {
		if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
			return args[i+1]
		}
		return ""
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", tool, err)
		return 1
	}
	if tool == "llvm-profdata" {
		if len(args) < 4 || args[0] != "merge" || flag("-o") == "" {
			return fail(fmt.Errorf("the fake does not do %q", args))
		}
		var lines []string
		for _, a := range args[1:] {
			if strings.HasSuffix(a, ".profraw") {
				b, err := os.ReadFile(a)
				if err != nil {
					return fail(err)
				}
				lines = append(lines, strings.TrimSpace(string(b)))
			}
		}
		sort.Strings(lines)
		if err := os.WriteFile(flag("-o"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return fail(err)
		}
		return 0
	}
	data, err := os.ReadFile(flag("-instr-profile"))
	if err != nil {
		return fail(err)
	}
	covered, total := 0, 0
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var name string
		var c, t int
		if _, err := fmt.Sscanf(line, "%s %d %d", &name, &c, &t); err != nil {
			return fail(fmt.Errorf("profile line %q: %v", line, err))
		}
		names = append(names, name)
		covered += c
		total += t
	}
	switch {
	case args[0] == "export" && slices.Contains(args, "-format=lcov"):
		for _, n := range names {
			fmt.Printf("SF:%s\nend_of_record\n", n)
		}
	case args[0] == "export" && slices.Contains(args, "-summary-only"):
		pct := 100 * float64(covered) / float64(total)
		fmt.Printf(`{"data":[{"totals":{"lines":{"count":%d,"covered":%d,"percent":%g},"functions":{"count":1,"covered":1,"percent":100},"regions":{"count":1,"covered":1,"percent":100}}}]}`+"\n", total, covered, pct)
	case args[0] == "show" && flag("-output-dir") != "":
		dir := flag("-output-dir")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fail(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>"+strings.Join(names, " ")+"</p>\n"), 0o644); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("the fake does not do %q", args))
	}
	return 0
}
