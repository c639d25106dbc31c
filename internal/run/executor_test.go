package run

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"smelt/internal/reapi"
	"smelt/internal/testsrv"
)

// The workspace's mtimes become their ranks: two stores that laid the
// same files out at other times, in the same order, send the same ones.
func TestMTimeRanks(t *testing.T) {
	ranks := func(base time.Time, gaps []time.Duration) []time.Time {
		dir := t.TempDir()
		var out []time.Time
		for i, g := range gaps {
			p := filepath.Join(dir, string(rune('a'+i)))
			os.WriteFile(p, nil, 0o644)
			mt := base.Add(g)
			os.Chtimes(p, mt, mt)
		}
		in := &inputs{}
		if err := in.mtimeRanks(dir, filepath.Join(dir, "target")); err != nil {
			t.Fatal(err)
		}
		for _, g := range gaps {
			out = append(out, in.canon[base.Add(g).UnixNano()])
		}
		return out
	}
	a := ranks(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), []time.Duration{0, 5 * time.Millisecond, 0, time.Hour})
	b := ranks(time.Date(2026, 6, 1, 0, 0, 0, 7, time.UTC), []time.Duration{0, time.Nanosecond, 0, time.Second})
	for i := range a {
		if !a[i].Equal(b[i]) || !canonical(a[i]) {
			t.Errorf("file %d: %v in one store, %v in the other", i, a[i], b[i])
		}
	}
	if !a[0].Equal(a[2]) || !a[0].Before(a[1]) || !a[1].Before(a[3]) {
		t.Errorf("ranks lost the order: %v", a)
	}
}

// A source file's mtime in the action depends on the source's times
// alone, not on what target/ holds (cargo records the newest source file's
// mtime in a build script's fingerprint), and target/'s files keep their
// order with the source's, equal times equal.
func TestMTimeRanksSourceStable(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type file struct {
		rel string
		at  time.Duration
	}
	canon := func(files []file) map[string]time.Time {
		dir := t.TempDir()
		for _, f := range files {
			p := filepath.Join(dir, f.rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, nil, 0o644)
			os.Chtimes(p, base.Add(f.at), base.Add(f.at))
		}
		in := &inputs{}
		if err := in.mtimeRanks(dir, filepath.Join(dir, "target")); err != nil {
			t.Fatal(err)
		}
		out := map[string]time.Time{}
		for _, f := range files {
			c, ok := in.canon[base.Add(f.at).UnixNano()]
			if !ok || !canonical(c) {
				t.Fatalf("%s: no canonical mtime (%v)", f.rel, c)
			}
			out[f.rel] = c
		}
		return out
	}
	src := []file{{"Cargo.toml", 10 * time.Second}, {"src/main.rs", 20 * time.Second}, {"build.rs", 20 * time.Second}}
	// The deps step's action: the skeleton's leftovers, all older.
	a := canon(append(src, file{"target/old", time.Second}, file{"target/older", 0}))
	// A later step's: its parent's outputs, between and after, one on a
	// source time.
	b := canon(append(src, file{"target/x", 5 * time.Second}, file{"target/y", 15 * time.Second},
		file{"target/z", 20 * time.Second}, file{"target/w", 25 * time.Second}, file{"target/v", 26 * time.Second}))
	for _, f := range src {
		if !a[f.rel].Equal(b[f.rel]) {
			t.Errorf("%s: %v beside one target/, %v beside another", f.rel, a[f.rel], b[f.rel])
		}
	}
	order := []string{"target/x", "Cargo.toml", "target/y", "src/main.rs", "target/w", "target/v"}
	for i := 1; i < len(order); i++ {
		if !b[order[i-1]].Before(b[order[i]]) {
			t.Errorf("%s (%v) is not before %s (%v)", order[i-1], b[order[i-1]], order[i], b[order[i]])
		}
	}
	if !b["target/z"].Equal(b["src/main.rs"]) || !b["build.rs"].Equal(b["src/main.rs"]) {
		t.Errorf("equal times differ: %v %v %v", b["target/z"], b["src/main.rs"], b["build.rs"])
	}
	if !a["target/older"].Before(a["target/old"]) || !a["target/old"].Before(a["Cargo.toml"]) {
		t.Errorf("the skeleton's leftovers are not older than the source: %v", a)
	}
}

func TestEnvVars(t *testing.T) {
	got := envVars([]string{"B=1", "A=x=y", "B=2"})
	if len(got) != 2 || got[0].Name != "A" || got[0].Value != "x=y" || got[1].Name != "B" || got[1].Value != "2" {
		t.Errorf("envVars: %v", got)
	}
}

// Bringing an action's output directory back: a big changed file (through
// ByteStream) and a new one are written with mtimes in their order between
// the command's start and now, an unchanged one keeps its mtime (and stays
// a hard link), one the command removed goes.
func TestDownload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts BuildGrid's CAS (skipped with -short)")
	}
	url := "grpc://" + testsrv.BuildGridCache(t) + "/main"
	x, err := newExecutor(url)
	if err != nil {
		t.Fatal(err)
	}
	defer x.close()
	ctx := context.Background()
	dir := t.TempDir()
	write := func(rel string, data []byte, mt time.Time) string {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mt, mt)
		return p
	}
	old := time.Now().Add(-time.Hour).Round(time.Second)
	bigOld, bigNew := bytes.Repeat([]byte("a"), 5<<20), bytes.Repeat([]byte("b"), 5<<20)
	write("src/big", bigOld, old)
	keep := write("src/keep", []byte("keep"), old)
	store := filepath.Join(t.TempDir(), "object")
	if err := os.Link(keep, store); err != nil {
		t.Fatal(err)
	}
	write("src/gone", []byte("gone"), old)

	worker := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	file := func(name string, data []byte, mt time.Time) *repb.FileNode {
		return &repb.FileNode{Name: name, Digest: reapi.Digest(data), NodeProperties: &repb.NodeProperties{Mtime: timestamppb.New(mt)}}
	}
	src := &repb.Directory{Files: []*repb.FileNode{
		file("big", bigNew, worker), file("keep", []byte("keep"), canonBase.Add(time.Hour)), file("new", []byte("new"), worker.Add(time.Second))}}
	_, srcD, _ := reapi.Marshal(src)
	tree := &repb.Tree{Root: &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "src", Digest: srcD}}}, Children: []*repb.Directory{src}}
	treeData, treeD, _ := reapi.Marshal(tree)
	blobs := []reapi.Blob{{Digest: reapi.Digest(bigNew), Data: bigNew}, {Digest: reapi.Digest([]byte("keep")), Data: []byte("keep")},
		{Digest: reapi.Digest([]byte("new")), Data: []byte("new")}, {Digest: treeD, Data: treeData}}
	if _, err := x.cas.UploadMissing(ctx, blobs); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := &repb.ActionResult{OutputDirectories: []*repb.OutputDirectory{{Path: "work", TreeDigest: treeD}}}
	n, err := x.download(ctx, res, dir, start)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	if n != 2 {
		t.Errorf("wrote %d files, want 2 (big, new)", n)
	}
	mtime := func(rel string) time.Time {
		info, err := os.Stat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return info.ModTime()
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "src", "big")); !bytes.Equal(data, bigNew) {
		t.Errorf("src/big has %d other bytes", len(data))
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "src", "new")); string(data) != "new" {
		t.Errorf("src/new = %q", data)
	}
	if _, err := os.Stat(filepath.Join(dir, "src", "gone")); !os.IsNotExist(err) {
		t.Errorf("src/gone is still there (%v)", err)
	}
	if !mtime("src/keep").Equal(old) {
		t.Errorf("src/keep's mtime changed to %v", mtime("src/keep"))
	}
	if info, _ := os.Stat(store); info.ModTime() != old {
		t.Errorf("the store's object changed with the working directory's link")
	}
	b, nw := mtime("src/big"), mtime("src/new")
	if b.Before(start) || nw.After(end) || !b.Before(nw) {
		t.Errorf("mtimes big %v, new %v: want start %v <= big < new <= %v", b, nw, start, end)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".smelt-fetch-*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
