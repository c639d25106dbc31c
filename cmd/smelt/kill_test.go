package main

// Killed and concurrent runs: a SIGKILL never leaves a process that writes
// into a working directory the next run uses, and runs at once build each
// step once.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowMain is a main.rs whose compilation takes a second or two (constant
// evaluation, after rustc has read the source), so that a kill lands while
// rustc works on it.
const slowMain = `#![allow(long_running_const_eval)]
const SLOW: u64 = {
    let mut i = 0u64;
    let mut s = 0u64;
    while i < 400_000 {
        s = s.wrapping_add(i ^ (s >> 3));
        i += 1;
    }
    s
};

fn main() {
    println!("text: %s {}", SLOW %% 2);
}
`

// storeProcs lists the processes working under the store (their working
// directory or command line in it), but this test's own.
func storeProcs(t *testing.T, store string) map[int]string {
	t.Helper()
	store, err := filepath.EvalSymlinks(store)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || zombie(pid) {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cmd := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.HasPrefix(cwd, store) || strings.Contains(cmd, store) {
			out[pid] = cmd
		}
	}
	return out
}

func zombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // gone
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(rest, "Z") || strings.HasPrefix(rest, "X")
}

// A SIGKILL of smelt's process group in the middle of the package step,
// then at once an edit and a rerun: the rerun's binary prints the new
// source's text, and no process of the killed run outlives it. Before the
// fix cargo and rustc (in process groups of their own) lived on, and wrote
// the old source's binary into the working directory that the rerun then
// stored under the new source's key.
func TestKilledRunLeavesNothingBehind(t *testing.T) {
	p := newProject(t, "hello")
	p.write("src/main.rs", fmt.Sprintf(slowMain, "v0"))
	p.mustSmelt("build")
	for i, delay := range []time.Duration{200 * time.Millisecond, 800 * time.Millisecond, 1500 * time.Millisecond} {
		killed, rerun := fmt.Sprintf("killed-%d", i), fmt.Sprintf("rerun-%d", i)
		p.write("src/main.rs", fmt.Sprintf(slowMain, killed))
		cmd := exec.Command(smeltBin, "build", "-C", p.dir, "--store", p.store, "--json")
		cmd.Env = p.env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		events, err := cmd.StderrPipe() // where --json events go

		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(events)
		started := false
		var seen []string
		for !started && sc.Scan() {
			seen = append(seen, sc.Text())
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev["event"] == "start" && ev["step"] == "package" {
				started = true
			}
		}
		if !started {
			cmd.Wait()
			t.Fatalf("delay %v: the package step never started:\n%s", delay, strings.Join(seen, "\n"))
		}
		time.Sleep(delay)
		before := storeProcs(t, p.store)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		p.write("src/main.rs", fmt.Sprintf(slowMain, rerun))
		// The rerun starts at once, while anything left of the killed run
		// would still be running; its processes are watched meanwhile.
		done := make(chan outcome, 1)
		go func() { done <- p.smelt("build") }()
		time.Sleep(time.Second)
		var alive []string
		for pid, c := range before {
			if !zombie(pid) {
				alive = append(alive, fmt.Sprintf("%d %s", pid, c))
			}
		}
		if len(alive) > 0 {
			t.Errorf("delay %v: %d of the killed run's %d processes still ran 1s after it died:\n%s", delay, len(alive), len(before), strings.Join(alive, "\n"))
		}
		o := <-done
		if o.code != 0 {
			t.Fatalf("delay %v: rerun exited %d:\n%s", delay, o.code, o.output)
		}
		if got := p.runResult("hello"); got != "text: "+rerun+" 0" && got != "text: "+rerun+" 1" {
			t.Errorf("delay %v: after the kill, the rerun's binary printed %q, want the new source's %q", delay, got, rerun)
		}
	}
}

// Four `smelt check` at once after an edit, two on the project and two on
// a copy of it that shares its store (same inputs, so the same keys): each
// step that the edit changed is built by one of them; the others wait for
// it and report it cached (before, each built it again, one after the
// other). Runs of different projects wait on each other's keys while
// holding their own working directories: nothing deadlocks.
func TestConcurrentRunsBuildOnce(t *testing.T) {
	p := newProject(t, "hello")
	p.mustSmelt("check")
	p.replace("src/lib.rs", "42", "43")
	other := &project{t: t, dir: fixture(t, "hello"), store: p.store, env: p.env}
	other.replace("src/lib.rs", "42", "43")
	const runs = 4
	results := make(chan outcome, runs)
	for i := range runs {
		q := p
		if i%2 == 1 {
			q = other
		}
		go func() { results <- q.smelt("check") }()
	}
	built := map[string]int{}
	for range runs {
		o := <-results
		if o.code != 0 {
			t.Fatalf("concurrent smelt check exited %d:\n%s", o.code, o.output)
		}
		for _, s := range allSteps {
			switch o.status[s] {
			case "built":
				built[s]++
			case "cached":
			default:
				t.Errorf("step %s: status %q\n%s", s, o.status[s], o.output)
			}
		}
	}
	for _, s := range allSteps {
		want := 1
		if s == "deps" {
			want = 0 // an edit of lib.rs leaves the dependencies alone
		}
		if built[s] != want {
			t.Errorf("step %s built %d times by %d runs at once, want %d", s, built[s], runs, want)
		}
	}
	for _, q := range []*project{p, other} {
		q.mustSmelt("build")
		if got := q.runResult("hello"); got != "answer: 43" {
			t.Fatalf("%s: result/bin/hello printed %q, want answer: 43", q.dir, got)
		}
	}
}
