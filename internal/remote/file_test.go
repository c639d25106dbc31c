package remote

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	suite{
		open: func(t *testing.T, opts Options) Backend {
			b, err := Open(t.Context(), "file://"+dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		corrupt: func(t *testing.T, ns Namespace, id ID, raw []byte) {
			p := filepath.Join(dir, filepath.FromSlash(blobPath(ns, id)))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, raw, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		hasRequests: 1000,
	}.run(t)
	// Others sharing the directory can read what was put.
	filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if st, _ := d.Info(); st.Mode().Perm()&0o044 != 0o044 {
				t.Fatalf("%s has mode %v: others sharing the remote cannot read it", p, st.Mode())
			}
		}
		return err
	})
	// Nothing is left in tmp/: every write was renamed into place.
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) > 0 {
		t.Fatalf("%d temporary files left in the shared directory", len(left))
	}
}

func TestOpenErrors(t *testing.T) {
	for _, u := range []string{"", "cache.example", "ftp://x/y", "file://host/x", "file:relative", "s3:///prefix", "grpc://host"} {
		if b, err := Open(t.Context(), u, Options{}); err == nil {
			b.Close()
			t.Errorf("Open(%q) accepted it", u)
		} else {
			t.Logf("Open(%q): %v", u, err)
		}
	}
}

func TestIDChecked(t *testing.T) {
	b, err := Open(t.Context(), "file://"+t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []ID{"", "../../etc/passwd", ID("AB" + string(hashOf(nil))[2:]), hashOf(nil)[:63]} {
		if _, err := b.Get(t.Context(), Objects, Ref{ID: id}); err == nil {
			t.Errorf("Get accepted id %q", id)
		}
	}
}
