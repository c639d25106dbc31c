// Package source selects what of a project a step may see (the cleaned
// source), hashes it, and lays it out in a step's working directory under
// the mtime rule that keeps cargo from reusing stale artifacts.
package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/pelletier/go-toml/v2"

	"smelt/internal/store"
)

// File is one file of a cleaned source.
type File struct {
	Path string // slash-separated, relative to the workspace root
	Hash string
	Exec bool
	Data []byte
}

// Tree is a cleaned source, sorted by path.
type Tree []File

// keptNames are the files Cargo and its tools read besides *.rs files.
var keptNames = map[string]bool{
	"Cargo.toml": true, "Cargo.lock": true,
	"rust-toolchain": true, "rust-toolchain.toml": true,
	"clippy.toml": true, ".clippy.toml": true,
	"rustfmt.toml": true, ".rustfmt.toml": true,
	"deny.toml": true,
}

// testDirs hold what tests read at run time (fixtures, sample inputs):
// Cargo's own target directories and the usual names for test data.
var testDirs = map[string]bool{
	"tests": true, "benches": true, "examples": true,
	"testdata": true, "test-data": true, "test_data": true, "fixtures": true,
}

// kept reports whether Cargo needs rel (a slash path) to build, or its
// tests to run.
func kept(rel string) bool {
	base := path.Base(rel)
	if strings.HasSuffix(base, ".rs") || keptNames[base] {
		return true
	}
	for _, dir := range strings.Split(path.Dir(rel), "/") {
		if testDirs[dir] {
			return true
		}
	}
	return rel == ".cargo/config.toml" || rel == ".cargo/config" ||
		strings.HasSuffix(rel, "/.cargo/config.toml") || strings.HasSuffix(rel, "/.cargo/config")
}

// skipDir reports whether a directory can hold nothing a build needs: VCS
// metadata, build output, smelt's own state.
func skipDir(abs, rel, name string) bool {
	switch name {
	case ".git", ".hg", ".svn", ".smelt", "node_modules":
		return true
	case "target":
		if rel == "target" {
			return true
		}
		_, err := os.Stat(filepath.Join(abs, "CACHEDIR.TAG"))
		return err == nil
	}
	return strings.HasPrefix(name, ".") && name != ".cargo"
}

// includeMacro finds files that Rust code pulls in at compile time, such as
// `#![doc = include_str!("../README.md")]`: they are part of the build even
// though they are not Rust files. includeManifest finds the form relative to
// the package: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/x")).
var (
	includeMacro    = regexp.MustCompile(`include_(?:str|bytes)!\s*\(\s*"([^"]+)"\s*\)`)
	includeManifest = regexp.MustCompile(`include_(?:str|bytes)!\s*\(\s*concat!\s*\(\s*env!\s*\(\s*"CARGO_MANIFEST_DIR"\s*\)\s*,\s*"([^"]+)"\s*\)\s*\)`)
)

// cleaner gathers a cleaned source.
type cleaner struct {
	include, exclude []string
	allowed          []string // real directories the build may read: the root, path dependencies outside it
	files            map[string]File
	all              map[string]bool // every file seen, kept or not
}

func (c *cleaner) match(globs []string, rel string) bool {
	for _, g := range globs {
		if ok, _ := doublestar.Match(g, rel); ok {
			return true
		}
	}
	return false
}

// Clean reads the cleaned source of the workspace at root: every file Cargo
// needs, every file named by include_str!/include_bytes!, plus files matching
// include, minus those matching exclude (globs over slash paths, `**` allowed).
// Symbolic links to directories are followed where they stay inside what
// the build may read; path dependencies outside root are read too, at
// their place relative to it ("../lib/src/lib.rs"). Files and directories
// that cannot be read are left out: cargo could not read them either.
func Clean(root string, include, exclude []string) (Tree, error) {
	for _, g := range append(append([]string{}, include...), exclude...) {
		if !doublestar.ValidatePattern(g) {
			return nil, fmt.Errorf("invalid glob %q in include/exclude", g)
		}
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", root, err)
	}
	c := &cleaner{include: include, exclude: exclude, allowed: []string{real}, files: map[string]File{}, all: map[string]bool{}}
	if err := c.walk(real, "", nil); err != nil {
		return nil, fmt.Errorf("read source %s: %w", root, err)
	}
	// Path dependencies outside the root, and theirs in turn.
	seen := map[string]bool{}
	for {
		var next []string
		for _, d := range c.outsideDeps() {
			if !seen[d] {
				seen[d] = true
				next = append(next, d)
			}
		}
		if len(next) == 0 {
			break
		}
		for _, d := range next {
			dir, err := filepath.EvalSymlinks(filepath.Join(real, filepath.FromSlash(d)))
			if err != nil {
				continue // missing: cargo says which dependency
			}
			if within(real, dir) {
				return nil, fmt.Errorf("path dependency %s contains the workspace %s: smelt cannot lay it out; make the dependency a workspace member or move the workspace root up", d, root)
			}
			c.allowed = append(c.allowed, dir)
			if err := c.walk(dir, d, nil); err != nil {
				return nil, fmt.Errorf("read path dependency %s: %w", d, err)
			}
		}
	}
	if err := c.includes(); err != nil {
		return nil, err
	}
	t := Tree(mapValues(c.files))
	sort.Slice(t, func(i, j int) bool { return t[i].Path < t[j].Path })
	return t, nil
}

// within reports whether p is dir or lies under it (real paths).
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// walk reads the real directory dir as the slash path prefix ("" for the
// root). hops are the real directories the symbolic links followed so far
// left from, to stop at a link that loops back.
func (c *cleaner) walk(dir, prefix string, hops []string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrPermission) {
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			return err
		}
		if p == dir {
			return nil
		}
		local, _ := filepath.Rel(dir, p)
		local = filepath.ToSlash(local)
		rel := path.Join(prefix, local)
		if d.IsDir() {
			if skipDir(p, local, d.Name()) && !c.match(c.include, rel+"/x") {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			info, err := os.Stat(p)
			if err != nil {
				return nil // dangling
			}
			if info.IsDir() {
				return c.follow(p, rel, d.Name(), hops)
			}
			if !info.Mode().IsRegular() {
				return nil
			}
			// A linked file counts as its content.
		} else if !d.Type().IsRegular() {
			return nil // sockets, fifos
		}
		c.all[rel] = true
		if c.match(c.exclude, rel) || !(kept(rel) || c.match(c.include, rel)) {
			return nil
		}
		f, err := readFile(p, rel)
		if errors.Is(err, fs.ErrPermission) {
			return nil
		}
		if err != nil {
			return err
		}
		c.files[rel] = f
		return nil
	})
}

// follow walks a symbolic link to a directory as the directory at rel, if
// it stays inside what the build may read and does not loop.
func (c *cleaner) follow(link, rel, name string, hops []string) error {
	if skipDir(link, rel, name) && !c.match(c.include, rel+"/x") {
		return nil
	}
	target, err := filepath.EvalSymlinks(link)
	if err != nil {
		return nil
	}
	from, err := filepath.EvalSymlinks(filepath.Dir(link))
	if err != nil {
		return nil
	}
	inside := false
	for _, a := range c.allowed {
		if within(target, a) {
			inside = true
			// Not into what the walk skips (target/, .git, ...): a link
			// such as latest -> target/release would bring in generated
			// files that change with every build.
			r, _ := filepath.Rel(a, target)
			d, sub := a, ""
			for _, name := range strings.Split(filepath.ToSlash(r), "/") {
				if name == "." {
					break
				}
				d, sub = filepath.Join(d, name), path.Join(sub, name)
				if skipDir(d, sub, name) {
					return nil
				}
			}
		}
	}
	if !inside {
		return nil
	}
	for _, h := range append(hops, from) {
		if within(h, target) {
			return nil // a loop: the target holds the link
		}
	}
	return c.walk(target, rel, append(slices.Clip(hops), from))
}

// outsideDeps lists the directories of path dependencies that lie outside
// the root ("../lib"), from the manifests read so far. Manifests that do not
// parse are left to the skeleton, which reports them with their line.
func (c *cleaner) outsideDeps() []string {
	var out []string
	for rel, f := range c.files {
		if path.Base(rel) != "Cargo.toml" {
			continue
		}
		var m map[string]any
		if toml.Unmarshal(f.Data, &m) != nil {
			continue
		}
		for _, p := range manifestPaths(m) {
			if path.IsAbs(p) || strings.Contains(p, "\\") {
				continue
			}
			if d := path.Join(path.Dir(rel), p); d == ".." || strings.HasPrefix(d, "../") {
				out = append(out, d)
			}
		}
	}
	sort.Strings(out)
	return out
}

// manifestPaths lists the path = "..." of a manifest's dependencies (every
// dependency table, per target too), [workspace.dependencies], [patch] and
// [replace].
func manifestPaths(m map[string]any) []string {
	var out []string
	deps := func(v any) {
		t, _ := v.(map[string]any)
		for _, d := range t {
			if dt, ok := d.(map[string]any); ok {
				if p, ok := dt["path"].(string); ok {
					out = append(out, p)
				}
			}
		}
	}
	tables := func(m map[string]any) {
		for _, k := range []string{"dependencies", "dev-dependencies", "build-dependencies", "dev_dependencies", "build_dependencies"} {
			deps(m[k])
		}
	}
	tables(m)
	if ts, ok := m["target"].(map[string]any); ok {
		for _, t := range ts {
			if tt, ok := t.(map[string]any); ok {
				tables(tt)
			}
		}
	}
	if ws, ok := m["workspace"].(map[string]any); ok {
		deps(ws["dependencies"])
	}
	if ps, ok := m["patch"].(map[string]any); ok {
		for _, p := range ps {
			deps(p)
		}
	}
	deps(m["replace"])
	return out
}

// includes adds the files named by include_str!/include_bytes! (once:
// included files are not Rust, so they include nothing further).
func (c *cleaner) includes() error {
	for _, f := range mapValues(c.files) {
		if !strings.HasSuffix(f.Path, ".rs") {
			continue
		}
		var rels []string
		for _, m := range includeMacro.FindAllSubmatch(f.Data, -1) {
			rels = append(rels, path.Clean(path.Join(path.Dir(f.Path), string(m[1]))))
		}
		if ms := includeManifest.FindAllSubmatch(f.Data, -1); ms != nil {
			pkg := c.packageDir(f.Path)
			for _, m := range ms {
				rels = append(rels, path.Clean(path.Join(pkg, strings.TrimPrefix(string(m[1]), "/"))))
			}
		}
		for _, rel := range rels {
			if _, ok := c.files[rel]; ok || !c.all[rel] || c.match(c.exclude, rel) {
				continue
			}
			inc, err := c.read(rel)
			if errors.Is(err, fs.ErrPermission) {
				continue
			}
			if err != nil {
				return err
			}
			c.files[rel] = inc
		}
	}
	return nil
}

// packageDir is the directory of the package a source file belongs to:
// the nearest one above it with a Cargo.toml.
func (c *cleaner) packageDir(rel string) string {
	for d := path.Dir(rel); ; d = path.Dir(d) {
		if _, ok := c.files[path.Join(d, "Cargo.toml")]; ok || d == "." || d == "/" || path.Base(d) == ".." {
			return d
		}
	}
}

// read reads a file seen by the walk, by its slash path, through the
// links the walk followed (the path as laid out, not the real one).
func (c *cleaner) read(rel string) (File, error) {
	return readFile(filepath.Join(c.allowed[0], filepath.FromSlash(rel)), rel)
}

func mapValues(m map[string]File) []File {
	out := make([]File, 0, len(m))
	for _, f := range m {
		out = append(out, f)
	}
	return out
}

// readFile reads one file: open, fstat (size and mode), read, close, and
// nothing more; a large workspace's source is mostly system calls.
func readFile(p, rel string) (File, error) {
	fh, err := os.Open(p)
	if err != nil {
		return File{}, fmt.Errorf("read %s: %w", p, err)
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return File{}, fmt.Errorf("read %s: %w", p, err)
	}
	data := make([]byte, info.Size())
	if _, err := io.ReadFull(fh, data); err != nil {
		// Changed while being read: read it whole, as it is now.
		if data, err = os.ReadFile(p); err != nil {
			return File{}, fmt.Errorf("read %s: %w", p, err)
		}
	}
	return File{Path: rel, Hash: store.HashBytes(data), Exec: info.Mode()&0o111 != 0, Data: data}, nil
}

// FromMap builds a tree from in-memory files (used for the deps skeleton).
func FromMap(m map[string][]byte) Tree {
	t := make(Tree, 0, len(m))
	for p, d := range m {
		t = append(t, File{Path: p, Hash: store.HashBytes(d), Data: d})
	}
	sort.Slice(t, func(i, j int) bool { return t[i].Path < t[j].Path })
	return t
}

// Map returns the tree as path → contents.
func (t Tree) Map() map[string][]byte {
	m := make(map[string][]byte, len(t))
	for _, f := range t {
		m[f.Path] = f.Data
	}
	return m
}

// Get returns the file at p.
func (t Tree) Get(p string) (File, bool) {
	i := sort.Search(len(t), func(i int) bool { return t[i].Path >= p })
	if i < len(t) && t[i].Path == p {
		return t[i], true
	}
	return File{}, false
}

// Hash identifies the tree by its paths, exec bits and contents.
func (t Tree) Hash() string {
	var b strings.Builder
	for _, f := range t {
		fmt.Fprintf(&b, "%s\x00%v\x00%s\n", f.Path, f.Exec, f.Hash)
	}
	return store.HashBytes([]byte(b.String()))
}

// BaseTime is the mtime of source files when no inherited artifacts constrain
// it: a fixed time, so that layouts are reproducible.
var BaseTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// FileTime records one source file as a step saw it: the mtime it was
// laid out with (the mtime rule), kept in the step's result.
type FileTime struct {
	Path  string `json:"p"`
	Hash  string `json:"h"`
	MTime int64  `json:"m"`
}

// MTimes applies the mtime rule (docs/design.md, "The mtime rule"). prev is the source that
// produced the inherited artifacts and newest the newest mtime in them. A file
// identical to its counterpart in prev keeps that file's mtime, so cargo
// recompiles nothing for it; every other file gets a time strictly newer than
// all inherited artifacts, so cargo can never take it for fresh. tick is the
// file system's mtime granularity (Tick): "newer" must survive its rounding.
func MTimes(t Tree, prev []FileTime, newest int64, now time.Time, tick time.Duration) []FileTime {
	old := sourceMap(prev)
	changed := now.UnixNano()
	if min := newest + int64(tick); changed < min {
		changed = min
	}
	if len(prev) == 0 && newest == 0 {
		changed = BaseTime
	}
	out := make([]FileTime, len(t))
	for i, f := range t {
		m := changed
		if o, ok := old[f.Path]; ok && o.Hash == f.Hash {
			m = o.MTime
		}
		out[i] = FileTime{Path: f.Path, Hash: f.Hash, MTime: m}
	}
	return out
}

// MTimesOver applies the mtime rule when the inherited artifacts are the
// parent's laid over the step's own from its last success (store.Overlay).
// parent is the source of the parent's artifacts and parentNewest the newest
// mtime among those that source files can make stale (the workspace's own
// units); own is the source of the step's last success and ownUnits the
// mtimes of its such artifacts that survived the overlay, in ascending order.
//
// The rule keeps an invariant: a unit built from other content of a file is
// older than the file's time, and one built from its content is not older.
// Each side bounds a file's time from below. Where the file differs from the
// side's, the bound is newer than all the side's units. Where it equals it,
// the bound for the parent is its time for the file; for the step's own,
// just newer than its units older than its time for the file: by the
// invariant those are the ones built from other content. The file gets the
// larger bound, the oldest time that keeps every such unit stale, so that the
// units of either side built from this content stay fresh; except that where
// the parent has no such units (parentNewest 0: a deps step's), a file equal
// to the step's own keeps at least the step's own time for it, exactly.
// A later time is always safe: it can only make more units stale.
func MTimesOver(t Tree, parent []FileTime, parentNewest int64, own []FileTime, ownUnits []int64, tick time.Duration) []FileTime {
	par, mine := sourceMap(parent), sourceMap(own)
	var ownNewest int64
	if len(ownUnits) > 0 {
		ownNewest = ownUnits[len(ownUnits)-1]
	}
	out := make([]FileTime, len(t))
	for i, f := range t {
		var lo int64 // 0: no bound
		if p, ok := par[f.Path]; ok && p.Hash == f.Hash {
			lo = p.MTime
		} else if parentNewest > 0 {
			lo = parentNewest + int64(tick)
		}
		if o, ok := mine[f.Path]; ok && o.Hash == f.Hash {
			// The newest of the units older than o.MTime.
			if k := sort.Search(len(ownUnits), func(k int) bool { return ownUnits[k] >= o.MTime }); k > 0 {
				lo = max(lo, ownUnits[k-1]+int64(tick))
			}
			if parentNewest == 0 {
				// No unit of the parent's can turn stale: keep the
				// step's own time exactly. Cargo compares some times
				// for equality: a build script that names no
				// rerun-if-changed reruns (and its package rebuilds)
				// when the newest time among its package's files is not
				// the one it ran with.
				lo = max(lo, o.MTime)
			}
		} else if ownNewest > 0 {
			lo = max(lo, ownNewest+int64(tick))
		}
		if lo == 0 {
			lo = BaseTime
		}
		out[i] = FileTime{Path: f.Path, Hash: f.Hash, MTime: lo}
	}
	return out
}

// Tick returns the granularity of file modification times in dir's file
// system, by setting one and reading it back: 1ns on ext4, xfs, btrfs and
// tmpfs; coarser on some network and FAT file systems. A time meant to be
// newer than another must be at least this much newer, or rounding could
// make the two equal and cargo take a changed file for fresh.
func Tick(dir string) (time.Duration, error) {
	f, err := os.CreateTemp(dir, ".mtime-probe-")
	if err != nil {
		return 0, fmt.Errorf("probe mtime granularity in %s: %w", dir, err)
	}
	f.Close()
	defer os.Remove(f.Name())
	want := time.Unix(1_600_000_000, 123_456_789)
	if err := os.Chtimes(f.Name(), want, want); err != nil {
		return 0, fmt.Errorf("probe mtime granularity in %s: %w", dir, err)
	}
	fi, err := os.Stat(f.Name())
	if err != nil {
		return 0, fmt.Errorf("probe mtime granularity in %s: %w", dir, err)
	}
	lost := want.Sub(fi.ModTime())
	for _, t := range []time.Duration{time.Nanosecond, time.Microsecond, time.Millisecond, 10 * time.Millisecond, time.Second} {
		if lost < t && lost >= 0 {
			return t, nil
		}
	}
	return 2 * time.Second, nil
}

func sourceMap(files []FileTime) map[string]FileTime {
	m := make(map[string]FileTime, len(files))
	for _, f := range files {
		m[f.Path] = f
	}
	return m
}

// Depth is how many directories above the workspace root the tree reaches:
// 1 for a path dependency at "../lib", 0 for most workspaces.
func (t Tree) Depth() int {
	n := 0
	for _, f := range t {
		k := 0
		for p := f.Path; strings.HasPrefix(p, "../"); p = p[3:] {
			k++
		}
		n = max(n, k)
	}
	return n
}

// Nest is where a workspace at root lies in a layout under base, for a
// tree of the given Depth: base itself, or base/<root's last depth path
// components>, so that a path dependency outside the root has the same
// place relative to it as in the project (and cargo the same paths).
func Nest(base, root string, depth int) string {
	var names []string
	for d := filepath.Clean(root); len(names) < depth && filepath.Dir(d) != d; d = filepath.Dir(d) {
		names = append([]string{filepath.Base(d)}, names...)
	}
	for len(names) < depth { // a root too close to / to have that many parents
		names = append(names, "_")
	}
	return filepath.Join(append([]string{base}, names...)...)
}

// Layout makes dir hold exactly the tree (leaving dir/target alone), with the
// mtimes given, rewriting only files whose contents differ. A tree that
// reaches above the root (Depth) is laid out from dir's ancestor at that
// depth (dir comes from Nest), which then holds exactly the tree.
func Layout(dir string, t Tree, times []FileTime) error {
	top, prefix := dir, ""
	for range t.Depth() {
		prefix = path.Join(filepath.Base(top), prefix)
		top = filepath.Dir(top)
	}
	if prefix == "" {
		return layout(dir, t, times, "target")
	}
	moved := make(Tree, len(t))
	for i, f := range t {
		f.Path = path.Join(prefix, f.Path)
		moved[i] = f
	}
	return layout(top, moved, times, path.Join(prefix, "target"))
}

// layout makes dir hold exactly the tree, leaving the directory keep alone.
func layout(dir string, t Tree, times []FileTime, keep string) error {
	want := make(map[string]bool, len(t))
	for _, f := range t {
		want[f.Path] = true
	}
	// Remove stale files (and directories left empty) from an earlier layout.
	var stale []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return filepath.SkipAll
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == keep && d.IsDir() {
			return filepath.SkipDir
		}
		if !d.IsDir() && !want[rel] {
			stale = append(stale, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lay out source in %s: %w", dir, err)
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	if err := removeEmptyDirs(dir, keep); err != nil {
		return err
	}
	for i, f := range t {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		mode := os.FileMode(0o644)
		if f.Exec {
			mode = 0o755
		}
		if cur, err := os.ReadFile(p); err != nil || !bytes.Equal(cur, f.Data) {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			// What stands there may be a directory from an earlier layout.
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			if err := os.WriteFile(p, f.Data, mode); err != nil {
				return fmt.Errorf("lay out %s: %w", p, err)
			}
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		mt := time.Unix(0, times[i].MTime)
		if err := os.Chtimes(p, mt, mt); err != nil {
			return err
		}
	}
	return nil
}

// removeEmptyDirs removes the directories under dir (but not dir/keep)
// that an earlier layout left empty, deepest first.
func removeEmptyDirs(dir, keep string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir {
			if rel, _ := filepath.Rel(dir, p); filepath.ToSlash(rel) == keep {
				return filepath.SkipDir
			}
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if entries, err := os.ReadDir(dirs[i]); err == nil && len(entries) == 0 {
			if err := os.Remove(dirs[i]); err != nil {
				return err
			}
		}
	}
	return nil
}
