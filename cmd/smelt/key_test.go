package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smelt/internal/trust"
)

func TestKeyGenerate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ci.key")
	r, w, _ := os.Pipe()
	stdout := os.Stdout
	os.Stdout = w
	code := mainErr([]string{"key", "generate", "ci-1", "-o", path})
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	if code != 0 {
		t.Fatalf("smelt key generate exited %d", code)
	}
	pub, err := trust.ParsePublicKey(strings.TrimSpace(string(out)))
	if err != nil || pub.Name != "ci-1" {
		t.Fatalf("stdout %q is not NAME:BASE64: %v", out, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", st, err)
	}
	sk, err := trust.LoadSecretKey(path)
	if err != nil || !sk.Public().Key.Equal(pub.Key) {
		t.Fatalf("the key file does not hold the printed key's secret: %v", err)
	}
	if mainErr([]string{"key", "generate", "ci-1", "-o", path}) == 0 {
		t.Fatal("a second key generate replaced the key file")
	}
}
