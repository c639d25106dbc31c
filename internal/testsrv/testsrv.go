// Package testsrv starts, for tests, a BuildGrid 0.9.1 Remote Execution
// engine on loopback: a private PostgreSQL for its scheduler (initdb in a
// temporary directory, as the postgres user when the test runs as root),
// its tables (bgd migrate apply), and bgd with CAS, ByteStream, action
// cache, Execution, Operations and Bots on one instance. Everything is
// stopped, and its files removed, when the test ends.
//
// A test whose tools are missing is skipped with the install step
// (.ci/run installs them); with SMELT_REQUIRE_TOOLS=1, as in CI, it fails.
package testsrv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Missing skips the test (fails it under SMELT_REQUIRE_TOOLS=1): what is
// not installed, and how to install it.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	if os.Getenv("SMELT_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is not installed (SMELT_REQUIRE_TOOLS=1): %s", what, install)
	}
	t.Skipf("%s is not installed: %s (or run .ci/run)", what, install)
}

// FreePort is a loopback TCP port nobody listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Venv is where .ci/run installs BuildGrid (SMELT_BGD_VENV overrides).
func Venv() string {
	if v := os.Getenv("SMELT_BGD_VENV"); v != "" {
		return v
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "smelt-ci", "buildgrid-0.9.1")
}

// Bgd is BuildGrid's command, "" when not installed.
func Bgd() string {
	if p := os.Getenv("SMELT_BGD"); p != "" {
		return p
	}
	if p := filepath.Join(Venv(), "bin", "bgd"); isExec(p) {
		return p
	}
	if p, err := exec.LookPath("bgd"); err == nil {
		return p
	}
	return ""
}

// makeVenv creates the venv as .ci/run does (Python 3.13 from pyenv, else
// python3.13 on PATH; pip install buildgrid==0.9.1), under a lock so that
// test packages running at once make it once; it returns bgd.
func makeVenv(t testing.TB) string {
	t.Helper()
	install := "python3.13 -m venv " + Venv() + " && " + Venv() + "/bin/pip install buildgrid==0.9.1"
	py := ""
	if root, err := exec.Command("pyenv", "root").Output(); err == nil {
		ms, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(root)), "versions", "3.13*", "bin", "python"))
		if len(ms) > 0 {
			py = ms[len(ms)-1]
		}
	}
	if py == "" {
		py, _ = exec.LookPath("python3.13")
	}
	if py == "" {
		Missing(t, "BuildGrid 0.9.1 (and Python 3.13 to install it)", install)
	}
	if err := os.MkdirAll(filepath.Dir(Venv()), 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(Venv()+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	bgd := filepath.Join(Venv(), "bin", "bgd")
	if isExec(bgd) { // made while this test waited
		return bgd
	}
	t.Logf("installing BuildGrid 0.9.1 into %s", Venv())
	os.RemoveAll(Venv())
	for _, c := range [][]string{{py, "-m", "venv", Venv()}, {filepath.Join(Venv(), "bin", "pip"), "install", "-q", "buildgrid==0.9.1"}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			os.RemoveAll(Venv())
			t.Fatalf("%s: %v\n%s\n(install it by hand: %s)", strings.Join(c, " "), err, out, install)
		}
	}
	return bgd
}

func isExec(p string) bool {
	info, err := os.Stat(p)
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}

// pgBin finds a PostgreSQL program: on PATH, else in Debian's
// /usr/lib/postgresql/VERSION/bin (not on PATH there), newest first.
func pgBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExec(p) {
			return p
		}
	}
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Postgres runs a private PostgreSQL on loopback and returns the URL of
// an empty database "bgd" owned by user "bgd" (trust authentication).
func Postgres(t testing.TB) string {
	t.Helper()
	initdb, pgctl, psql := pgBin("initdb"), pgBin("pg_ctl"), pgBin("psql")
	if initdb == "" || pgctl == "" || psql == "" {
		Missing(t, "PostgreSQL", "apt-get install postgresql")
	}
	// PostgreSQL refuses to run as root: as root, its files belong to the
	// postgres user, in a directory of their own (t.TempDir's parents
	// are closed to other users).
	var as *user.User
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			Missing(t, "the postgres user", "apt-get install postgresql")
		}
		as = u
	}
	dir, err := os.MkdirTemp("", "smelt-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if as != nil {
		uid, _ := strconv.Atoi(as.Uid)
		gid, _ := strconv.Atoi(as.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	cmd := func(name string, args ...string) *exec.Cmd {
		if as != nil {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		}
		return exec.Command(name, args...)
	}
	runOK := func(c *exec.Cmd) {
		t.Helper()
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c.Args, " "), err, out)
		}
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	runOK(cmd("mkdir", sock))
	runOK(cmd(initdb, "-D", data, "-U", "bgd", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"))
	port := FreePort(t)
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off", port, sock)
	runOK(cmd(pgctl, "-D", data, "-l", filepath.Join(dir, "pg.log"), "-w", "-t", "60", "-o", opts, "start"))
	t.Cleanup(func() {
		c := cmd(pgctl, "-D", data, "-m", "immediate", "-w", "stop")
		if out, err := c.CombinedOutput(); err != nil {
			t.Logf("stop PostgreSQL: %v\n%s", err, out)
		}
	})
	runOK(cmd(psql, "-h", sock, "-p", strconv.Itoa(port), "-U", "bgd", "-d", "postgres", "-q", "-c", "CREATE DATABASE bgd OWNER bgd;"))
	return fmt.Sprintf("postgresql://bgd@127.0.0.1:%d/bgd", port)
}

// Options of an engine.
type Options struct {
	// Instance name ("" is the default instance).
	Instance string
	// MatchKeys are the platform property keys jobs are matched on,
	// besides OSFamily and ISA (BuildGrid's own).
	MatchKeys []string
	// QueueTimeout fails a job that no worker took within it (default
	// 30 min): BuildGrid's only answer to a job no worker can serve.
	QueueTimeout time.Duration
	// KeepaliveTimeout: a bot session not updated within it is reaped
	// and its job re-queued (default 60 s).
	KeepaliveTimeout time.Duration
	// CASSize bounds the in-memory CAS, as BuildGrid writes sizes
	// (default "512M"; the benchmark's ripgrep needs more: an LRU that
	// evicts a blob an action still needs fails the action).
	CASSize string
}

// Engine is a running BuildGrid.
type Engine struct {
	Addr string // HOST:PORT
	URL  string // grpc://HOST:PORT[/INSTANCE]
	Log  string // bgd's output
}

// BuildGrid starts an engine (and its PostgreSQL) for the test.
func BuildGrid(t testing.TB, o Options) Engine {
	t.Helper()
	bgd := Bgd()
	if bgd == "" {
		bgd = makeVenv(t)
	}
	if o.QueueTimeout == 0 {
		o.QueueTimeout = 30 * time.Minute
	}
	if o.KeepaliveTimeout == 0 {
		o.KeepaliveTimeout = 60 * time.Second
	}
	if o.CASSize == "" {
		o.CASSize = "512M"
	}
	start := time.Now()
	db := Postgres(t)
	pgUp := time.Since(start)
	dir := t.TempDir()
	if out, err := exec.Command(bgd, "migrate", "apply", db).CombinedOutput(); err != nil {
		t.Fatalf("bgd migrate apply: %v\n%s", err, out)
	}
	migrated := time.Since(start)
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	keys := "[" + strings.Join(o.MatchKeys, ", ") + "]"
	conf := strings.NewReplacer(
		"ADDR", addr, "DB", db, "INSTANCE", o.Instance, "KEYS", keys, "CASSIZE", o.CASSize,
		"QUEUE", fmt.Sprint(o.QueueTimeout.Seconds()),
		"KEEPALIVE", fmt.Sprint(int(o.KeepaliveTimeout.Seconds())),
		"PERIOD", fmt.Sprint(max(1, min(o.QueueTimeout.Seconds()/10, 60))),
	).Replace(config)
	confPath := filepath.Join(dir, "exec.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "bgd.log")
	serve(t, exec.Command(bgd, "server", "start", confPath), addr, log, 90*time.Second)
	t.Logf("BuildGrid on %s: PostgreSQL up after %s, tables after %s, serving after %s",
		addr, pgUp.Round(time.Millisecond), migrated.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	e := Engine{Addr: addr, URL: "grpc://" + addr, Log: log}
	if o.Instance != "" {
		e.URL += "/" + o.Instance
	}
	return e
}

// config is the recipe of /work/shared/DESIGN.md ("Remote execution on
// BuildGrid 0.9.1"), with the test's addresses and timeouts.
const config = `server:
  - !channel
    address: "ADDR"
    insecure-mode: true
authorization:
  method: none
connections:
  - !sql-connection &sql
    connection-string: DB
    pool-size: 5
    max-overflow: 10
    pool-timeout: 30
    pool-recycle: 3600
    pool-pre-ping: true
storages:
  - !lru-storage &cas
    size: CASSIZE
caches:
  - !lru-action-cache &ac
    storage: *cas
    max-cached-refs: 10000
    allow-updates: true
    cache-failed-actions: false
schedulers:
  - !sql-scheduler &sched
    sql: *sql
    storage: *cas
    action-cache: *ac
    property-set: !dynamic-property-set
      match-property-keys: KEYS
      wildcard-property-keys: [container-image]
    bot-session-keepalive-timeout: KEEPALIVE
    session-expiry-timer-interval: 1
    max-execution-timeout: 3600
    pruner-job-max-age: { hours: 1 }
    pruner-period: { minutes: 5 }
    queue-timeout-job-max-age: { seconds: QUEUE }
    queue-timeout-period: { seconds: PERIOD }
    assigners:
      - !priority-age-assigner
        count: 1
        interval: 0.05
        jitter-factor: 0.0
        priority-assignment-percentage: 100
        # Sampling lets a job's locality hint (smelt sends one per
        # project) prefer the worker that ran the project's last action,
        # which holds its inputs; without it, PostgreSQL's row order
        # sends each action to the other idle worker.
        bot-assignment-strategy: !assign-by-capacity
          sampling: !sampling-config
            sample-size: 16
instances:
  - name: "INSTANCE"
    services:
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
      - !action-cache
        cache: *ac
      - !execution
        scheduler: *sched
        operation-stream-keepalive-timeout: 30
thread-pool-size: 20
`

// serve starts cmd in its own process group, waits until addr accepts
// connections, and stops the group when the test ends.
func serve(t testing.TB, cmd *exec.Cmd, addr, logPath string, wait time.Duration) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited (%v) before listening on %s:\n%s", cmd.Path, err, addr, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s did not listen on %s within %s:\n%s", cmd.Path, addr, wait, log)
		}
	}
}
