package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runBin runs the binary without the test project's --json and store.
func runBin(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(smeltBin, args...)
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func TestGraphCommand(t *testing.T) {
	dir := fixture(t, "seed")
	store := filepath.Join(t.TempDir(), "store")
	code, out, errOut := runBin(t, os.Environ(), "graph", "-C", dir, "--store", store, "--format", "mermaid")
	if code != 0 || !strings.HasPrefix(out, "flowchart LR\n") || !strings.Contains(out, "n0 --> n1") {
		t.Errorf("graph --format mermaid: exit %d\n%s%s", code, out, errOut)
	}
	// Only the named step and what it inherits.
	code, out, errOut = runBin(t, os.Environ(), "graph", "clippy", "-C", dir, "--store", store)
	if code != 0 || !strings.Contains(out, `"deps" -> "clippy"`) || strings.Contains(out, "coverage") {
		t.Errorf("graph clippy: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runBin(t, os.Environ(), "graph", "-C", dir, "--store", store, "--format", "png")
	if code != 1 || !strings.Contains(errOut, "dot, mermaid or svg") {
		t.Errorf("graph --format png: exit %d, %q", code, errOut)
	}
	// Without Graphviz: one sentence that says what to do.
	noDot := []string{"PATH=" + t.TempDir(), "HOME=" + os.Getenv("HOME")}
	code, out, errOut = runBin(t, noDot, "graph", "-C", dir, "--store", store, "--format", "svg")
	if code != 1 || out != "" || !strings.Contains(errOut, "needs Graphviz's dot, which is not on PATH: install Graphviz") {
		t.Errorf("graph --format svg without dot: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := exec.LookPath("dot"); err == nil {
		code, out, errOut = runBin(t, os.Environ(), "graph", "-C", dir, "--store", store, "--format", "svg")
		if code != 0 || !strings.Contains(out, "<svg") || !strings.Contains(out, "<title>crate</title>") {
			t.Errorf("graph --format svg: exit %d\n%s%s", code, out, errOut)
		}
	}
}

// TestGraphStatus colours the steps with what the store holds: after
// `smelt check clippy`, deps and clippy are cached and the rest would run.
func TestGraphStatus(t *testing.T) {
	p := newProject(t, "hello")
	if o := p.smelt("check", "clippy"); o.code != 0 {
		t.Fatalf("check clippy: exit %d\n%s", o.code, o.output)
	}
	code, out, errOut := runBin(t, p.env, "graph", "--status", "-C", p.dir, "--store", p.store)
	if code != 0 {
		t.Fatalf("graph --status: exit %d\n%s", code, errOut)
	}
	const green, yellow = `fillcolor="#c8e6c9"`, `fillcolor="#fff3c4"`
	for step, fill := range map[string]string{"deps": green, "clippy": green, "test": yellow, "package": yellow} {
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), `"`+step+`" [`) {
				line = l
			}
		}
		if !strings.Contains(line, fill) {
			t.Errorf("%s drawn as %q, want %s\n%s", step, line, fill, out)
		}
	}
}

func TestCICommand(t *testing.T) {
	dir := fixture(t, "checks")
	store := filepath.Join(t.TempDir(), "store")
	run := func(args ...string) (int, string, string) {
		return runBin(t, os.Environ(), append(args, "-C", dir, "--store", store)...)
	}
	wf := filepath.Join(dir, ".github", "workflows", "smelt.yml")
	if code, _, errOut := run("ci", "github", "--smelt-from", "https://example.com/smelt.git#v1"); code != 0 {
		t.Fatalf("ci github: exit %d: %s", code, errOut)
	}
	data, err := os.ReadFile(wf)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"  nextest-1:\n", "  nextest-2:\n", "needs: [smelt, deps]", "SMELT_GIT: 'https://example.com/smelt.git'", "SMELT_REF: v1"} {
		if !strings.Contains(string(data), w) {
			t.Errorf("%s lacks %q", wf, w)
		}
	}
	if code, _, errOut := run("ci", "github"); code != 1 || !strings.Contains(errOut, "already exists: pass --force") {
		t.Errorf("ci github over an existing workflow: exit %d: %s", code, errOut)
	}
	if code, _, errOut := run("ci", "github", "--force"); code != 0 {
		t.Errorf("ci github --force: exit %d: %s", code, errOut)
	}
	code, out, errOut := run("ci", "gitlab", "-o", "-")
	if code != 0 || !strings.Contains(out, "\nnextest-1:\n") {
		t.Errorf("ci gitlab -o -: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, ".gitlab-ci.yml")); err == nil {
		t.Errorf("-o - wrote .gitlab-ci.yml")
	}
	if code, _, errOut := run("ci", "circleci"); code != 1 || !strings.Contains(errOut, "smelt ci github, or smelt ci gitlab") {
		t.Errorf("ci circleci: exit %d: %s", code, errOut)
	}
}
