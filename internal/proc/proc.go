// Package proc starts a command so that no process of it outlives the
// program that started it: the command is the first process of a PID
// namespace of its own (as root, or through a user namespace) with
// PR_SET_PDEATHSIG, so when the starter dies the kernel kills it, and with
// it every process of the namespace, whatever they did to escape.
//
// internal/run applies it to the commands of a step (cargo, the coverage
// tools), and the worker to its actions.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

type isolation struct {
	flags uintptr // clone flags; 0: no PID namespace
	user  bool    // through a user namespace (not root)
	note  string  // why there is no PID namespace
}

var (
	once sync.Once
	iso  isolation
)

// probe finds the first way to start a process in a PID namespace of its
// own that the kernel allows: plainly (root, CAP_SYS_ADMIN), then through a
// user namespace mapping only the caller's ids. It execs a path that does
// not exist: if the clone succeeds, exec reports ENOENT.
func probe() isolation {
	once.Do(func() {
		var last error
		for _, c := range []isolation{{flags: syscall.CLONE_NEWPID}, {flags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID, user: true}} {
			p, err := os.StartProcess("/nonexistent/smelt-probe", []string{"probe"}, &os.ProcAttr{Sys: c.sysProcAttr()})
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
		iso = isolation{note: fmt.Sprintf("no PID namespace here (%v): a process that leaves the command's process group may outlive it", errors.Unwrap(last))}
	})
	return iso
}

func (c isolation) sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: c.flags}
	if c.user {
		uid, gid := os.Getuid(), os.Getgid()
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
	}
	return a
}

// Isolated reports whether commands get a PID namespace here, and if not,
// why (for a log line).
func Isolated() (bool, string) {
	c := probe()
	return c.flags != 0, c.note
}

// Supervise prepares cmd (made with exec.CommandContext) so that canceling
// its context kills all of its processes, and its processes die with this
// one. Run it with Run. Without a PID namespace, canceling sends sig to the
// command's process group (SIGINT lets cargo clean up; what still runs
// after cmd.WaitDelay is killed).
func Supervise(cmd *exec.Cmd, sig syscall.Signal) {
	c := probe()
	cmd.SysProcAttr = c.sysProcAttr()
	if c.flags != 0 {
		// The command is its namespace's init: killing it kills all of
		// its processes at once. (An init ignores the signals it has no
		// handler for, such as cargo's SIGINT.)
		cmd.Cancel = func() error { return cmd.Process.Kill() }
	} else {
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, sig) }
	}
	cmd.WaitDelay = 10 * time.Second
}

// Run runs a command prepared by Supervise. PR_SET_PDEATHSIG fires when
// the thread that forked the child exits, not the process: the thread
// stays locked to this goroutine, and so alive, until the child exited.
func Run(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Run()
}
