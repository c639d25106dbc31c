package main

// Real remote cache servers for the end-to-end tests, started on loopback
// in temporary directories and stopped when their test ends (the same
// recipes as internal/remote's tests). A test whose server is not
// installed is skipped with the install step; with SMELT_REQUIRE_TOOLS=1,
// as in CI, it fails.

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func missingServer(t *testing.T, what, install string) {
	t.Helper()
	if os.Getenv("SMELT_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is not installed (SMELT_REQUIRE_TOOLS=1): %s", what, install)
	}
	t.Skipf("%s is not installed: %s (or run .ci/run)", what, install)
}

func loopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serveCmd starts cmd in its own process group, waits until addr accepts
// connections, and stops the group when the test ends.
func serveCmd(t *testing.T, cmd *exec.Cmd, addr, logPath string, wait time.Duration) {
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

// nginxDAV serves a WebDAV directory and returns its URL.
func nginxDAV(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		missingServer(t, "nginx", "apt-get install nginx libnginx-mod-http-dav-ext")
	}
	dir := t.TempDir()
	for _, d := range []string{"www/dav", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := loopbackPort(t)
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
    root %[2]s/www;
    client_max_body_size 0;
    location /dav/ { dav_methods PUT DELETE MKCOL; create_full_put_path on; }
  }
}
`, user, dir, port)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	serveCmd(t, exec.Command(bin, "-p", dir, "-c", confPath, "-g", "daemon off;"), addr, filepath.Join(dir, "out.log"), 10*time.Second)
	return "http://" + addr + "/dav/smelt"
}

func versitygw() string {
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

// s3Server runs versitygw on a posix directory with a bucket "team", and
// points this process's AWS variables at it as its root user (set them
// before newProject, which copies the environment). It returns the URL
// of a prefix in the bucket and a function that gives a read-only user
// (a pull request's credentials) and returns its variables.
func s3Server(t *testing.T) (string, func() []string) {
	t.Helper()
	bin := versitygw()
	if bin == "" {
		missingServer(t, "versitygw", "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
	}
	dir := t.TempDir()
	for _, d := range []string{"gw", "iam"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", loopbackPort(t))
	serveCmd(t, exec.Command(bin, "--access", "smeltkey", "--secret", "smeltsecret", "--port", addr,
		"--iam-dir", filepath.Join(dir, "iam"), "--quiet", "posix", filepath.Join(dir, "gw")), addr, filepath.Join(dir, "out.log"), 15*time.Second)
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
	cfg, err := awsconfig.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("team")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	readOnly := func() []string {
		out, err := exec.Command(bin, "admin", "-a", "smeltkey", "-s", "smeltsecret", "--er", "http://"+addr,
			"create-user", "--access", "ro", "--secret", "rosecret", "--role", "user").CombinedOutput()
		if err != nil {
			t.Fatalf("versitygw admin create-user: %v\n%s", err, out)
		}
		policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["ro"]},` +
			`"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::team","arn:aws:s3:::team/*"]}]}`
		if _, err := client.PutBucketPolicy(t.Context(), &s3.PutBucketPolicyInput{Bucket: aws.String("team"), Policy: aws.String(policy)}); err != nil {
			t.Fatalf("put bucket policy: %v", err)
		}
		return []string{"AWS_ACCESS_KEY_ID=ro", "AWS_SECRET_ACCESS_KEY=rosecret"}
	}
	return "s3://team/smelt", readOnly
}

func bgdPath() string {
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

// buildGridCache runs BuildGrid's CAS, ByteStream and action cache in
// memory, on instance "main", and returns its URL.
func buildGridCache(t *testing.T) string {
	t.Helper()
	bgd := bgdPath()
	if bgd == "" {
		missingServer(t, "BuildGrid 0.9.1", "python3.13 -m venv ~/.cache/smelt-ci/buildgrid-0.9.1 && ~/.cache/smelt-ci/buildgrid-0.9.1/bin/pip install buildgrid==0.9.1")
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", loopbackPort(t))
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
	serveCmd(t, exec.Command(bgd, "server", "start", confPath), addr, filepath.Join(dir, "out.log"), 60*time.Second)
	return "grpc://" + addr + "/main"
}

// garbageHTTP answers every request with 200 and bytes of no format.
func garbageHTTP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("garbage\x00\xff\r\n", 64)))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String() + "/cache"
}

// garbageTCP answers every connection with bytes of no protocol.
func garbageTCP(t *testing.T) string {
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
