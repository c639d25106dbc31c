package remote

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestHTTP(t *testing.T) {
	base, root := startNginx(t)
	for _, tc := range []struct {
		name, path string
	}{
		{"create_full_put_path", "/dav/cache"},
		{"MKCOL", "/plain/cache"}, // nginx without create_full_put_path
	} {
		t.Run(tc.name, func(t *testing.T) {
			suite{
				open: func(t *testing.T, opts Options) Backend {
					b, err := Open(t.Context(), base+tc.path, opts)
					if err != nil {
						t.Fatal(err)
					}
					return b
				},
				corrupt: func(t *testing.T, ns Namespace, id ID, raw []byte) {
					p := filepath.Join(root, filepath.FromSlash(tc.path+"/"+blobPath(ns, id)))
					os.MkdirAll(filepath.Dir(p), 0o755)
					if err := os.WriteFile(p, raw, 0o644); err != nil {
						t.Fatal(err)
					}
				},
				hasRequests: 1000, // one HEAD each: plain HTTP has no batch query
			}.run(t)
		})
	}
}

// TestHTTPReadOnly: a server that refuses writes gives an error that says so.
func TestHTTPReadOnly(t *testing.T) {
	base, _ := startNginx(t)
	b, err := Open(t.Context(), base+"/static", Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("x")
	err = b.Put(t.Context(), Layers, Ref{ID: hashOf(data), Size: 1}, bytes.NewReader(data))
	if err == nil {
		t.Fatal("Put to a location without WebDAV succeeded")
	}
	t.Log(err)
	_ = http.StatusMethodNotAllowed
}

func TestHTTPDown(t *testing.T) {
	downTests(t, func(addr string) string { return "http://" + addr + "/cache" })
}
