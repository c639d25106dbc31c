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
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// isolation is how commands are started here, probed once per process.
type isolation struct {
	flags uintptr // clone flags; 0: no PID namespace
	user  bool    // through a user namespace (not root)
	note  string  // why there is no PID namespace, for the logs
}

var (
	isoOnce sync.Once
	iso     isolation
)

// probeIsolation finds the first way to start a process in a PID namespace
// of its own that the kernel allows: plainly (root, CAP_SYS_ADMIN), then
// through a user namespace mapping only the caller's ids. The probe execs a
// path that does not exist: if the clone succeeds, exec reports ENOENT.
func probeIsolation() isolation {
	isoOnce.Do(func() {
		var last error
		for _, c := range []isolation{{flags: syscall.CLONE_NEWPID}, {flags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID, user: true}} {
			attr := c.sysProcAttr()
			p, err := os.StartProcess("/nonexistent/smelt-probe", []string{"probe"}, &os.ProcAttr{Sys: attr})
			if p != nil {
				p.Kill()
				p.Wait()
			}
			if errors.Is(err, syscall.ENOENT) {
				iso = c
				return
			}
			last = err
		}
		iso = isolation{note: fmt.Sprintf("no PID namespace here (%v): a process that leaves cargo's process group may outlive a killed smelt; the next run kills it before reusing the directory", errors.Unwrap(last))}
	})
	return iso
}

// sysProcAttr: a process group of its own (smelt signals the group, the
// terminal's Ctrl-C reaches only smelt), killed when smelt dies.
func (c isolation) sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: c.flags}
	if c.user {
		uid, gid := os.Getuid(), os.Getgid()
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
	}
	return a
}

// supervise prepares cmd so that nothing it starts outlives smelt, passing
// it the working directory's inherited lock (procs) as fd 3; run it with
// runSupervised.
func supervise(cmd *exec.Cmd, procs *os.File) {
	c := probeIsolation()
	cmd.SysProcAttr = c.sysProcAttr()
	if procs != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, procs)
	}
	if c.flags != 0 {
		// The command is its namespace's init: killing it kills all of
		// its processes at once. (An init ignores the signals it has no
		// handler for, such as cargo's SIGINT.)
		cmd.Cancel = func() error { return cmd.Process.Kill() }
	} else {
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	}
	cmd.WaitDelay = 10 * time.Second
}

// runSupervised runs a command prepared by supervise. PR_SET_PDEATHSIG
// fires when the thread that forked the child exits, not the process: the
// thread stays locked to this goroutine, and so alive, until the child has
// exited.
func runSupervised(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Run()
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
