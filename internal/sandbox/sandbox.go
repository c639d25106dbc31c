// Package sandbox runs a command in a private mount namespace in which the
// directories it builds in appear at fixed paths under Root, the same on
// every machine, for every user and for every store. What cargo and rustc
// record (a vendored crate's fingerprint, which is its absolute path;
// dep-info; paths in crate metadata and binaries) then no longer depends on
// where the store lies, so two stores building the same step get the same
// bytes.
//
// Root lies in Parent, a directory every Linux system has. Inside the
// namespace a tmpfs covers Parent; whatever Parent held is bound back into
// it, so only Root is new. Nothing changes outside the namespace: many
// stores and runs on one machine each see their own Root.
//
// The namespace is made by re-executing the running binary (see init): Go
// cannot mount in a new namespace after fork and before exec of the
// command itself.
package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	// Parent is the existing directory a tmpfs covers inside the
	// namespace: root's on every distribution (FHS), and empty on most
	// machines, so there is little to bind back.
	Parent = "/srv"
	// Root is where a sandboxed command finds its directories.
	Root = Parent + "/smelt"
)

// childArg, as the first argument, makes the binary the sandbox's setup
// process (see init).
const childArg = "__smelt_sandbox"

// Mount shows directory Source at Target (under Root) inside the sandbox.
type Mount struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

type spec struct {
	Parent string  `json:"parent"` // what the tmpfs covers (Parent but in tests)
	Dir    string  `json:"dir"`    // working directory inside the sandbox
	Mounts []Mount `json:"mounts"`
	Probe  bool    `json:"probe,omitempty"` // set up, check Dir, exit
	// The mount namespace of the process that asked: the setup refuses to
	// mount anything in it (a stray `smelt __smelt_sandbox` run by hand).
	CallerNS string `json:"caller_ns"`
}

func mountNS() string {
	ns, _ := os.Readlink("/proc/self/ns/mnt")
	return ns
}

func init() {
	if len(os.Args) > 2 && os.Args[1] == childArg {
		// Ambient capabilities are per thread: the thread that clears
		// them must be the one that calls execve.
		runtime.LockOSThread()
		err := child(os.Args[2], os.Args[3:])
		fmt.Fprintf(os.Stderr, "smelt sandbox: %v\n", err)
		os.Exit(127)
	}
}

// Wrap makes cmd (made by exec.Command, its SysProcAttr already set up as
// the caller wants it) run its program inside a sandbox with mounts, in the
// directory dir of the sandbox. Call it last: it adds to SysProcAttr.
func Wrap(cmd *exec.Cmd, dir string, mounts []Mount) error {
	return wrap(cmd, Parent, dir, mounts)
}

// self is the running binary, even if its file was replaced or removed
// since it started (a rebuild, `go run`'s temporary binary).
const self = "/proc/self/exe"

func wrap(cmd *exec.Cmd, parent, dir string, mounts []Mount) error {
	b, err := json.Marshal(spec{Parent: parent, Dir: dir, Mounts: mounts, CallerNS: mountNS()})
	if err != nil {
		return err
	}
	cmd.Args = append([]string{self, childArg, string(b), cmd.Path}, cmd.Args...)
	cmd.Path = self
	attrs(cmd)
	return nil
}

// attrs asks for the new namespaces: a mount namespace, and where smelt is
// not root a user namespace too, in which the user keeps their own ids
// (tests do not run as a root they are not) and the setup process keeps
// CAP_SYS_ADMIN only until it starts the command.
func attrs(cmd *exec.Cmd) {
	a := cmd.SysProcAttr
	if a == nil {
		a = &syscall.SysProcAttr{}
		cmd.SysProcAttr = a
	}
	a.Cloneflags |= syscall.CLONE_NEWNS
	if uid := os.Geteuid(); uid != 0 {
		gid := os.Getegid()
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		a.GidMappingsEnableSetgroups = false
		a.AmbientCaps = append(a.AmbientCaps, unix.CAP_SYS_ADMIN)
	}
}

var (
	probeOnce sync.Once
	probeErr  error
)

// Available reports, once per process, whether commands can run in a
// sandbox here, and if not why.
func Available() error {
	probeOnce.Do(func() { probeErr = probe() })
	return probeErr
}

func probe() error {
	if err := safeParent(Parent); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "smelt-sandbox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, _ := json.Marshal(spec{Parent: Parent, Dir: Root + "/probe", Mounts: []Mount{{Source: dir, Target: Root + "/probe"}}, Probe: true, CallerNS: mountNS()})
	cmd := exec.Command(self, childArg, string(b))
	attrs(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("cannot make a private mount namespace (%s)", msg)
	}
	return nil
}

// safeParent refuses a Parent that another user could replace: removing or
// renaming a directory detaches the mounts on it in every namespace, and
// the fixed paths would then lead into whatever they put there.
func safeParent(parent string) error {
	real, err := filepath.EvalSymlinks(parent)
	if err != nil {
		return fmt.Errorf("%s: %w", parent, err)
	}
	uid := uint32(os.Geteuid())
	for p := real; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if p == real && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("%s is not a directory", p)
		}
		if st.Uid != 0 && st.Uid != uid {
			return fmt.Errorf("%s belongs to another user (uid %d)", p, st.Uid)
		}
		if st.Mode&0o022 != 0 && !(p != real && st.Mode&unix.S_ISVTX != 0) {
			return fmt.Errorf("%s is writable by others", p)
		}
		if p == "/" {
			return nil
		}
	}
}

// child sets the sandbox up, in the new namespace, and runs argv
// (program path, then argv[0] and the arguments) in it.
func child(specJSON string, argv []string) error {
	var s spec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		return fmt.Errorf("read the spec: %w", err)
	}
	if ns := mountNS(); ns == "" || s.CallerNS == "" || ns == s.CallerNS {
		return fmt.Errorf("not in a mount namespace of its own: nothing mounted")
	}
	// Nothing mounted here may propagate back to the parent namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	// Parent's own entries, reached through a descriptor opened before the
	// tmpfs covers them.
	fd, err := unix.Open(s.Parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.Parent, err)
	}
	entries, err := os.ReadDir(s.Parent)
	if err != nil {
		return err
	}
	if err := unix.Mount("smelt", s.Parent, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return fmt.Errorf("mount a tmpfs on %s: %w", s.Parent, err)
	}
	for _, e := range entries {
		src := "/proc/self/fd/" + strconv.Itoa(fd) + "/" + e.Name()
		dst := filepath.Join(s.Parent, e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(target, dst)
			}
			if err != nil {
				return fmt.Errorf("keep %s: %w", dst, err)
			}
			continue
		}
		if err := mountPoint(dst, e.IsDir()); err != nil {
			return err
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("keep %s: %w", dst, err)
		}
	}
	unix.Close(fd)
	for _, m := range s.Mounts {
		if err := mountPoint(m.Target, true); err != nil {
			return err
		}
		if err := unix.Mount(m.Source, m.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.Source, m.Target, err)
		}
	}
	// As the first process of a PID namespace of its own (see run's
	// process supervision), it gives the command a /proc of that
	// namespace: the host's would name other processes by the pids the
	// command sees (cargo-tarpaulin reads /proc/PID/maps of the tests it
	// starts, and found no code addresses). Best effort: a /proc that
	// cannot be mounted leaves the host's, as without a namespace.
	if os.Getpid() == 1 {
		unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}
	if err := os.Chdir(s.Dir); err != nil {
		return err
	}
	if s.Probe {
		os.Exit(0)
	}
	if len(argv) < 2 {
		return fmt.Errorf("no command")
	}
	// The command gets no capabilities from the setup.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	// PWD is what a shell (a user's command step) reports as its directory.
	env := []string{"PWD=" + s.Dir}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PWD=") {
			env = append(env, kv)
		}
	}
	err = unix.Exec(argv[0], argv[1:], env)
	return fmt.Errorf("run %s: %w", argv[0], err)
}

func mountPoint(p string, dir bool) error {
	if dir {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return f.Close()
}

// portableArg, as the second argument after Self, marks a sandboxed
// command meant for another machine (see PortableArgs).
const portableArg = "__smelt_sandbox_at"

// Self is the program a portable command names first: on the machine that
// runs it, the smelt that reads it.
const Self = self

type portable struct {
	Step   string  `json:"step,omitempty"` // for the runner's logs only
	Dir    string  `json:"dir"`
	Mounts []Mount `json:"mounts"`
}

// PortableArgs is a command line that runs argv (program name first) in a
// sandbox whose mount sources are relative to the directory it starts in
// (a Remote Execution action's input root), in the sandbox's directory dir.
// Only a smelt worker runs it (ParsePortable): the namespace must be made
// by the process that starts it. step names it in the runner's logs.
func PortableArgs(step, dir string, mounts []Mount, argv []string) ([]string, error) {
	for _, m := range mounts {
		if filepath.IsAbs(m.Source) || !filepath.IsLocal(m.Source) {
			return nil, fmt.Errorf("sandbox: mount source %q is not relative", m.Source)
		}
	}
	b, err := json.Marshal(portable{Step: step, Dir: dir, Mounts: mounts})
	if err != nil {
		return nil, err
	}
	return append([]string{Self, portableArg, string(b)}, argv...), nil
}

// ParsePortable reads a command line made by PortableArgs, resolving its
// mount sources under root; ok is false for any other command line.
func ParsePortable(args []string, root string) (dir string, mounts []Mount, argv []string, ok bool, err error) {
	if len(args) < 4 || args[0] != Self || args[1] != portableArg {
		return "", nil, nil, false, nil
	}
	var p portable
	if err := json.Unmarshal([]byte(args[2]), &p); err != nil {
		return "", nil, nil, true, fmt.Errorf("sandbox: read the portable spec: %w", err)
	}
	for _, m := range p.Mounts {
		if filepath.IsAbs(m.Source) || !filepath.IsLocal(m.Source) || !strings.HasPrefix(m.Target, Root+"/") {
			return "", nil, nil, true, fmt.Errorf("sandbox: mount %s on %s leaves the input root or the sandbox", m.Source, m.Target)
		}
		mounts = append(mounts, Mount{Source: filepath.Join(root, m.Source), Target: m.Target})
	}
	return p.Dir, mounts, args[3:], true, nil
}
