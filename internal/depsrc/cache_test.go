package depsrc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"smelt/internal/store"
)

type tarFile struct {
	name string
	body string
	mode int64
	typ  byte
}

// makeCrate writes a .crate (a gzipped tar) into home's download cache
// and returns its checksum.
func makeCrate(t *testing.T, home, dir string, files []tarFile) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		typ := f.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: f.name, Mode: mode, Size: int64(len(f.body)), Typeflag: typ}
		if typ != tar.TypeReg {
			hdr.Size = 0
			hdr.Linkname = f.body
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(f.body))
		}
	}
	tw.Close()
	zw.Close()
	cache := filepath.Join(home, "registry", "cache", "index.crates.io-test")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, dir+".crate"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}

func lockFor(pkgs ...lockPackage) []byte {
	var b strings.Builder
	b.WriteString("version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n")
	for _, p := range pkgs {
		b.WriteString("\n[[package]]\nname = \"" + p.Name + "\"\nversion = \"" + p.Version + "\"\n")
		if p.Source != "" {
			b.WriteString("source = \"" + p.Source + "\"\n")
		}
		if p.Checksum != "" {
			b.WriteString("checksum = \"" + p.Checksum + "\"\n")
		}
	}
	return []byte(b.String())
}

const registry = "registry+https://github.com/rust-lang/crates.io-index"

func TestUnpackFromCache(t *testing.T) {
	home := t.TempDir()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sum := makeCrate(t, home, "demo-1.2.3", []tarFile{
		{name: "demo-1.2.3/Cargo.toml", body: "[package]\nname = \"demo\"\n"},
		{name: "demo-1.2.3/src/lib.rs", body: "pub fn f() {}\n"},
		{name: "demo-1.2.3/.gitignore", body: "target\n"},
		{name: "demo-1.2.3/sub/.gitattributes", body: "* text\n"},
		{name: "demo-1.2.3/configure", body: "#!/bin/sh\n", mode: 0o755},
	})
	dir := filepath.Join(t.TempDir(), "crates")
	env := []string{"CARGO_HOME=" + home}
	conf, err := fromCache(st, lockFor(lockPackage{Name: "demo", Version: "1.2.3", Source: registry, Checksum: sum}), env, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(conf, `replace-with = "vendored-sources"`) || !strings.Contains(conf, `directory = "`+dir+`"`) {
		t.Errorf("config:\n%s", conf)
	}
	got := listFiles(t, filepath.Join(dir, "demo-1.2.3"))
	want := []string{".cargo-checksum.json", "Cargo.toml", "configure", "src/lib.rs"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("files %q, want %q (git's files left out, as cargo vendor does)", got, want)
	}
	if fi, err := os.Stat(filepath.Join(dir, "demo-1.2.3", "configure")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("configure lost its executable bit: %v", fi.Mode())
	}
	var sums struct {
		Files   map[string]string `json:"files"`
		Package string            `json:"package"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "demo-1.2.3", ".cargo-checksum.json"))
	if err := json.Unmarshal(b, &sums); err != nil {
		t.Fatal(err)
	}
	lib := sha256.Sum256([]byte("pub fn f() {}\n"))
	if sums.Package != sum || sums.Files["src/lib.rs"] != hex.EncodeToString(lib[:]) || len(sums.Files) != 3 {
		t.Errorf(".cargo-checksum.json = %s", b)
	}
}

// TestFromCacheDeclines: whatever the download cache cannot vouch for is
// left to cargo vendor, and nothing is unpacked from a bad .crate.
func TestFromCacheDeclines(t *testing.T) {
	home := t.TempDir()
	good := makeCrate(t, home, "good-1.0.0", []tarFile{{name: "good-1.0.0/Cargo.toml", body: "x"}})
	evil := makeCrate(t, home, "evil-1.0.0", []tarFile{{name: "evil-1.0.0/Cargo.toml", body: "x"}, {name: "evil-1.0.0/../../escape", body: "x"}})
	linked := makeCrate(t, home, "linked-1.0.0", []tarFile{{name: "linked-1.0.0/Cargo.toml", body: "x"}, {name: "linked-1.0.0/l", body: "Cargo.toml", typ: tar.TypeSymlink}})
	wrong := strings.Repeat("0", 64)
	tests := []struct {
		name string
		pkgs []lockPackage
		want error // nil: any error that is not errNoCache
	}{
		{"git source", []lockPackage{{Name: "g", Version: "1.0.0", Source: "git+https://example.com/g#abc"}}, errNoCache},
		{"other registry", []lockPackage{{Name: "good", Version: "1.0.0", Source: "registry+https://example.com/index", Checksum: good}}, errNoCache},
		{"no checksum", []lockPackage{{Name: "good", Version: "1.0.0", Source: registry}}, errNoCache},
		{"not downloaded", []lockPackage{{Name: "absent", Version: "1.0.0", Source: registry, Checksum: good}}, errNoCache},
		{"checksum mismatch", []lockPackage{{Name: "good", Version: "1.0.0", Source: registry, Checksum: wrong}}, errNoCache},
		{"path in name", []lockPackage{{Name: "../good", Version: "1.0.0", Source: registry, Checksum: good}}, errNoCache},
		{"symlink", []lockPackage{{Name: "linked", Version: "1.0.0", Source: registry, Checksum: linked}}, errNoCache},
		{"entry outside the crate", []lockPackage{{Name: "evil", Version: "1.0.0", Source: registry, Checksum: evil}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			base := t.TempDir()
			_, err = fromCache(st, lockFor(tt.pkgs...), []string{"CARGO_HOME=" + home}, filepath.Join(base, "crates"), nil)
			if tt.want != nil && !errors.Is(err, tt.want) || tt.want == nil && (err == nil || errors.Is(err, errNoCache)) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(base, "escape")); err == nil {
				t.Errorf("a .crate wrote outside its directory")
			}
		})
	}
}

// TestFromCacheSkipsPooled: a crate the pool has (same package checksum)
// is not unpacked again; one of the same name and version from another
// source makes the whole lock file cargo vendor's.
func TestFromCacheSkipsPooled(t *testing.T) {
	home := t.TempDir()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := makeCrate(t, home, "a-1.0.0", []tarFile{{name: "a-1.0.0/Cargo.toml", body: "a"}})
	b := makeCrate(t, home, "b-1.0.0", []tarFile{{name: "b-1.0.0/Cargo.toml", body: "b"}})
	lock := lockFor(lockPackage{Name: "a", Version: "1.0.0", Source: registry, Checksum: a}, lockPackage{Name: "b", Version: "1.0.0", Source: registry, Checksum: b})
	env := []string{"CARGO_HOME=" + home}
	first := filepath.Join(t.TempDir(), "crates")
	if _, err := fromCache(st, lock, env, first, nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := pool(st, first); err != nil || !ok {
		t.Fatalf("pool: %v %v", ok, err)
	}
	second := filepath.Join(t.TempDir(), "crates")
	if _, err := fromCache(st, lock, env, second, nil); err != nil {
		t.Fatal(err)
	}
	if got := listFiles(t, second); len(got) != 0 {
		t.Errorf("pooled crates unpacked again: %q", got)
	}
	// b-1.0.0 from a git repository, pooled by cargo vendor.
	os.WriteFile(filepath.Join(PoolDir(st), "b-1.0.0", ".cargo-checksum.json"), []byte(`{"files":{},"package":null}`), 0o644)
	if _, err := fromCache(st, lock, env, filepath.Join(t.TempDir(), "crates"), nil); !errors.Is(err, errNoCache) {
		t.Errorf("conflicting pooled crate: err = %v, want errNoCache", err)
	}
}

// TestCacheMatchesCargoVendor: for the fixtures' real dependencies, the
// crates unpacked from cargo's download cache hold exactly the files, with
// exactly the contents, that `cargo vendor` gives.
func TestCacheMatchesCargoVendor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cargo")
	}
	if _, err := exec.LookPath("cargo"); err != nil {
		if os.Getenv("SMELT_REQUIRE_TOOLS") != "" {
			t.Fatal("cargo not found")
		}
		t.Skip("cargo not found")
	}
	fixtures, _ := filepath.Glob("../../testdata/*/Cargo.lock")
	compared := 0
	for _, lockPath := range fixtures {
		ws := filepath.Dir(lockPath)
		lock, err := os.ReadFile(lockPath)
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		cmd := exec.Command("cargo", "vendor", "--locked", "--versioned-dirs", "--respect-source-config", filepath.Join(out, "cargo"))
		cmd.Dir = ws
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: cargo vendor: %v\n%s", ws, err, b)
		}
		st, err := store.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fromCache(st, lock, os.Environ(), filepath.Join(out, "smelt"), nil); err != nil {
			t.Fatalf("%s: %v", ws, err)
		}
		crates, _ := os.ReadDir(filepath.Join(out, "cargo"))
		for _, c := range crates {
			cv, sv := filepath.Join(out, "cargo", c.Name()), filepath.Join(out, "smelt", c.Name())
			if got, want := listFiles(t, sv), listFiles(t, cv); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s: files\n got %q\nwant %q", c.Name(), got, want)
				continue
			}
			for _, f := range listFiles(t, cv) {
				x, _ := os.ReadFile(filepath.Join(cv, f))
				y, _ := os.ReadFile(filepath.Join(sv, f))
				if f == ".cargo-checksum.json" {
					if !sameCrate(x, y) || !sameFiles(t, x, y) {
						t.Errorf("%s: .cargo-checksum.json\n got %s\nwant %s", c.Name(), y, x)
					}
				} else if !bytes.Equal(x, y) {
					t.Errorf("%s: %s differs", c.Name(), f)
				}
			}
			compared++
		}
	}
	if compared == 0 {
		t.Fatal("no crate compared")
	}
	t.Logf("%d crates compared", compared)
}

func sameFiles(t *testing.T, a, b []byte) bool {
	var x, y struct {
		Files map[string]string `json:"files"`
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil || len(x.Files) != len(y.Files) {
		return false
	}
	for k, v := range x.Files {
		if y.Files[k] != v {
			return false
		}
	}
	return true
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// Each vendored set lists the pooled crates it uses, those it found in the
// pool included, so that gc keeps exactly what the live sets need.
func TestFetchListsPooledCrates(t *testing.T) {
	home := t.TempDir()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"CARGO_HOME=" + home}
	pkg := map[string]lockPackage{}
	for _, c := range []string{"a", "b", "c"} {
		sum := makeCrate(t, home, c+"-1.0.0", []tarFile{{name: c + "-1.0.0/Cargo.toml", body: c}})
		pkg[c] = lockPackage{Name: c, Version: "1.0.0", Source: registry, Checksum: sum}
	}
	fetch := func(names ...string) string {
		var pkgs []lockPackage
		for _, n := range names {
			pkgs = append(pkgs, pkg[n])
		}
		ws := t.TempDir()
		lock := lockFor(pkgs...)
		if err := os.WriteFile(filepath.Join(ws, "Cargo.lock"), lock, 0o644); err != nil {
			t.Fatal(err)
		}
		id := ID(lock)
		if _, err := Fetch(context.Background(), st, ws, id, env, nil); err != nil {
			t.Fatal(err)
		}
		var listed []string
		if err := st.ReadJSON(filepath.Join("vendor", id, PoolList), &listed); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, n := range names {
			want = append(want, n+"-1.0.0")
		}
		if !slices.Equal(listed, want) {
			t.Errorf("vendored set of %v lists %v", names, listed)
		}
		return id
	}
	fetch("a", "b")
	second := fetch("a", "c") // a comes from the pool
	// Only the second set is in use (gc gives Sweep the sets its
	// remaining results name).
	if _, err := st.GC(store.GCOptions{Sweep: func([]store.Record) (int, error) { return Sweep(st, map[string]bool{second: true}) }}); err != nil {
		t.Fatal(err)
	}
	var pooled []string
	entries, _ := os.ReadDir(PoolDir(st))
	for _, e := range entries {
		pooled = append(pooled, e.Name())
	}
	if !slices.Equal(pooled, []string{"a-1.0.0", "c-1.0.0"}) {
		t.Errorf("pool after gc: %v, want the live set's a and c", pooled)
	}
	if s, ok := Lookup(st, second); !ok || s.Dir != PoolDir(st) {
		t.Errorf("the live set is gone after gc: %+v %v", s, ok)
	}
}
