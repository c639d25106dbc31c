package remote

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHTTP(t *testing.T) {
	base, root := startNginx(t)
	for _, tc := range []struct {
		name, path string
		mkcols     int64
	}{
		{"create_full_put_path", "/dav/cache", 0},
		// nginx without create_full_put_path: a pack and an index in new
		// directories cost a failed PUT and MKCOLs each, once.
		{"MKCOL", "/plain/cache", 8},
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
				mkcols:      tc.mkcols,
			}.run(t)
		})
	}
}

// TestHTTPRefused: a server that refuses a write or a read gives an error
// that says what to check.
func TestHTTPRefused(t *testing.T) {
	base, _ := startNginx(t)
	t.Setenv("SMELT_REMOTE_TOKEN", "")
	data := []byte("x")
	ref := Ref{ID: hashOf(data), Size: 1}
	for _, tc := range []struct {
		path, token string
		putErr      string // "" if Put must succeed
		hasErr      string
	}{
		{"/static", "", "enable WebDAV", ""},
		{"/ro/cache", "", "may write", ""},
		{"/auth/cache", "", "check SMELT_REMOTE_TOKEN", "check SMELT_REMOTE_TOKEN"},
		{"/auth/cache", "wrong", "check SMELT_REMOTE_TOKEN", "check SMELT_REMOTE_TOKEN"},
		{"/auth/cache", "s3cret", "", ""},
	} {
		t.Run(tc.path+"/"+tc.token, func(t *testing.T) {
			t.Setenv("SMELT_REMOTE_TOKEN", tc.token)
			b, err := Open(t.Context(), base+tc.path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = b.Put(t.Context(), Layers, ref, bytes.NewReader(data))
			if tc.putErr == "" && err != nil || tc.putErr != "" && (err == nil || !strings.Contains(err.Error(), tc.putErr)) {
				t.Fatalf("Put: %v; want an error saying %q", err, tc.putErr)
			}
			_, err = b.Has(t.Context(), Layers, []Ref{ref})
			if tc.hasErr == "" && err != nil || tc.hasErr != "" && (err == nil || !strings.Contains(err.Error(), tc.hasErr)) {
				t.Fatalf("Has: %v; want an error saying %q", err, tc.hasErr)
			}
			if tc.token == "s3cret" {
				if got, err := getVerified(b, Layers, Ref{ID: ref.ID, Size: -1}); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("with the token, GetVerified = %q, %v", got, err)
				}
			}
		})
	}
}

func TestHTTPDown(t *testing.T) {
	downTests(t, func(addr string) string { return "http://" + addr + "/cache" })
}
