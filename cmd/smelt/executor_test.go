package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smelt/internal/testsrv"
	"smelt/internal/worker"
)

// workerProc is one `smelt worker` process of a test.
type workerProc struct {
	name, log string
	cmd       *exec.Cmd
	exited    chan struct{}
}

func startWorker(t *testing.T, url, name string) *workerProc {
	t.Helper()
	sw := testsrv.StartWorker(t, smeltBin, url, name, "")
	w := &workerProc{name: sw.Name, log: sw.Log, cmd: sw.Cmd, exited: sw.Exited}
	// Its offers are in the action cache once it has a session.
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(w.log)
		if bytes.Contains(b, []byte("smelt worker: bot ")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %s did not start:\n%s", name, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return w
}

// action is one completed action in a worker's log.
type action struct {
	worker, step string
	start, end   time.Time
	exit         string
}

var (
	doneRE = regexp.MustCompile(`smelt worker: done action=\S+ start=(\S+) end=(\S+) exit=(-?\d+) .* status="ok" args="(.*)"$`)
	stepRE = regexp.MustCompile(`\\"step\\":\\"([^\\]+)\\"`)
)

func (w *workerProc) actions(t *testing.T) []action {
	b, err := os.ReadFile(w.log)
	if err != nil {
		t.Fatal(err)
	}
	var out []action
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := doneRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		a := action{worker: w.name, exit: m[3]}
		if s := stepRE.FindStringSubmatch(m[4]); s != nil {
			a.step = s[1]
		}
		a.start, _ = time.Parse(time.RFC3339Nano, m[1])
		a.end, _ = time.Parse(time.RFC3339Nano, m[2])
		out = append(out, a)
	}
	return out
}

func allActions(t *testing.T, ws []*workerProc) []action {
	var out []action
	for _, w := range ws {
		out = append(out, w.actions(t)...)
	}
	return out
}

// engineWithWorkers starts BuildGrid and two workers.
func engineWithWorkers(t *testing.T) (testsrv.Engine, []*workerProc) {
	eng := testsrv.BuildGrid(t, testsrv.Options{MatchKeys: []string{worker.KeyRustc, worker.KeyTool}, KeepaliveTimeout: 8 * time.Second})
	return eng, []*workerProc{startWorker(t, eng.URL, "w1"), startWorker(t, eng.URL, "w2")}
}

// The steps of the sequential fixture on two smelt workers through
// BuildGrid: every step that runs is executed by a worker, the results
// are those of a local run (keys and package binary), and a fresh store
// using the same engine is served from its action cache.
func TestExecutorSequential(t *testing.T) {
	needCargo(t)
	eng, ws := engineWithWorkers(t)
	local := newProject(t, "sequential")
	noSandbox(t, local.mustSmelt("check"))
	local.mustSmelt("build")

	p := newProject(t, "sequential")
	o := p.mustSmelt("check", "--executor", eng.URL)
	wantStatus(t, o, each("built", "deps", "clippy", "test", "crate"))
	if strings.Contains(o.output, `"event":"warning"`) {
		t.Errorf("warnings with a working executor:\n%s", o.output)
	}
	ran := map[string]bool{}
	for _, a := range allActions(t, ws) {
		ran[a.step] = true
	}
	for _, step := range []string{"deps", "clippy", "test", "crate"} {
		if !ran[step] {
			t.Errorf("no worker ran step %s (ran: %v)", step, ran)
		}
		if !strings.Contains(p.log(step), "# smelt: ran on ") {
			t.Errorf("the log of step %s does not say where it ran:\n%s", step, p.log(step))
		}
	}
	// The deps step's consecutive commands (its fused builds) are one
	// action: the engine's fixed cost per action, paid once.
	if log := p.log("deps"); strings.Count(log, "# smelt: ran on ") >= strings.Count(log, "\n$ ") {
		t.Errorf("the deps step ran each of its commands as an action of its own:\n%s", log)
	}
	kl, kr := stepKeys(t, local.store), stepKeys(t, p.store)
	for step, k := range kl {
		if kr[step] != k {
			t.Errorf("step %s: key %.16s locally, %.16s through the executor", step, k, kr[step])
		}
	}
	if o := p.mustSmelt("build", "--executor", eng.URL); o.status["crate"] != "cached" {
		t.Errorf("smelt build after check ran the package step again: %v", o.status)
	}
	if got := p.runResult("seq"); got != "double: 42" {
		t.Fatalf("result/bin/seq printed %q", got)
	}
	lb, rb := readAbs(t, filepath.Join(local.dir, "result", "bin", "seq")), readAbs(t, filepath.Join(p.dir, "result", "bin", "seq"))
	if lb != rb {
		t.Errorf("the package binary differs from a local run's (%d and %d bytes)", len(lb), len(rb))
	}

	// A fresh store: every action is in the engine's action cache.
	before := len(allActions(t, ws))
	q := newProject(t, "sequential")
	o = q.mustSmelt("check", "--executor", eng.URL)
	wantStatus(t, o, each("built", "deps", "clippy", "test", "crate"))
	if after := len(allActions(t, ws)); after != before {
		t.Errorf("a second store's check ran %d actions on the workers, want 0 (action cache hits)", after-before)
	}
	if !strings.Contains(q.log("clippy"), "ran on (action cache)") {
		t.Errorf("clippy's log does not show an action cache hit:\n%s", q.log("clippy"))
	}
	if kq := stepKeys(t, q.store); kq["crate"] != kl["crate"] {
		t.Errorf("the cached run's keys differ from a local run's")
	}

	// A failing test is reported as a local failure is, with its log.
	p.replace("src/main.rs", `"8"`, `"9"`)
	o = p.smelt("check", "--executor", eng.URL)
	if o.code == 0 || o.status["test"] != "failed" {
		t.Fatalf("a failing test passed through the executor: %v\n%s", o.status, o.output)
	}
	if log := p.log("test"); !strings.Contains(log, "panicked") || !strings.Contains(log, "# smelt: ran on ") {
		t.Errorf("the failing test's log lacks its output:\n%s", log)
	}
	if !strings.Contains(o.output, "test") {
		t.Errorf("the failure is not reported:\n%s", o.output)
	}

	// A compile error in a fresh store: the deps step's fused builds, one
	// action, fail on the workspace's own code, which the step accepts
	// as a local run does; clippy fails with the error a local run gives.
	finish := func(p *project, o outcome, step string) string {
		for _, ev := range o.events {
			if ev["event"] == "finish" && ev["step"] == step {
				e, _ := ev["error"].(string)
				return strings.ReplaceAll(e, p.dir, "PROJECT")
			}
		}
		return ""
	}
	var runs [2]outcome
	var logs [2]string
	for i, args := range [][]string{{"check"}, {"check", "--executor", eng.URL}} {
		b := newProject(t, "sequential")
		b.replace("src/main.rs", "fn main() {", "fn main() {\n    let _x: u8 = \"no\";")
		runs[i], logs[i] = b.smelt(args...), b.log("deps")
		runs[i].output = finish(b, runs[i], "clippy")
	}
	for i, o := range runs {
		if o.status["deps"] != "built" || o.status["clippy"] != "failed" || !strings.Contains(o.output, "mismatched types") {
			t.Errorf("run %d: statuses %v, clippy's error %q", i, o.status, o.output)
		}
		if n := strings.Count(logs[i], "only the workspace's own code failed"); n != 2 {
			t.Errorf("run %d: the deps step accepted %d own-code failures, want 2:\n%s", i, n, logs[i])
		}
	}
	if runs[0].output != runs[1].output {
		t.Errorf("clippy's error through the executor:\n%s\nlocally:\n%s", runs[1].output, runs[0].output)
	}
}

// The workspace fixture: independent steps (clippy, test, doc, fmt after
// deps) run on both workers at overlapping times.
func TestExecutorWorkspaceParallel(t *testing.T) {
	needCargo(t)
	eng, ws := engineWithWorkers(t)
	p := newProject(t, "workspace")
	noSandbox(t, p.mustSmelt("check", "deps", "--executor", eng.URL))
	o := p.mustSmelt("check", "-j", "4", "--executor", eng.URL)
	wantStatus(t, o, map[string]string{"deps": "cached", "clippy": "built", "test": "built", "fmt": "built", "doc": "built", "package": "built"})
	acts := allActions(t, ws)
	ran := map[string]string{}
	for _, a := range acts {
		ran[a.step] = a.worker
	}
	for _, step := range []string{"deps", "clippy", "test", "fmt", "doc", "package"} {
		if ran[step] == "" {
			t.Errorf("no worker ran step %s", step)
		}
	}
	overlap := false
	for _, a := range acts {
		for _, b := range acts {
			if a.worker != b.worker && a.step != "deps" && b.step != "deps" && a.start.Before(b.end) && b.start.Before(a.end) {
				overlap = true
			}
		}
	}
	if !overlap {
		t.Errorf("no two steps ran on the two workers at once: %+v", acts)
	}
	p.mustSmelt("build", "app", "--executor", eng.URL)
	if got := p.runResult("app"); got != "1 hello from build.rs: workspace" {
		t.Fatalf("result/bin/app printed %q", got)
	}
	// The same keys as a local run's: the artifacts were the same.
	local := newProject(t, "workspace")
	local.mustSmelt("check", "deps")
	local.mustSmelt("check")
	local.mustSmelt("build", "app")
	kl, kr := stepKeys(t, local.store), stepKeys(t, p.store)
	for step, k := range kl {
		if kr[step] != k {
			t.Errorf("step %s: key %.16s locally, %.16s through the executor", step, k, kr[step])
		}
	}
	if readAbs(t, filepath.Join(local.dir, "result", "bin", "app")) != readAbs(t, filepath.Join(p.dir, "result", "bin", "app")) {
		t.Errorf("the app binary differs from a local run's")
	}
}

// A worker killed during a step: the engine queues the action again (its
// session expires) and the build finishes correctly.
func TestExecutorWorkerKilled(t *testing.T) {
	needCargo(t)
	eng, ws := engineWithWorkers(t)
	p := newProject(t, "sequential")
	killed := make(chan *workerProc, 1)
	go func() {
		// The first worker to start an action dies.
		defer close(killed)
		for range 1200 {
			for _, w := range ws {
				b, _ := os.ReadFile(w.log)
				if bytes.Contains(b, []byte("start action=")) {
					w.cmd.Process.Signal(syscall.SIGKILL)
					killed <- w
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	o := p.mustSmelt("check", "deps", "--executor", eng.URL)
	w := <-killed
	if w == nil {
		t.Fatal("no worker started an action")
	}
	b, _ := os.ReadFile(w.log)
	m := regexp.MustCompile(`start action=(\S+)`).FindSubmatch(b)
	if bytes.Contains(b, []byte("done action="+string(m[1]))) {
		t.Fatalf("worker %s finished its action before it was killed:\n%s", w.name, b)
	}
	redone := false
	for _, o := range ws {
		ob, _ := os.ReadFile(o.log)
		redone = redone || o != w && bytes.Contains(ob, []byte("done action="+string(m[1])))
	}
	if !redone {
		t.Errorf("the killed worker's action %s did not run on the other worker", m[1])
	}
	noSandbox(t, o)
	wantStatus(t, o, map[string]string{"deps": "built"})
	if !strings.Contains(p.log("deps"), "# smelt: ran on ") {
		t.Errorf("the deps step did not run on a worker:\n%s", p.log("deps"))
	}
	o = p.mustSmelt("build", "--executor", eng.URL)
	if got := p.runResult("seq"); got != "double: 42" {
		t.Fatalf("result/bin/seq printed %q", got)
	}
}

// An executor that is down: one warning, and the steps run here.
func TestExecutorDown(t *testing.T) {
	p := newProject(t, "sequential")
	url := "grpc://127.0.0.1:" + strconv.Itoa(testsrv.FreePort(t))
	o := p.mustSmelt("check", "--executor", url)
	noSandbox(t, o)
	wantStatus(t, o, each("built", "deps", "clippy", "test", "crate"))
	if n := strings.Count(o.output, `"event":"warning"`); n != 1 || !strings.Contains(o.output, "steps run locally") {
		t.Errorf("want one warning that steps run locally, got %d:\n%s", n, o.output)
	}
	p.mustSmelt("build")
	if got := p.runResult("seq"); got != "double: 42" {
		t.Fatalf("result/bin/seq printed %q", got)
	}
}

// An engine whose workers lack what a step needs (here: no worker at
// all): the warning names the property, and the step runs locally
// instead of waiting in the engine's queue.
func TestExecutorUnoffered(t *testing.T) {
	needCargo(t)
	eng := testsrv.BuildGrid(t, testsrv.Options{MatchKeys: []string{worker.KeyRustc, worker.KeyTool}})
	p := newProject(t, "sequential")
	start := time.Now()
	o := p.mustSmelt("check", "clippy", "--executor", eng.URL)
	noSandbox(t, o)
	wantStatus(t, o, map[string]string{"deps": "built", "clippy": "built"})
	if !strings.Contains(o.output, "offers OSFamily=linux") || !strings.Contains(o.output, "tool=clippy") || !strings.Contains(o.output, "runs locally") {
		t.Errorf("the warning does not name the properties no worker offers:\n%s", o.output)
	}
	if d := time.Since(start); d > 2*time.Minute {
		t.Errorf("took %s: waited for the engine", d)
	}
}

// A measurement, not a test (SMELT_EXECUTOR_BENCH=N runs it N times):
// testdata/workspace checked from an empty store here and through the
// engine and two workers on this machine, alternating which goes first;
// it logs each run's wall time and each step's seconds.
func TestExecutorOverhead(t *testing.T) {
	reps, _ := strconv.Atoi(os.Getenv("SMELT_EXECUTOR_BENCH"))
	if reps < 1 {
		t.Skip("a measurement: set SMELT_EXECUTOR_BENCH=N to run it N times")
	}
	needCargo(t)
	eng, ws := engineWithWorkers(t)
	steps := func(o outcome) string {
		var parts []string
		for _, ev := range o.events {
			if ev["event"] == "finish" {
				parts = append(parts, fmt.Sprintf("%s %.2fs", ev["step"], ev["seconds"]))
			}
		}
		return strings.Join(parts, ", ")
	}
	for i := range reps {
		sides := []string{"local", "engine"}
		if i%2 == 1 {
			sides = []string{"engine", "local"}
		}
		for _, side := range sides {
			p := newProject(t, "workspace")
			// The benchmark's chain (bench/main.go's smeltTOML).
			p.write("smelt.toml", overheadTOML)
			args := []string{"check", "-j", "2"}
			// Source no earlier run had: no action cache hits but the
			// deps step's from the second repetition on.
			p.write("greet/src/lib.rs", p.read("greet/src/lib.rs")+fmt.Sprintf("\n// %s %d\n", side, i))
			if side == "engine" {
				args = append(args, "--executor", eng.URL)
			}
			start := time.Now()
			o := p.smelt(args...)
			t.Logf("rep %d %s: %.2fs (exit %d): %s", i, side, time.Since(start).Seconds(), o.code, steps(o))
			if side == "engine" {
				// Where each action's time went, as the client and the
				// workers saw it.
				for _, step := range []string{"deps", "clippy", "test", "crate"} {
					for _, line := range strings.Split(p.log(step), "\n") {
						if strings.HasPrefix(line, "# smelt: ") || strings.HasPrefix(line, "$ ") {
							t.Logf("  %s: %s", step, line)
						}
					}
				}
				for _, w := range ws {
					b, _ := os.ReadFile(w.log)
					for _, line := range strings.Split(string(b), "\n") {
						if strings.Contains(line, " done action=") {
							t.Logf("  %s: %s", w.name, line)
						}
					}
					os.WriteFile(w.log, nil, 0o644)
				}
			}
		}
	}
}

const overheadTOML = `[common]
profile = "release"

[step.deps]
kind = "deps"

[step.clippy]
kind = "clippy"
artifacts = "deps"
args = ["--all-targets"]

[step.test]
kind = "test"
artifacts = "clippy"

[step.crate]
kind = "package"
artifacts = "test"

[outputs]
default = "crate"
checks = ["clippy", "test", "crate"]
`
