package main

// End-to-end tests of the check kinds beyond the core pipeline: coverage
// (llvm-cov), tarpaulin, nextest, doctest, deny, command, and the matrix.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// needTool skips a test whose external tool is missing, unless the run
// requires every tool (CI sets SMELT_REQUIRE_TOOLS=1 after installing them),
// where a missing tool is a failure rather than a silent skip.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("SMELT_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is not installed, and SMELT_REQUIRE_TOOLS=1", name)
		}
		t.Skipf("%s is not installed", name)
	}
}

// needLLVM skips (or, under SMELT_REQUIRE_TOOLS=1, fails) a test when the
// LLVM tools matching rustc's LLVM are missing.
func needLLVM(t *testing.T) {
	t.Helper()
	out, err := exec.Command("rustc", "-vV").Output()
	if err != nil {
		t.Skip("rustc not on PATH")
	}
	m := regexp.MustCompile(`(?m)^LLVM version: (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Skip("rustc -vV names no LLVM version")
	}
	for _, tool := range []string{"llvm-profdata-", "llvm-cov-"} {
		if _, err := exec.LookPath(tool + string(m[1])); err != nil {
			if _, err := os.Stat("/usr/lib/llvm-" + string(m[1]) + "/bin/" + strings.TrimSuffix(tool, "-")); err != nil {
				needTool(t, tool+string(m[1]))
			}
		}
	}
}

// lcovLines maps each line of a source file to its hit count in lcov.info.
func lcovLines(t *testing.T, lcov, file string) map[int]int {
	t.Helper()
	hits := map[int]int{}
	in := false
	for _, l := range strings.Split(lcov, "\n") {
		switch {
		case strings.HasPrefix(l, "SF:"):
			in = strings.HasSuffix(l, "/"+file) || l == "SF:"+file
		case in && strings.HasPrefix(l, "DA:"):
			parts := strings.Split(strings.TrimPrefix(l, "DA:"), ",")
			n, _ := strconv.Atoi(parts[0])
			c, _ := strconv.Atoi(parts[1])
			hits[n] = c
		}
	}
	if len(hits) == 0 {
		t.Fatalf("lcov.info has no lines for %s:\n%s", file, lcov)
	}
	return hits
}

// lineOf returns the 1-based line of the first line of src containing s.
func lineOf(t *testing.T, src, s string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("no line contains %q", s)
	return 0
}

// Coverage with rustc's instrumentation and llvm-cov: the function no test
// calls is reported uncovered, the tested ones covered; fail-under works.
func TestCoverage(t *testing.T) {
	p := newProject(t, "checks")
	needLLVM(t)
	calls := shimPath(t, p)
	o := p.mustSmelt("check", "coverage")
	wantStatus(t, o, map[string]string{"deps": "built", "coverage": "built"})
	// Cached, it starts nothing (not even rustc to find the LLVM tools).
	os.Remove(calls)
	o = p.mustSmelt("check", "coverage")
	wantStatus(t, o, map[string]string{"deps": "cached", "coverage": "cached"})
	if b, err := os.ReadFile(calls); err == nil {
		t.Errorf("a cached coverage check started processes:\n%s", b)
	}
	p.mustSmelt("build", "coverage")
	lcov, err := os.ReadFile(filepath.Join(p.dir, "result", "lcov.info"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(lcov), "/vendor/") {
		t.Errorf("the coverage report covers vendored crates:\n%s", lcov)
	}
	src := p.read("src/lib.rs")
	hits := lcovLines(t, string(lcov), "src/lib.rs")
	if n := lineOf(t, src, "let tripled = x * 3;"); hits[n] != 0 {
		t.Errorf("line %d of uncovered() has %d hits, want 0", n, hits[n])
	}
	if n := lineOf(t, src, "    x + 1"); hits[n] == 0 {
		t.Errorf("line %d of add_one() is reported uncovered", n)
	}
	if n := lineOf(t, src, "buf.format(x).to_owned()"); hits[n] == 0 {
		t.Errorf("line %d of render() is reported uncovered", n)
	}
	for _, f := range []string{"html/index.html", "summary.json"} {
		if _, err := os.Stat(filepath.Join(p.dir, "result", f)); err != nil {
			t.Errorf("coverage output lacks %s: %v", f, err)
		}
	}
	for _, ev := range o.events {
		if ev["step"] == "coverage" && ev["event"] == "finish" {
			if s, _ := ev["summary"].(string); !regexp.MustCompile(`^lines \d+\.\d+% \(\d+/\d+\)`).MatchString(s) {
				t.Errorf("coverage summary %q", s)
			}
		}
	}

	// fail-under above what the tests cover fails the step.
	p.replace("smelt.toml", "fail-under = 50", "fail-under = 99")
	o = p.smelt("check", "coverage")
	if o.code == 0 || o.status["coverage"] != "failed" || !strings.Contains(o.output, "under fail-under = 99") {
		t.Errorf("fail-under = 99: exit %d\n%s", o.code, o.output)
	}
	p.replace("smelt.toml", "fail-under = 99", "fail-under = 60")
	o = p.mustSmelt("check", "coverage")
	wantStatus(t, o, map[string]string{"coverage": "built"})
}

var reNextestPass = regexp.MustCompile(`(?m)^\s*PASS \[[^\]]*\]\s+(?:\(\s*\d+/\d+\)\s+)?checks(?:::\S+)?\s+(\S+)\s*$`)

// nextest with two partitions: each test runs exactly once between them,
// and each partition is cached on its own.
func TestNextestPartitions(t *testing.T) {
	needTool(t, "cargo-nextest")
	p := newProject(t, "checks")
	o := p.mustSmelt("check", "nextest")
	wantStatus(t, o, map[string]string{"nextest#1": "built", "nextest#2": "built"})
	var ran []string
	for _, part := range []string{"nextest#1", "nextest#2"} {
		for _, m := range reNextestPass.FindAllStringSubmatch(p.log(part), -1) {
			ran = append(ran, m[1])
		}
	}
	sort.Strings(ran)
	want := []string{"tests::one", "tests::renders_seven", "tests::renders_zero", "tests::two"}
	if strings.Join(ran, " ") != strings.Join(want, " ") {
		t.Errorf("the partitions ran %v, want each of %v once", ran, want)
	}
	o = p.mustSmelt("check", "nextest")
	wantStatus(t, o, map[string]string{"nextest#1": "cached", "nextest#2": "cached"})
}

// A failing doctest fails its step.
func TestDoctest(t *testing.T) {
	p := newProject(t, "checks")
	o := p.mustSmelt("check", "doctest")
	wantStatus(t, o, map[string]string{"doctest": "built"})
	p.replace("src/lib.rs", "assert_eq!(checks::add_one(1), 2);", "assert_eq!(checks::add_one(1), 3);")
	o = p.smelt("check", "doctest")
	if o.code == 0 || o.status["doctest"] != "failed" {
		t.Errorf("a failing doctest: exit %d\n%s", o.code, o.output)
	}
}

// cargo-deny passes the fixture's policy and rejects a banned crate.
func TestDeny(t *testing.T) {
	needTool(t, "cargo-deny")
	p := newProject(t, "checks")
	o := p.mustSmelt("check", "deny")
	wantStatus(t, o, map[string]string{"deny": "built"})
	p.replace("deny.toml", "deny = []", `deny = [{ crate = "itoa" }]`)
	o = p.smelt("check", "deny")
	if o.code == 0 || o.status["deny"] != "failed" || !strings.Contains(p.log("deny"), "itoa") {
		t.Errorf("a banned crate: exit %d\n%s", o.code, o.output)
	}
}

// A command step runs offline on the inherited artifacts; its declared
// outputs reach the step after it and smelt build.
func TestCommandOutputs(t *testing.T) {
	p := newProject(t, "checks")
	o := p.mustSmelt("check", "report")
	wantStatus(t, o, map[string]string{"deps": "built", "gen": "built", "report": "built"})
	if c := compiled(p.log("gen")); c["itoa"] {
		t.Errorf("the command step recompiled a dependency: %v", c)
	}
	p.mustSmelt("build", "gen")
	answer, err := os.ReadFile(filepath.Join(p.dir, "result", "out", "answer.txt"))
	if err != nil || strings.TrimSpace(string(answer)) != "answer 42" {
		t.Fatalf("result/out/answer.txt: %q, %v", answer, err)
	}
	p.mustSmelt("build", "report")
	size, err := os.ReadFile(filepath.Join(p.dir, "result", "out", "size.txt"))
	if err != nil || strings.TrimSpace(string(size)) != strconv.Itoa(len(answer)) {
		t.Fatalf("result/out/size.txt: %q, %v (answer.txt has %d bytes)", size, err, len(answer))
	}
	// The network is off inside a command step.
	p.replace("smelt.toml", `run = "wc -c < out/answer.txt > out/size.txt"`,
		`run = "cargo search --limit 1 itoa > out/size.txt"`)
	o = p.smelt("check", "report")
	if o.code == 0 {
		t.Errorf("a command step reached the network:\n%s", o.output)
	}
}

// The seed's full chain with cargo-tarpaulin, then fully cached.
func TestSeedChainWithTarpaulin(t *testing.T) {
	needTool(t, "cargo-tarpaulin")
	p := newProject(t, "seed")
	o := p.mustSmelt("check")
	wantStatus(t, o, each("built", "deps", "clippy", "coverage", "crate"))
	var summary string
	for _, ev := range o.events {
		if ev["step"] == "coverage" && ev["event"] == "finish" {
			summary, _ = ev["summary"].(string)
		}
	}
	if !strings.HasPrefix(summary, "lines ") {
		t.Errorf("tarpaulin summary %q", summary)
	}
	// deps built the dependencies as tarpaulin builds them (its own flags).
	for _, step := range []string{"clippy", "coverage", "crate"} {
		for dep := range compiled(p.log(step)) {
			if dep != "seed" {
				t.Errorf("step %s recompiled dependency %s", step, dep)
			}
		}
	}
	o = p.mustSmelt("check")
	wantStatus(t, o, each("cached", "deps", "clippy", "coverage", "crate"))
	p.mustSmelt("build", "coverage")
	if _, err := os.Stat(filepath.Join(p.dir, "result", "cobertura.xml")); err != nil {
		t.Errorf("tarpaulin's Cobertura report is missing from its output: %v", err)
	}
}

// A matrix over stable and nightly runs both rows; changing only the
// nightly row reruns only nightly steps.
func TestMatrix(t *testing.T) {
	p := newProject(t, "matrix")
	o := p.mustSmelt("check")
	rows := []string{"deps@stable", "clippy@stable", "test@stable", "deps@nightly", "clippy@nightly", "test@nightly"}
	wantStatus(t, o, each("built", rows...))
	p.write("smelt.toml", p.read("smelt.toml")+"\n[matrix.row.nightly]\nenv = { SMELT_ROW = \"nightly\" }\n")
	o = p.mustSmelt("check")
	wantStatus(t, o, each("cached", "deps@stable", "clippy@stable", "test@stable"))
	wantStatus(t, o, each("built", "deps@nightly", "clippy@nightly", "test@nightly"))
}
