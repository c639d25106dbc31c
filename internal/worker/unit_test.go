package worker

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"smelt/internal/reapi"
)

func TestRustcVersion(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\ncommit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\nrelease: 1.95.0\nLLVM version: 22.1.2\n", "1.95.0 59807616e1fa2540724bfbac14d7976d7e4a3860"},
		{"release: 1.80.0-nightly\n", "1.80.0-nightly"},
		{"error: no toolchain\n", ""},
	} {
		if got := RustcVersion(c.in); got != c.want {
			t.Errorf("RustcVersion(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMissing(t *testing.T) {
	offered := []Property{{KeyOSFamily, "linux"}, {KeyTool, "clippy"}, {KeyTool, "rustfmt"}}
	got := Missing([]Property{{KeyTool, "rustfmt"}, {KeyTool, "cargo-nextest"}, {KeyOSFamily, "linux"}}, offered)
	if len(got) != 1 || got[0] != "tool=cargo-nextest" {
		t.Errorf("Missing = %q", got)
	}
}

func TestLookPath(t *testing.T) {
	wd := t.TempDir()
	os.MkdirAll(filepath.Join(wd, "bin"), 0o755)
	os.WriteFile(filepath.Join(wd, "bin", "tool"), []byte("#!/bin/sh\n"), 0o755)
	for _, c := range []struct {
		name string
		env  []string
		want string
		bad  bool
	}{
		{name: "tool", env: []string{"PATH=bin"}, want: filepath.Join(wd, "bin", "tool")},
		{name: "./bin/tool", want: filepath.Join(wd, "bin", "tool")},
		{name: "/bin/sh", want: "/bin/sh"},
		{name: "sh", env: []string{"PATH=/usr/bin:/bin"}},
		{name: "tool", env: []string{"PATH=/nonexistent"}, bad: true},
	} {
		got, err := lookPath(c.name, c.env, wd)
		if (err != nil) != c.bad || (c.want != "" && got != c.want) {
			t.Errorf("lookPath(%q, %q) = %q, %v", c.name, c.env, got, err)
		}
	}
}

// An output directory becomes a Tree whose files, once in a cache,
// materialise back to the same bytes, modes, symlinks and mtimes.
func TestCollectMaterialise(t *testing.T) {
	wd := t.TempDir()
	write := func(p, data string, mode os.FileMode) {
		p = filepath.Join(wd, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("out/a.txt", "a", 0o644)
	write("out/bin/run", "#!/bin/sh\n", 0o755)
	write("out/x/same.txt", "same", 0o644)
	write("out/y/same.txt", "same", 0o644) // x and y: one child message
	os.Symlink("a.txt", filepath.Join(wd, "out", "link"))
	write("file.txt", "f", 0o644)
	res := &repb.ActionResult{}
	blobs, err := collect(wd, []string{"out", "file.txt", "missing"}, res, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.OutputFiles) != 1 || res.OutputFiles[0].Path != "file.txt" || len(res.OutputDirectories) != 1 {
		t.Fatalf("result %v", res)
	}
	c := &cache{dir: t.TempDir()}
	var tree repb.Tree
	for _, b := range blobs {
		data := b.Data
		if b.Path != "" {
			data, _ = os.ReadFile(b.Path)
		}
		if reapi.Key(reapi.Digest(data)) != reapi.Key(b.Digest) {
			t.Fatalf("blob %s has other bytes", reapi.Key(b.Digest))
		}
		if reapi.Key(b.Digest) == reapi.Key(res.OutputDirectories[0].TreeDigest) {
			proto.Unmarshal(data, &tree)
		}
		c.put(b.Digest, data)
	}
	if len(tree.Children) != 2 { // bin, and x and y (equal: one message)
		t.Errorf("tree children %d, want 2 (bin; x and y share one)", len(tree.Children))
	}
	// The Tree as an input root, with an mtime on one file.
	dirs := map[string]*repb.Directory{}
	for _, d := range append([]*repb.Directory{tree.Root}, tree.Children...) {
		_, dg, _ := reapi.Marshal(d)
		dirs[reapi.Key(dg)] = d
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	tree.Root.Files[0].NodeProperties = &repb.NodeProperties{Mtime: timestamppb.New(mtime)}
	_, rootDigest, _ := reapi.Marshal(tree.Root)
	dirs[reapi.Key(rootDigest)] = tree.Root
	dst := filepath.Join(t.TempDir(), "root")
	if _, err := c.materialise(dst, dirs, rootDigest, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path, data string
		mode       os.FileMode
	}{{"a.txt", "a", 0o644}, {"bin/run", "#!/bin/sh\n", 0o755}, {"x/same.txt", "same", 0o644}, {"y/same.txt", "same", 0o644}} {
		p := filepath.Join(dst, f.path)
		b, err := os.ReadFile(p)
		info, _ := os.Stat(p)
		if err != nil || !bytes.Equal(b, []byte(f.data)) || info.Mode().Perm() != f.mode {
			t.Errorf("%s: %q %v %v", f.path, b, info.Mode(), err)
		}
	}
	if info, _ := os.Stat(filepath.Join(dst, "a.txt")); !info.ModTime().Equal(mtime) {
		t.Errorf("a.txt mtime %v, want %v", info.ModTime(), mtime)
	}
	if target, err := os.Readlink(filepath.Join(dst, "link")); err != nil || target != "a.txt" {
		t.Errorf("link: %q %v", target, err)
	}
	// A file marked linkable is the cache's object itself.
	run := tree.Children[0] // bin
	if run.Files[0].Name != "run" {
		t.Fatalf("child 0 %v", run)
	}
	run.Files[0].NodeProperties = &repb.NodeProperties{Properties: []*repb.NodeProperty{{Name: LinkProperty}}}
	_, runDigest, _ := reapi.Marshal(run)
	dirs[reapi.Key(runDigest)] = run
	tree.Root.Directories[0].Digest = runDigest
	_, rootDigest, _ = reapi.Marshal(tree.Root)
	dirs[reapi.Key(rootDigest)] = tree.Root
	dst2 := filepath.Join(t.TempDir(), "root")
	if _, err := c.materialise(dst2, dirs, rootDigest, nil); err != nil {
		t.Fatal(err)
	}
	linked, _ := os.Stat(filepath.Join(dst2, "bin", "run"))
	object, _ := os.Stat(c.path(reapi.Digest([]byte("#!/bin/sh\n"))))
	copied, _ := os.Stat(filepath.Join(dst2, "a.txt"))
	if !os.SameFile(linked, object) || linked.Mode().Perm() != 0o755 {
		t.Errorf("bin/run (linkable): not the cache's object, or mode %v", linked.Mode())
	}
	if os.SameFile(copied, object) || os.SameFile(copied, func() os.FileInfo { i, _ := os.Stat(c.path(reapi.Digest([]byte("a")))); return i }()) {
		t.Errorf("a.txt (not linkable) is a link to the cache")
	}

	// An action that rewrites an input leaves the cache as it was.
	os.WriteFile(filepath.Join(dst, "x", "same.txt"), []byte("changed"), 0o644)
	if b, _ := os.ReadFile(c.path(reapi.Digest([]byte("same")))); string(b) != "same" {
		t.Errorf("the cache's blob became %q", b)
	}
}

// Output files carry their mtimes only when the command asks for them
// (output_node_properties "MTime"), as smelt's do.
func TestCollectMTimes(t *testing.T) {
	wd := t.TempDir()
	os.MkdirAll(filepath.Join(wd, "out"), 0o755)
	p := filepath.Join(wd, "out", "f")
	os.WriteFile(p, []byte("f"), 0o644)
	mt := time.Date(2021, 3, 4, 5, 6, 7, 8, time.UTC)
	os.Chtimes(p, mt, mt)
	for _, want := range []bool{false, true} {
		res := &repb.ActionResult{}
		blobs, err := collect(wd, []string{"out"}, res, want, nil)
		if err != nil {
			t.Fatal(err)
		}
		var tree repb.Tree
		for _, b := range blobs {
			if reapi.Key(b.Digest) == reapi.Key(res.OutputDirectories[0].TreeDigest) {
				proto.Unmarshal(b.Data, &tree)
			}
		}
		got := tree.Root.Files[0].GetNodeProperties().GetMtime()
		if (got != nil) != want || want && !got.AsTime().Equal(mt) {
			t.Errorf("asked for mtimes %v: got %v", want, got)
		}
	}
}

// An output file that is an input the command left alone keeps the
// input's digest without being read again; one it rewrote is hashed.
func TestCollectKnownInputs(t *testing.T) {
	wd := t.TempDir()
	os.MkdirAll(filepath.Join(wd, "out"), 0o755)
	kept, rewritten := filepath.Join(wd, "out", "kept"), filepath.Join(wd, "out", "rewritten")
	os.WriteFile(kept, []byte("k"), 0o644)
	os.WriteFile(rewritten, []byte("r"), 0o644)
	// Marker digests: what the input tree said, not the bytes.
	dk, dr := reapi.Digest([]byte("as the input tree says k")), reapi.Digest([]byte("as the input tree says r"))
	root := &repb.Directory{Files: []*repb.FileNode{{Name: "kept", Digest: dk}, {Name: "rewritten", Digest: dr}}}
	_, rd, _ := reapi.Marshal(root)
	top := &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "out", Digest: rd}}}
	_, td, _ := reapi.Marshal(top)
	known := knownInputs(wd, map[string]*repb.Directory{reapi.Key(rd): root, reapi.Key(td): top}, td)
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(rewritten, []byte("R"), 0o644)
	res := &repb.ActionResult{}
	blobs, err := collect(wd, []string{"out"}, res, false, known)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, b := range blobs {
		if b.Path != "" {
			got[filepath.Base(b.Path)] = reapi.Key(b.Digest)
		}
	}
	if got["kept"] != reapi.Key(dk) {
		t.Errorf("the untouched input was hashed again: %s", got["kept"])
	}
	if got["rewritten"] != reapi.Key(reapi.Digest([]byte("R"))) {
		t.Errorf("the rewritten input kept its old digest: %s", got["rewritten"])
	}
}

// The next action starts from the last one's root: a file still as the
// last action left it and as this tree wants it stays (same inode, new
// mtime); one touched since, one of other content, one that is a link into
// the cache but not linkable now, are replaced; one this tree lacks goes.
func TestMaterialiseWarm(t *testing.T) {
	c := &cache{dir: t.TempDir()}
	blob := func(s string) *repb.Digest {
		d := reapi.Digest([]byte(s))
		if !c.has(d) {
			c.put(d, []byte(s))
		}
		return d
	}
	mt := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	file := func(name, data string, link bool) *repb.FileNode {
		f := &repb.FileNode{Name: name, Digest: blob(data), NodeProperties: &repb.NodeProperties{Mtime: timestamppb.New(mt)}}
		if link {
			f.NodeProperties.Properties = []*repb.NodeProperty{{Name: LinkProperty}}
		}
		return f
	}
	tree := func(files ...*repb.FileNode) (map[string]*repb.Directory, *repb.Digest) {
		root := &repb.Directory{Files: files}
		_, d, _ := reapi.Marshal(root)
		return map[string]*repb.Directory{reapi.Key(d): root}, d
	}
	dst := filepath.Join(t.TempDir(), "root")
	dirs, d := tree(file("adopted", "adopted", false), file("crate", "crate", true), file("gone", "gone", false),
		file("keep", "keep", false), file("new", "old", false), file("touched", "touched", false))
	if _, err := c.materialise(dst, dirs, d, nil); err != nil {
		t.Fatal(err)
	}
	// The action's end: "adopted" became a link into the cache (collect
	// adopts outputs), then the state is taken; "touched" is written after.
	p := func(name string) string { return filepath.Join(dst, name) }
	os.Remove(p("adopted"))
	os.Link(c.path(reapi.Digest([]byte("adopted"))), p("adopted"))
	var blobs []reapi.Blob
	for _, n := range []string{"adopted", "crate", "gone", "keep", "new", "touched"} {
		blobs = append(blobs, reapi.Blob{Digest: reapi.Digest([]byte(n)), Path: p(n)})
	}
	blobs[4].Digest = reapi.Digest([]byte("old"))
	state := rootState(dst, blobs, nil)
	inode := func(name string) uint64 {
		info, err := os.Stat(p(name))
		if err != nil {
			return 0
		}
		return info.Sys().(*syscall.Stat_t).Ino
	}
	before := map[string]uint64{}
	for _, n := range []string{"keep", "crate", "touched", "adopted", "new"} {
		before[n] = inode(n)
	}
	os.WriteFile(p("touched"), []byte("touched"), 0o644)

	mt = mt.Add(time.Hour)
	dirs, d = tree(file("adopted", "adopted", false), file("crate", "crate", true), file("keep", "keep", false),
		file("new", "new", false), file("touched", "touched", false))
	kept, err := c.materialise(dst, dirs, d, state)
	if err != nil {
		t.Fatal(err)
	}
	if kept != 2 {
		t.Errorf("kept %d files, want 2 (keep, crate)", kept)
	}
	for _, c := range []struct {
		name string
		same bool
	}{{"keep", true}, {"crate", true}, {"touched", false}, {"adopted", false}, {"new", false}} {
		// (A replaced file may get its old inode number back.)
		if c.same && inode(c.name) != before[c.name] {
			t.Errorf("%s: replaced, want kept", c.name)
		}
		b, _ := os.ReadFile(p(c.name))
		if want := c.name; string(b) != want {
			t.Errorf("%s holds %q", c.name, b)
		}
		if info, _ := os.Stat(p(c.name)); !info.ModTime().Equal(mt) {
			t.Errorf("%s: mtime %v, want %v", c.name, info.ModTime(), mt)
		}
	}
	if _, err := os.Stat(p("gone")); !os.IsNotExist(err) {
		t.Errorf("gone is still there")
	}
	// Writing the formerly adopted file does not reach the cache.
	os.WriteFile(p("adopted"), []byte("rewritten"), 0o644)
	if b, _ := os.ReadFile(c.path(reapi.Digest([]byte("adopted")))); string(b) != "adopted" {
		t.Errorf("the cache's blob became %q", b)
	}
}
