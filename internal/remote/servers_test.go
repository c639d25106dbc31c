package remote

// Real servers for the integration tests, each started on loopback in a
// temporary directory and stopped when its test ends. A test whose server
// is not installed is skipped with a message naming the install step
// (.ci/run installs all three); with SMELT_REQUIRE_TOOLS=1, as in CI, it
// fails instead.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func missing(t *testing.T, what, install string) {
	t.Helper()
	if os.Getenv("SMELT_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is not installed (SMELT_REQUIRE_TOOLS=1): %s", what, install)
	}
	t.Skipf("%s is not installed: %s (or run .ci/run)", what, install)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serve starts cmd in its own process group, waits until addr accepts
// connections, and stops the group when the test ends.
func serve(t *testing.T, cmd *exec.Cmd, addr, logPath string, wait time.Duration) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
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

// startNginx serves a WebDAV root: /dav/ with create_full_put_path, /plain/
// without it (PUT then needs MKCOL), /ro/ read-only, /auth/ only with the
// bearer token "s3cret". It returns the base URL and the root.
func startNginx(t *testing.T) (string, string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		missing(t, "nginx", "apt-get install nginx libnginx-mod-http-dav-ext")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "www")
	for _, d := range []string{"www/dav", "www/plain", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers write into the test's private temp dir
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
error_log %[2]s/error.log;
pid %[2]s/nginx.pid;
events { worker_connections 256; }
http {
  access_log %[2]s/access.log;
  client_body_temp_path %[2]s/tmp/body;
  proxy_temp_path %[2]s/tmp/proxy;
  fastcgi_temp_path %[2]s/tmp/fastcgi;
  uwsgi_temp_path %[2]s/tmp/uwsgi;
  scgi_temp_path %[2]s/tmp/scgi;
  server {
    listen 127.0.0.1:%[3]d;
    root %[4]s;
    client_max_body_size 0;
    location /dav/ { dav_methods PUT DELETE MKCOL; create_full_put_path on; }
    location /plain/ { dav_methods PUT DELETE MKCOL; }
    location /ro/ { limit_except GET HEAD { deny all; } }
    location /auth/ {
      if ($http_authorization != "Bearer s3cret") { return 401; }
      dav_methods PUT DELETE MKCOL;
      create_full_put_path on;
    }
  }
}
`, user, dir, port, root)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	serve(t, exec.Command(bin, "-p", dir, "-c", confPath, "-g", "daemon off;"), addr, filepath.Join(dir, "out.log"), 10*time.Second)
	return "http://" + addr, root
}

func versitygwPath() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	home, _ := os.UserHomeDir()
	gobin := os.Getenv("GOBIN")
	if gobin == "" {
		gobin = filepath.Join(home, "go", "bin")
	}
	p := filepath.Join(gobin, "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// startS3 runs versitygw on a posix directory, with its internal IAM, and
// points the AWS variables at it as its root user; it returns the
// directory that holds the buckets.
func startS3(t *testing.T) string {
	t.Helper()
	bin := versitygwPath()
	if bin == "" {
		missing(t, "versitygw", "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "gw")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	iam := filepath.Join(dir, "iam")
	if err := os.MkdirAll(iam, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--access", "smeltkey", "--secret", "smeltsecret", "--port", addr, "--iam-dir", iam, "--quiet", "posix", root)
	serve(t, cmd, addr, filepath.Join(dir, "out.log"), 15*time.Second)
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "smeltkey",
		"AWS_SECRET_ACCESS_KEY":       "smeltsecret",
		"AWS_REGION":                  "us-east-1",
		"AWS_ENDPOINT_URL_S3":         "http://" + addr,
		"AWS_CONFIG_FILE":             filepath.Join(dir, "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_PROFILE":                 "",
		"AWS_ENDPOINT_URL":            "",
	} {
		t.Setenv(k, v)
	}
	return root
}

func buildGridBgd() string {
	if p := os.Getenv("SMELT_BGD"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	p := filepath.Join(home, ".cache", "smelt-ci", "buildgrid-0.9.1", "bin", "bgd")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath("bgd"); err == nil {
		return p
	}
	return ""
}

// startBuildGrid runs BuildGrid's CAS, ByteStream and action cache in
// memory, on instance "main"; it returns HOST:PORT.
func startBuildGrid(t *testing.T) string {
	t.Helper()
	bgd := buildGridBgd()
	if bgd == "" {
		missing(t, "BuildGrid 0.9.1", "python3.13 -m venv ~/.cache/smelt-ci/buildgrid-0.9.1 && ~/.cache/smelt-ci/buildgrid-0.9.1/bin/pip install buildgrid==0.9.1")
	}
	dir := t.TempDir()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := strings.ReplaceAll(`server:
  - !channel
    address: "ADDR"
    insecure-mode: true
authorization:
  method: none
storages:
  - !lru-storage &data
    size: 256M
caches:
  - !lru-action-cache &ac
    storage: *data
    max-cached-refs: 100000
    allow-updates: true
instances:
  - name: "main"
    services:
      - !action-cache
        cache: *ac
      - !cas
        storage: *data
      - !bytestream
        storage: *data
`, "ADDR", addr)
	confPath := filepath.Join(dir, "bgd.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	serve(t, exec.Command(bgd, "server", "start", confPath), addr, filepath.Join(dir, "out.log"), 60*time.Second)
	return addr
}

// hungServer accepts connections and never answers: a remote that is up
// but stuck.
func hungServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// garbageServer answers every connection with bytes of no protocol.
func garbageServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(strings.Repeat("garbage\x00\xff\r\n", 64)))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}
