package run

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smelt/internal/proc"
)

// A process that inherited a working directory's lock from a run that is
// gone (a leftover of a killed smelt) is killed by the next run, which then
// takes the directory; a live smelt holding the directory is waited for,
// never killed.
func TestLockWorkDirKillsLeftovers(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	w, err := lockWorkDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Another run while this one holds the directory: it waits.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := lockWorkDir(short, dir); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while the first is held: %v, want a wait until the deadline", err)
	}
	leftover := exec.CommandContext(ctx, "sleep", "60")
	supervise(leftover, w.procs)
	leftover.SysProcAttr.Pdeathsig = 0 // outlives this thread, as a leftover would
	if err := leftover.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- leftover.Wait() }()
	w.release() // the run is gone; the sleep still holds the inherited lock
	again, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	w2, err := lockWorkDir(again, dir)
	if err != nil {
		t.Fatalf("lock after the run ended: %v", err)
	}
	defer w2.release()
	if !strings.Contains(w2.note, "killed 1 processes") {
		t.Errorf("note %q, want the leftover killed", w2.note)
	}
	select {
	case err := <-exited:
		if err == nil {
			t.Error("the leftover exited normally, want it killed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the leftover still runs after the directory was locked again")
	}
}

// A command's descendants do not outlive it where it runs in a PID
// namespace of its own: a background process its shell leaves behind is
// killed with the namespace when the shell exits.
func TestSupervisedDescendantsEnd(t *testing.T) {
	if ok, note := proc.Isolated(); !ok {
		t.Skip(note)
	}
	w, err := lockWorkDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer w.release()
	cmd := exec.CommandContext(context.Background(), "sh", "-c", "sleep 60 & exit 0")
	supervise(cmd, w.procs)
	if err := runSupervised(cmd); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(holders(w.procs)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes %v that the command started still run after it ended", holders(w.procs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two holders of one key: the second waits until the first releases it;
// the lock file goes with the last release.
func TestLockKey(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	release, err := lockKey(ctx, dir, "k")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		r, err := lockKey(ctx, dir, "k")
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	select {
	case <-got:
		t.Fatal("a second holder took the key while the first held it")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case r := <-got:
		r()
	case <-time.After(5 * time.Second):
		t.Fatal("the second holder never took the key after the first released it")
	}
	if _, err := os.Stat(filepath.Join(dir, "key-k.lock")); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: %v", err)
	}
}
