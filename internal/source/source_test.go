package source

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"smelt/internal/store"
)

// write creates files under root; a value starting with "x:" is written executable.
func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, data := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(data, "x:") {
			mode, data = 0o755, data[2:]
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func paths(tr Tree) []string {
	out := []string{}
	for _, f := range tr {
		out = append(out, f.Path)
	}
	return out
}

// project is a small workspace with things Cargo needs and things it does not.
var project = map[string]string{
	"Cargo.toml":                  "[workspace]\nmembers = [\"app\"]\n",
	"Cargo.lock":                  "version = 4\n",
	".cargo/config.toml":          "[build]\n",
	"rust-toolchain.toml":         "[toolchain]\n",
	"rustfmt.toml":                "edition = \"2021\"\n",
	"clippy.toml":                 "",
	"deny.toml":                   "",
	"README.md":                   "# readme\n",
	"LICENSE":                     "MIT\n",
	"docs/guide.md":               "guide\n",
	"docs/example.rs":             "fn main() {}\n",
	"target/release/app":          "x:binary",
	"target/release/build.rs":     "fn main() {}\n",
	".git/HEAD":                   "ref: refs/heads/main\n",
	".git/hooks/pre-commit.rs":    "fn main() {}\n",
	".github/workflows/ci.yml":    "on: push\n",
	".idea/x.rs":                  "",
	"node_modules/m/index.rs":     "",
	"app/Cargo.toml":              "[package]\nname = \"app\"\n",
	"app/src/main.rs":             "fn main() {}\n",
	"app/src/bin/tool.rs":         "fn main() {}\n",
	"app/build.rs":                "x:fn main() {}\n",
	"app/.cargo/config.toml":      "",
	"app/target/CACHEDIR.TAG":     "Signature: 8a477f597d28d172789f06886806bc55\n",
	"app/target/debug/x.rs":       "",
	"app/target-ish/keep.rs":      "",
	"app/notes.txt":               "notes\n",
	"app/assets/logo.png":         "png",
	"app/assets/deep/data.json":   "{}",
	"app/src/target/mod.rs":       "// a module named target, no CACHEDIR.TAG\n",
	"benches/big/huge.rs":         "fn main() {}\n",
	"benches/small.rs":            "fn main() {}\n",
	"src/lib.rs":                  "#![doc = include_str!(\"../README.md\")]\nconst D: &[u8] = include_bytes!( \"data/blob.bin\" );\nconst M: &str = include_str!(\"../missing.txt\");\n",
	"src/data/blob.bin":           "blob",
	"src/data/unused.bin":         "unused",
	"app/src/inc.rs":              "const S: &str = include_str!(\"../../docs/guide.md\");\n",
	"app/src/excluded_inc.rs":     "const S: &str = include_str!(\"../notes.txt\");\n",
	"app/src/hidden_inc.rs":       "const S: &str = include_str!(\"../../.github/workflows/ci.yml\");\n",
	"vendor-like/.cargo/config":   "",
	"sub/rust-toolchain":          "stable\n",
	"sub/.rustfmt.toml":           "",
	"sub/.clippy.toml":            "",
	"sub/Cargo.toml.orig":         "",
	"sub/lib.rs.bak":              "",
	"sub/.cargo/credentials.toml": "secret",
}

func TestClean(t *testing.T) {
	root := t.TempDir()
	write(t, root, project)

	base := []string{
		".cargo/config.toml", "Cargo.lock", "Cargo.toml", "README.md",
		"app/.cargo/config.toml", "app/Cargo.toml", "app/build.rs",
		"app/src/bin/tool.rs", "app/src/excluded_inc.rs", "app/src/hidden_inc.rs", "app/src/inc.rs",
		"app/src/main.rs", "app/src/target/mod.rs", "app/target-ish/keep.rs",
		"benches/big/huge.rs", "benches/small.rs",
		"clippy.toml", "deny.toml",
		"docs/example.rs", "docs/guide.md",
		"rust-toolchain.toml", "rustfmt.toml",
		"src/data/blob.bin", "src/lib.rs",
		"sub/.clippy.toml", "sub/.rustfmt.toml", "sub/rust-toolchain",
		"vendor-like/.cargo/config",
	}
	without := func(list []string, drop ...string) []string {
		out := []string{}
		for _, p := range list {
			keep := true
			for _, d := range drop {
				if p == d {
					keep = false
				}
			}
			if keep {
				out = append(out, p)
			}
		}
		return out
	}
	with := func(list []string, add ...string) []string {
		out := append(append([]string{}, list...), add...)
		sortStrings(out)
		return out
	}
	tests := []struct {
		name             string
		include, exclude []string
		want             []string
	}{
		{"default", nil, nil, with(base, "app/notes.txt")},
		{"exclude glob with **", nil, []string{"benches/big/**"}, with(without(base, "benches/big/huge.rs"), "app/notes.txt")},
		{"exclude applies to include_str targets", nil, []string{"app/notes.txt"}, base},
		{"exclude applies to kept files", nil, []string{"**/*.toml"}, with(without(base,
			".cargo/config.toml", "Cargo.toml", "app/.cargo/config.toml", "app/Cargo.toml",
			"clippy.toml", "deny.toml", "rust-toolchain.toml", "rustfmt.toml",
			"sub/.clippy.toml", "sub/.rustfmt.toml"), "app/notes.txt")},
		{"include glob with **", []string{"app/assets/**"}, nil, with(base, "app/assets/deep/data.json", "app/assets/logo.png", "app/notes.txt")},
		{"include single star is one level", []string{"app/assets/*"}, nil, with(base, "app/assets/logo.png", "app/notes.txt")},
		{"include everywhere by extension", []string{"**/*.md"}, nil, with(base, "app/notes.txt")},
		{"include a skipped directory", []string{".github/**"}, nil, with(base, ".github/workflows/ci.yml", "app/notes.txt")},
		{"include minus exclude", []string{"app/assets/**"}, []string{"**/*.json"}, with(base, "app/assets/logo.png", "app/notes.txt")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := Clean(root, tt.include, tt.exclude)
			if err != nil {
				t.Fatal(err)
			}
			if got := paths(tr); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Clean paths:\n got %v\nwant %v\n missing %v\n extra %v", got, tt.want, minus(tt.want, got), minus(got, tt.want))
			}
		})
	}
}

func minus(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestCleanFileDetails(t *testing.T) {
	root := t.TempDir()
	write(t, root, project)
	tr, err := Clean(root, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := tr.Get("app/build.rs")
	if !ok {
		t.Fatal("app/build.rs missing")
	}
	if !f.Exec || string(f.Data) != "fn main() {}\n" || f.Hash != store.HashBytes(f.Data) {
		t.Errorf("app/build.rs = %+v", f)
	}
	if f, _ := tr.Get("src/lib.rs"); f.Exec {
		t.Errorf("src/lib.rs marked executable")
	}
	if _, ok := tr.Get("README.md"); !ok {
		t.Errorf("README.md (named by include_str!) not kept")
	}
	if _, ok := tr.Get("nope"); ok {
		t.Errorf("Get of absent path found something")
	}
	if m := tr.Map(); string(m["Cargo.lock"]) != "version = 4\n" || len(m) != len(tr) {
		t.Errorf("Map() wrong: %d entries", len(m))
	}
}

func TestCleanFollowsSymlinkedFiles(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"real/lib.rs": "// real\n", "Cargo.toml": ""})
	if err := os.MkdirAll(filepath.Join(root, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../real/lib.rs", filepath.Join(root, "src/lib.rs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere.rs", filepath.Join(root, "src/dangling.rs")); err != nil {
		t.Fatal(err)
	}
	tr, err := Clean(root, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := tr.Get("src/lib.rs"); !ok || string(f.Data) != "// real\n" {
		t.Errorf("symlinked src/lib.rs = %+v, %v", f, ok)
	}
	if _, ok := tr.Get("src/dangling.rs"); ok {
		t.Errorf("dangling symlink kept")
	}
}

func TestCleanInvalidGlob(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"Cargo.toml": ""})
	for _, tt := range []struct{ include, exclude []string }{
		{[]string{"assets/[a-"}, nil},
		{nil, []string{"{unclosed"}},
	} {
		if _, err := Clean(root, tt.include, tt.exclude); err == nil || !strings.Contains(err.Error(), "invalid glob") {
			t.Errorf("Clean(%v, %v) error = %v, want invalid glob", tt.include, tt.exclude, err)
		}
	}
}

func TestCleanMissingRoot(t *testing.T) {
	if _, err := Clean(filepath.Join(t.TempDir(), "absent"), nil, nil); err == nil {
		t.Errorf("Clean of a missing root succeeded")
	}
}

func TestTreeHash(t *testing.T) {
	base := Tree{
		{Path: "Cargo.toml", Hash: store.HashBytes([]byte("a")), Data: []byte("a")},
		{Path: "src/lib.rs", Hash: store.HashBytes([]byte("b")), Data: []byte("b")},
	}
	h := base.Hash()
	mod := func(edit func(Tree) Tree) Tree {
		c := append(Tree{}, base...)
		return edit(c)
	}
	tests := []struct {
		name string
		tree Tree
		same bool
	}{
		{"identical", mod(func(c Tree) Tree { return c }), true},
		{"content", mod(func(c Tree) Tree {
			c[1].Data, c[1].Hash = []byte("c"), store.HashBytes([]byte("c"))
			return c
		}), false},
		{"exec bit", mod(func(c Tree) Tree { c[1].Exec = true; return c }), false},
		{"path", mod(func(c Tree) Tree { c[1].Path = "src/main.rs"; return c }), false},
		{"file added", mod(func(c Tree) Tree { return append(c, File{Path: "z.rs", Hash: store.HashBytes(nil)}) }), false},
		{"file removed", mod(func(c Tree) Tree { return c[:1] }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tree.Hash() == h; got != tt.same {
				t.Errorf("hash equal = %v, want %v", got, tt.same)
			}
		})
	}

	// On disk: mtime does not change the hash, content and exec bit do.
	root := t.TempDir()
	write(t, root, map[string]string{"Cargo.toml": "[package]\n", "src/lib.rs": "pub fn f() {}\n"})
	hashOf := func() string {
		tr, err := Clean(root, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Hash()
	}
	h0 := hashOf()
	lib := filepath.Join(root, "src/lib.rs")
	old := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	if err := os.Chtimes(lib, old, old); err != nil {
		t.Fatal(err)
	}
	if hashOf() != h0 {
		t.Errorf("mtime changed the tree hash")
	}
	if err := os.Chmod(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	h1 := hashOf()
	if h1 == h0 {
		t.Errorf("exec bit did not change the tree hash")
	}
	if err := os.Chmod(lib, 0o644); err != nil {
		t.Fatal(err)
	}
	write(t, root, map[string]string{"src/lib.rs": "pub fn g() {}\n"})
	if h2 := hashOf(); h2 == h0 || h2 == h1 {
		t.Errorf("content did not change the tree hash")
	}
}

func TestFromMap(t *testing.T) {
	tr := FromMap(map[string][]byte{"b": []byte("2"), "a": []byte("1")})
	if got := paths(tr); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("FromMap order = %v", got)
	}
	if tr[0].Hash != store.HashBytes([]byte("1")) {
		t.Errorf("FromMap hash wrong")
	}
}

func TestMTimesOver(t *testing.T) {
	h := func(s string) string { return store.HashBytes([]byte(s)) }
	const tick = int64(time.Microsecond)
	parent := []FileTime{{Path: "a.rs", Hash: h("a"), MTime: 100}, {Path: "b.rs", Hash: h("b2"), MTime: 300}, {Path: "c.rs", Hash: h("c"), MTime: 100}}
	own := []FileTime{{Path: "a.rs", Hash: h("a"), MTime: 200}, {Path: "b.rs", Hash: h("b1"), MTime: 100}, {Path: "d.rs", Hash: h("d"), MTime: 50}}
	tree := Tree{{Path: "a.rs", Hash: h("a")}, {Path: "b.rs", Hash: h("b2")}, {Path: "c.rs", Hash: h("c")}, {Path: "d.rs", Hash: h("d")}, {Path: "e.rs", Hash: h("e")}}
	for _, tt := range []struct {
		name         string
		parentNewest int64
		ownUnits     []int64
		want         []int64
	}{
		{"own units older than the parent's", 1000, []int64{150, 500}, []int64{
			150 + tick,  // a: same on both sides: the parent's time, but newer than own units older than own's time (150)
			500 + tick,  // b: as the parent's, but newer than the own units, built from b1
			500 + tick,  // c: new to the step's own source: newer than its units
			1000 + tick, // d: not in the parent's source: newer than all its units
			1000 + tick, // e: new everywhere
		}},
		{"own units all built from the current a", 1000, []int64{250, 500}, []int64{100, 500 + tick, 500 + tick, 1000 + tick, 1000 + tick}},
		{"no own units survived", 1000, nil, []int64{100, 300, 100, 1000 + tick, 1000 + tick}},
		{"no units anywhere", 0, nil, []int64{200, 300, 100, 50, BaseTime}},
		{"a parent without units: own times kept", 0, []int64{150, 500}, []int64{
			150 + tick, // a: newer than own's unit older than own's time (150), which is later than own's time itself
			500 + tick, // b: changed since own: newer than its units
			500 + tick, // c: new to the step's own source
			50,         // d: own's time, exactly (else BaseTime, there being no bound)
			500 + tick, // e: new everywhere
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := MTimesOver(tree, parent, tt.parentNewest, own, tt.ownUnits, time.Duration(tick))
			for i, f := range got {
				if f.Path != tree[i].Path || f.MTime != tt.want[i] {
					t.Errorf("%s: mtime %d, want %d", f.Path, f.MTime, tt.want[i])
				}
			}
		})
	}
}

func TestTick(t *testing.T) {
	tick, err := Tick(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if tick <= 0 || tick > 2*time.Second {
		t.Fatalf("Tick = %v", tick)
	}
	if _, err := Tick(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("Tick of a missing directory: no error")
	}
}

func TestMTimes(t *testing.T) {
	sec := int64(time.Second)
	newest := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	file := func(p, content string) File { return File{Path: p, Hash: store.HashBytes([]byte(content))} }
	tree := Tree{file("Cargo.toml", "toml"), file("src/lib.rs", "lib v2"), file("src/new.rs", "new")}
	prev := []FileTime{
		{Path: "Cargo.toml", Hash: store.HashBytes([]byte("toml")), MTime: 1234},
		{Path: "src/lib.rs", Hash: store.HashBytes([]byte("lib v1")), MTime: 5678},
		{Path: "src/gone.rs", Hash: store.HashBytes([]byte("gone")), MTime: 9},
	}
	tests := []struct {
		name   string
		prev   []FileTime
		newest int64
		now    time.Time
		want   []int64 // per file of tree
	}{
		{
			name: "now later than newest: changed files get now", prev: prev, newest: newest,
			now:  time.Unix(0, newest+3600*sec),
			want: []int64{1234, newest + 3600*sec, newest + 3600*sec},
		},
		{
			name: "clock skew: now older than newest", prev: prev, newest: newest,
			now:  time.Unix(0, newest-3600*sec),
			want: []int64{1234, newest + sec, newest + sec},
		},
		{
			name: "now equal to newest", prev: prev, newest: newest,
			now:  time.Unix(0, newest),
			want: []int64{1234, newest + sec, newest + sec},
		},
		{
			name: "no previous source, no artifacts: BaseTime", prev: nil, newest: 0,
			now:  time.Unix(0, newest),
			want: []int64{BaseTime, BaseTime, BaseTime},
		},
		{
			name: "artifacts but no previous source: all changed", prev: nil, newest: newest,
			now:  time.Unix(0, newest+10*sec),
			want: []int64{newest + 10*sec, newest + 10*sec, newest + 10*sec},
		},
		{
			name: "artifacts but no previous source, skewed clock", prev: nil, newest: newest,
			now:  time.Unix(0, 0),
			want: []int64{newest + sec, newest + sec, newest + sec},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MTimes(tree, tt.prev, tt.newest, tt.now, time.Second)
			if len(got) != len(tree) {
				t.Fatalf("len = %d", len(got))
			}
			for i, f := range got {
				if f.Path != tree[i].Path || f.Hash != tree[i].Hash {
					t.Errorf("entry %d = %+v, want path/hash of %s", i, f, tree[i].Path)
				}
				if f.MTime != tt.want[i] {
					t.Errorf("%s mtime = %d, want %d", f.Path, f.MTime, tt.want[i])
				}
				// The rule itself: unchanged keeps, changed is newer than every artifact.
				unchanged := false
				for _, p := range tt.prev {
					if p.Path == f.Path && p.Hash == f.Hash {
						unchanged = true
					}
				}
				if !unchanged && tt.newest != 0 && f.MTime <= tt.newest {
					t.Errorf("%s changed but mtime %d <= newest %d", f.Path, f.MTime, tt.newest)
				}
			}
		})
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	info, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Ino
}

func TestLayout(t *testing.T) {
	dir := t.TempDir()
	// A previous layout, plus the step's target/ and a stale file.
	write(t, dir, map[string]string{
		"Cargo.toml":             "old toml",
		"src/lib.rs":             "same lib",
		"src/old.rs":             "stale",
		"stale/dir/x.rs":         "stale",
		"target/release/app":     "x:binary",
		"target/release/lib.rs":  "not a source file",
		"nested/target/keep.txt": "only the root target is untouched",
		"mode.sh":                "x:echo",
	})
	libIno := inode(t, filepath.Join(dir, "src/lib.rs"))
	targetInfo, err := os.Stat(filepath.Join(dir, "target/release/app"))
	if err != nil {
		t.Fatal(err)
	}

	tr := FromMap(map[string][]byte{
		"Cargo.toml":      []byte("new toml"),
		"src/lib.rs":      []byte("same lib"),
		"src/bin/main.rs": []byte("fn main() {}"),
		"mode.sh":         []byte("echo"),
	})
	t1 := time.Date(2020, 1, 1, 0, 0, 0, 111, time.UTC).UnixNano()
	t2 := time.Date(2030, 1, 1, 0, 0, 0, 222, time.UTC).UnixNano()
	times := make([]FileTime, len(tr))
	for i, f := range tr {
		m := t2
		if f.Path == "src/lib.rs" {
			m = t1
		}
		times[i] = FileTime{Path: f.Path, Hash: f.Hash, MTime: m}
	}
	if err := Layout(dir, tr, times); err != nil {
		t.Fatal(err)
	}

	for i, f := range tr {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != string(f.Data) {
			t.Errorf("%s = %q, want %q", f.Path, b, f.Data)
		}
		info, _ := os.Stat(p)
		if got := info.ModTime().UnixNano(); got != times[i].MTime {
			t.Errorf("%s mtime = %d, want %d", f.Path, got, times[i].MTime)
		}
		if info.Mode()&0o111 != 0 {
			t.Errorf("%s is executable, tree says not", f.Path)
		}
	}
	if inode(t, filepath.Join(dir, "src/lib.rs")) != libIno {
		t.Errorf("src/lib.rs with equal content was rewritten")
	}
	for _, gone := range []string{"src/old.rs", "stale/dir/x.rs", "nested/target/keep.txt"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("stale %s not removed (%v)", gone, err)
		}
	}
	info, err := os.Stat(filepath.Join(dir, "target/release/app"))
	if err != nil {
		t.Fatalf("target/ touched: %v", err)
	}
	if !info.ModTime().Equal(targetInfo.ModTime()) || info.Mode() != targetInfo.Mode() {
		t.Errorf("target/release/app changed")
	}
	if _, err := os.Stat(filepath.Join(dir, "target/release/lib.rs")); err != nil {
		t.Errorf("target/release/lib.rs removed: %v", err)
	}

	// Exec bit follows the tree.
	tr2 := Tree{{Path: "run.sh", Hash: store.HashBytes([]byte("x")), Exec: true, Data: []byte("x")}}
	if err := Layout(dir, tr2, []FileTime{{Path: "run.sh", MTime: t1}}); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Join(dir, "run.sh")); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("run.sh mode = %v, %v", info.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Cargo.toml")); !os.IsNotExist(err) {
		t.Errorf("Cargo.toml not removed by second layout")
	}
}

func TestLayoutIntoMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "work")
	tr := FromMap(map[string][]byte{"src/lib.rs": []byte("x")})
	if err := Layout(dir, tr, MTimes(tr, nil, 0, time.Now(), time.Second)); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "src/lib.rs"))
	if err != nil || info.ModTime().UnixNano() != BaseTime {
		t.Errorf("src/lib.rs: %v, %v", info, err)
	}
}

// The comment on Layout's cleanup says directories left empty by removing
// stale files are removed too.
func TestLayoutRemovesEmptiedDirs(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"src/lib.rs": "x", "examples/old/main.rs": "y"})
	tr := FromMap(map[string][]byte{"src/lib.rs": []byte("x")})
	if err := Layout(dir, tr, MTimes(tr, nil, 0, time.Now(), time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "examples")); !os.IsNotExist(err) {
		t.Errorf("examples/ left behind after its only file went stale (%v)", err)
	}
}

// A path that was a directory in an earlier layout and is a file now.
func TestLayoutDirBecomesFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"src/x/deep/a.rs": "a"})
	tr := FromMap(map[string][]byte{"src/x": []byte("now a file")})
	err := Layout(dir, tr, MTimes(tr, nil, 0, time.Now(), time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "src/x")); string(b) != "now a file" {
		t.Errorf("src/x = %q", b)
	}
}

func TestCleanDropsWhatCargoDoesNotRead(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"Cargo.toml":                 "",
		"src/lib.rs":                 "pub fn f() {}\n",
		"README.md":                  "readme",
		"docs/a.md":                  "a",
		"docs/img/b.png":             "b",
		"target/debug/x":             "x",
		"target/debug/x.rs":          "x",
		".git/config":                "",
		"crates/target/CACHEDIR.TAG": "Signature: 8a477f597d28d172789f06886806bc55",
		"crates/target/y.rs":         "",
	})
	tr, err := Clean(root, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := paths(tr), []string{"Cargo.toml", "src/lib.rs"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Clean = %v, want %v", got, want)
	}
}

// BenchmarkClean measures reading and hashing a large workspace's source, as
// every smelt run (a fully cached check included) does: 2000 Rust files of
// 10 KB, 20 MB in all.
func BenchmarkClean(b *testing.B) {
	dir := b.TempDir()
	body := strings.Repeat("pub fn f() -> u32 { 42 } // padding padding padding\n", 200)
	if err := os.WriteFile(filepath.Join(dir, "Cargo.toml"), []byte("[package]\nname = \"big\"\nversion = \"0.1.0\"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		d := filepath.Join(dir, "src", fmt.Sprintf("m%02d", i%50))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d.rs", i)), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Clean(dir, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
