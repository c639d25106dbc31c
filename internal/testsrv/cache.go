package testsrv

// Remote cache servers for tests (internal/remote's backends and smelt's
// end-to-end tests): nginx's WebDAV, versitygw (S3), BuildGrid's cache
// (no PostgreSQL: CAS and action cache in memory), and two that misbehave.

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Nginx serves a WebDAV root: /dav/ with create_full_put_path, /plain/
// without it (PUT then needs MKCOL), /ro/ read-only, /auth/ only with the
// bearer token "s3cret". It returns the base URL and the root.
func Nginx(t testing.TB) (string, string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		Missing(t, "nginx", "apt-get install nginx libnginx-mod-http-dav-ext")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "www")
	for _, d := range []string{"www/dav", "www/plain", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := FreePort(t)
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

// Versitygw is versitygw's command, "" when not installed.
func Versitygw() string {
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

// S3 runs versitygw on a posix directory, with its internal IAM, and
// points the AWS variables at it as its root user (t.Setenv: child
// processes started after it inherit them); it returns the directory
// that holds the buckets.
func S3(t *testing.T) string {
	t.Helper()
	bin := Versitygw()
	if bin == "" {
		Missing(t, "versitygw", "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "gw")
	iam := filepath.Join(dir, "iam")
	for _, d := range []string{root, iam} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
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

func s3Client(t testing.TB) *s3.Client {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

// MakeBucket creates a bucket on the server S3 started, as a user's
// set-up would.
func MakeBucket(t testing.TB, name string) {
	t.Helper()
	if _, err := s3Client(t).CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// S3ReadOnly creates user "ro" (secret "rosecret") whom a bucket policy
// lets read and list bucket, as a pull request's credentials; it returns
// the variables that make a process that user.
func S3ReadOnly(t testing.TB, bucket string) []string {
	t.Helper()
	out, err := exec.Command(Versitygw(), "admin", "-a", "smeltkey", "-s", "smeltsecret", "--er", os.Getenv("AWS_ENDPOINT_URL_S3"),
		"create-user", "--access", "ro", "--secret", "rosecret", "--role", "user").CombinedOutput()
	if err != nil {
		t.Fatalf("versitygw admin create-user: %v\n%s", err, out)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["ro"]},` +
		`"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::` + bucket + `","arn:aws:s3:::` + bucket + `/*"]}]}`
	if _, err := s3Client(t).PutBucketPolicy(t.Context(), &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("put bucket policy: %v", err)
	}
	return []string{"AWS_ACCESS_KEY_ID=ro", "AWS_SECRET_ACCESS_KEY=rosecret"}
}

// BuildGridCache runs BuildGrid's CAS, ByteStream and action cache in
// memory (no PostgreSQL: no execution), on instance "main"; it returns
// HOST:PORT.
func BuildGridCache(t testing.TB) string {
	t.Helper()
	bgd := Bgd()
	if bgd == "" {
		bgd = makeVenv(t)
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
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

// Hung accepts connections and never answers: a remote that is up but
// stuck. It returns HOST:PORT.
func Hung(t testing.TB) string {
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

// Garbage answers every connection with bytes of no protocol. It returns
// HOST:PORT.
func Garbage(t testing.TB) string {
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

// GarbageHTTP answers every HTTP request with 200 and bytes of no format.
// It returns HOST:PORT.
func GarbageHTTP(t testing.TB) string {
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
	return l.Addr().String()
}
