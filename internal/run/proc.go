package run

// Process supervision: no process of a step outlives the smelt that started
// it, and no step reuses a working directory that a process of an earlier,
// killed run can still write.
//
// - Every command runs as the first process of a PID namespace of its own
//   (as root, or through a user namespace) with PR_SET_PDEATHSIG: when smelt
//   dies the kernel kills it, and with it every process of the namespace
//   (rustc, linkers, build scripts, tests), whatever they did to escape.
// - Independently, each working directory has a second lock file that every
//   process of the step inherits (not close-on-exec). A run that finds it
//   still held after taking the directory's own lock (which only smelt holds,
//   so that no other live smelt uses the directory) knows the holders are
//   leftovers of a killed run: it kills them and waits for them to go.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"smelt/internal/proc"
)

// supervise prepares cmd so that nothing it starts outlives smelt (see
// package proc), passing it the working directory's inherited lock (procs)
// as fd 3; run it with runSupervised.
func supervise(cmd *exec.Cmd, procs *os.File) {
	proc.Supervise(cmd, syscall.SIGINT)
	if procs != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, procs)
	}
}

// runSupervised runs a command prepared by supervise.
func runSupervised(cmd *exec.Cmd) error { return proc.Run(cmd) }

// isolationNote says why commands get no PID namespace here, for the logs
// ("" when they do).
func isolationNote() string {
	if ok, note := proc.Isolated(); !ok {
		return note + "; the next run kills what is left before reusing the directory"
	}
	return ""
}

// workLock holds a step's working directory.
type workLock struct {
	dir   string
	own   *os.File // .lock: held by this smelt only (close-on-exec)
	procs *os.File // .procs.lock: inherited by every process of the step
	note  string   // leftovers killed, for the step's log
}

func (w *workLock) release() {
	w.procs.Close()
	w.own.Close()
}

// lockWorkDir takes dir's two locks: its own (waiting while another smelt
// uses the directory), then the one the step's processes inherit. Once the
// first is held no other live smelt uses the directory, so whatever still
// holds the second is a leftover of a run that was killed: it is killed,
// and waited for, before the directory is reused.
func lockWorkDir(ctx context.Context, dir string) (*workLock, error) {
	own, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := flockWait(ctx, own, nil); err != nil {
		own.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	procs, err := os.OpenFile(filepath.Join(dir, ".procs.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		own.Close()
		return nil, err
	}
	killed := map[int]bool{}
	err = flockWait(ctx, procs, func() {
		for _, pid := range holders(procs) {
			if !killed[pid] && unix.Kill(pid, unix.SIGKILL) == nil {
				killed[pid] = true
			}
		}
	})
	if err != nil {
		procs.Close()
		own.Close()
		return nil, fmt.Errorf("wait for the processes of an earlier run in %s: %w", dir, err)
	}
	w := &workLock{dir: dir, own: own, procs: procs}
	if len(killed) > 0 {
		pids := make([]string, 0, len(killed))
		for pid := range killed {
			pids = append(pids, strconv.Itoa(pid))
		}
		slices.Sort(pids)
		w.note = fmt.Sprintf("killed %d processes left running in this directory by an earlier smelt that was killed (pids %s)", len(killed), strings.Join(pids, " "))
	}
	return w, nil
}

// flockWait takes an exclusive flock on f, polling so that a canceled run
// stops waiting; busy, when set, runs each time the lock is found taken.
func flockWait(ctx context.Context, f *os.File, busy func()) error {
	wait := 5 * time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		if busy != nil {
			busy()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// holders lists the other processes that have f open, from /proc.
func holders(f *os.File) []int {
	var want unix.Stat_t
	if unix.Fstat(int(f.Fd()), &want) != nil {
		return nil
	}
	procs, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join("/proc", p.Name(), "fd")
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			var st unix.Stat_t
			if unix.Stat(filepath.Join(dir, fd.Name()), &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// lockKey takes the store-wide lock of a step key, waiting while another
// process (or another step of this run) builds the same key, so that each
// key is built once. The lock file is removed on release; a waiter that
// then holds a removed file tries again.
func lockKey(ctx context.Context, dir, key string) (release func(), err error) {
	path := filepath.Join(dir, "key-"+key+".lock")
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, err
		}
		if err := flockWait(ctx, f, nil); err != nil {
			f.Close()
			return nil, err
		}
		var held, named unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(path, &named) == nil && held.Dev == named.Dev && held.Ino == named.Ino {
			return func() {
				os.Remove(path)
				f.Close()
			}, nil
		}
		f.Close()
	}
}
