package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// deps alone, with RUSTFLAGS that differ between runs so that every unit
// is built again.
const progressTOML = `[common]
env = { RUSTFLAGS = "--cfg smelt_progress_%d" }

[step.deps]
kind = "deps"
`

// plain runs smelt without --json, its output a pipe (not a terminal).
func (p *project) plain(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(smeltBin, append(args, "-C", p.dir, "--store", p.store)...)
	cmd.Env = append(p.env, "TERM=xterm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("smelt %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// reFrame is a running step's line in the status area: the units done of
// its last run's total, and the crate cargo compiles.
var reFrame = regexp.MustCompile(`… deps +\d+s[^\n]*\] (\d+)/(\d+)  (itoa|anyhow|greet)\b`)

// On a terminal, the deps step shows which crate cargo compiles and how
// many units of its last run's are done; through a pipe, no escape codes;
// and the summary says what the cache saved.
func TestProgressOnTerminal(t *testing.T) {
	p := newProject(t, "workspace")
	p.write("smelt.toml", fmt.Sprintf(progressTOML, 1))
	out := p.plain("check")
	if strings.ContainsAny(out, "\x1b\r") {
		t.Errorf("the output through a pipe holds control characters:\n%q", out)
	}
	if !strings.Contains(out, "  ▸ deps         running (first run)\n") || !regexp.MustCompile(`(?m)^  ✓ deps +done in `).MatchString(out) ||
		!strings.Contains(out, "check: 1 steps: 0 cached, 1 built, 0 failed, 0 skipped (") {
		t.Errorf("the plain output lacks the step's start, end or summary:\n%s", out)
	}

	// Again on a terminal, every unit rebuilt.
	p.write("smelt.toml", fmt.Sprintf(progressTOML, 2))
	cmd := exec.Command(smeltBin, "check", "-C", p.dir, "--store", p.store)
	cmd.Env = append(p.env, "TERM=xterm")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	io.Copy(&screen, tty) // until the terminal closes (EIO once smelt exits)
	tty.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("smelt check on a terminal: %v\n%s", err, screen.String())
	}
	frames := reFrame.FindAllStringSubmatch(screen.String(), -1)
	if len(frames) == 0 {
		t.Fatalf("no status line with a crate and N/M while deps ran:\n%q", screen.String())
	}
	for _, f := range frames {
		n, _ := strconv.Atoi(f[1])
		m, _ := strconv.Atoi(f[2])
		if m == 0 || n > m {
			t.Errorf("status line %q: not N of the last run's M units", f[0])
		}
	}
	if !strings.Contains(screen.String(), "\x1b[J") {
		t.Errorf("the status area is never erased:\n%q", screen.String())
	}

	// Nothing changed: cached, and the time it took is saved.
	out = p.plain("check")
	if !regexp.MustCompile(`check: 1 steps: 1 cached, 0 built, 0 failed, 0 skipped \([0-9.]+s\); the cache saved [0-9.]+s\n`).MatchString(out) {
		t.Errorf("the summary does not say what the cache saved:\n%s", out)
	}
}

// smelt build MEMBER builds that member alone, in a step of its own.
func TestBuildMember(t *testing.T) {
	p := newProject(t, "workspace")
	o := p.mustSmelt("build", "app")
	wantStatus(t, o, map[string]string{"deps": "built", "package.app": "built"})
	if _, ok := o.status["package"]; ok {
		t.Errorf("smelt build app ran the whole workspace's package step:\n%s", o.output)
	}
	log := p.log("package.app")
	if !regexp.MustCompile(`(?m)^\$ cargo build .* -p app$`).MatchString(log) {
		t.Errorf("the step did not build -p app:\n%s", log)
	}
	if got := p.runResult("app"); got != "1 hello from build.rs: workspace" {
		t.Fatalf("result/bin/app printed %q", got)
	}
	// The same member again: cached; the whole workspace's build is its own.
	o = p.mustSmelt("build", "app")
	wantStatus(t, o, map[string]string{"deps": "cached", "package.app": "cached"})
	o = p.mustSmelt("build")
	wantStatus(t, o, map[string]string{"deps": "cached", "package": "built"})
	o = p.smelt("build", "greet")
	if o.code == 0 || !strings.Contains(o.output, "workspace member greet has no binaries") {
		t.Errorf("smelt build greet: exit %d\n%s", o.code, o.output)
	}
	o = p.smelt("build", "package.nosuch")
	if o.code == 0 || !strings.Contains(o.output, "nosuch is neither a step") || strings.Contains(o.output, `"start"`) {
		t.Errorf("smelt build package.nosuch: exit %d\n%s", o.code, o.output)
	}
	if _, err := os.Stat(p.dir + "/result/bin/app"); err != nil {
		t.Errorf("result/bin/app gone after a failed build: %v", err)
	}
}
