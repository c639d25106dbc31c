package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"smelt/internal/reapi"
)

// cache is the worker's own content-addressed store of every blob it
// downloaded or produced (DIR/cas/ab/abcd…, read-only files): an action
// fetches from the engine only the blobs no earlier action brought here.
type cache struct {
	dir string
	cas *reapi.CAS
}

func (c *cache) path(d *repb.Digest) string {
	h := d.GetHash()
	if len(h) < 2 {
		h = "__" + h
	}
	return filepath.Join(c.dir, h[:2], h)
}

func (c *cache) has(d *repb.Digest) bool {
	info, err := os.Stat(c.path(d))
	return err == nil && info.Size() == d.SizeBytes
}

// put writes a blob atomically (tmp + rename).
func (c *cache) put(d *repb.Digest, data []byte) error {
	p := c.path(d)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	os.Chmod(f.Name(), 0o444)
	return os.Rename(f.Name(), p)
}

// adopt makes a file the action produced a cache entry (hard link, else
// copy), so that an heir's input of the same bytes is found here.
func (c *cache) adopt(d *repb.Digest, path string) error {
	if c.has(d) {
		return nil
	}
	p := c.path(d)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(p), fmt.Sprintf(".tmp-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Link(path, tmp); err != nil {
		if err := copyFile(path, tmp, 0o444); err != nil {
			return err
		}
	}
	return os.Rename(tmp, p)
}

// ensure brings the blobs the cache lacks from the engine, and says how
// many it fetched and their bytes.
func (c *cache) ensure(ctx context.Context, ds []*repb.Digest) (n int, size int64, err error) {
	seen := map[string]bool{}
	var want []*repb.Digest
	for _, d := range ds {
		k := reapi.Key(d)
		if seen[k] || c.has(d) {
			continue
		}
		seen[k] = true
		want = append(want, d)
		size += d.SizeBytes
	}
	if len(want) == 0 {
		return 0, 0, nil
	}
	for _, d := range want {
		if err := os.MkdirAll(filepath.Dir(c.path(d)), 0o755); err != nil {
			return 0, 0, err
		}
	}
	err = c.cas.Fetch(ctx, want, c.put, c.path)
	return len(want), size, err
}

// readProto reads a message blob through the cache.
func (c *cache) readProto(ctx context.Context, d *repb.Digest, m proto.Message) error {
	if _, _, err := c.ensure(ctx, []*repb.Digest{d}); err != nil {
		return err
	}
	b, err := os.ReadFile(c.path(d))
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("parse blob %s: %w", reapi.Key(d), err)
	}
	return nil
}

// inputTree reads the input root's Directory messages: a new root's in
// one GetTree call (a step's tree is many levels deep, and most of its
// directories are new when target/ changed), then level by level, each
// level in one batch of the blobs neither that call nor the cache had.
func (c *cache) inputTree(ctx context.Context, root *repb.Digest) (map[string]*repb.Directory, error) {
	dirs := map[string]*repb.Directory{}
	var got map[string]*repb.Directory
	if !c.has(root) {
		// Only a shortcut: what it misses comes below.
		got, _ = c.cas.Tree(ctx, root)
	}
	level := []*repb.Digest{root}
	for len(level) > 0 {
		var lack []*repb.Digest
		for _, d := range level {
			if got[reapi.Key(d)] == nil {
				lack = append(lack, d)
			}
		}
		if _, _, err := c.ensure(ctx, lack); err != nil {
			return nil, fmt.Errorf("fetch the input tree: %w", err)
		}
		var next []*repb.Digest
		for _, d := range level {
			if dirs[reapi.Key(d)] != nil {
				continue
			}
			if dir := got[reapi.Key(d)]; dir != nil {
				dirs[reapi.Key(d)] = dir
				for _, sub := range dir.Directories {
					next = append(next, sub.Digest)
				}
				continue
			}
			dir := &repb.Directory{}
			b, err := os.ReadFile(c.path(d))
			if err != nil {
				return nil, err
			}
			if err := proto.Unmarshal(b, dir); err != nil {
				return nil, fmt.Errorf("parse directory %s: %w", reapi.Key(d), err)
			}
			dirs[reapi.Key(d)] = dir
			for _, sub := range dir.Directories {
				next = append(next, sub.Digest)
			}
		}
		level = next
	}
	return dirs, nil
}

// files lists the digests of every file of the tree.
func files(dirs map[string]*repb.Directory) []*repb.Digest {
	var out []*repb.Digest
	for _, d := range dirs {
		for _, f := range d.Files {
			out = append(out, f.Digest)
		}
	}
	return out
}

// LinkProperty marks an input file (a NodeProperty of its FileNode, any
// value) that the action replaces but never rewrites in place, such as a
// crate rustc compiled (smelt's cargo.Replaced rule): the worker hard-links
// it from its cache instead of copying it.
const LinkProperty = "smelt-link"

func linkable(f *repb.FileNode) bool {
	for _, p := range f.GetNodeProperties().GetProperties() {
		if p.Name == LinkProperty {
			return true
		}
	}
	return false
}

// materialise writes the tree under dst: files copied from the cache (an
// action may rewrite its inputs, which must not change the cache) or,
// when marked with LinkProperty, hard-linked; with their executable bit
// and, where the client set it, their mtime. With warm, dst is the last
// action's root as it left it (warm: its files, by path below dst): a file
// that is still what this tree wants stays (only its mode and mtime are
// set), the rest is replaced or removed. Creating files is what costs
// here (about half a millisecond each on this machine's ext4), and an
// heir's action on the same worker wants most of its parent's files.
func (c *cache) materialise(dst string, dirs map[string]*repb.Directory, root *repb.Digest, warm map[string]knownFile) (kept int, err error) {
	type job struct {
		src, dst string
		mode     os.FileMode
		mtime    time.Time
		link     bool
		keep     bool // the warm root's file is the one wanted
	}
	var jobs []job
	var walk func(dir, rel string, d *repb.Digest) error
	walk = func(dir, rel string, d *repb.Digest) error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		node := dirs[reapi.Key(d)]
		if node == nil {
			return fmt.Errorf("directory %s missing from the input tree", reapi.Key(d))
		}
		if warm != nil {
			// What the last action left here that this one lacks.
			want := map[string]bool{}
			for _, f := range node.Files {
				want[f.Name] = true
			}
			for _, s := range node.Symlinks {
				want[s.Name] = true
			}
			for _, sub := range node.Directories {
				want[sub.Name] = true
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if !want[e.Name()] {
					if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
						return err
					}
				}
			}
		}
		for _, f := range node.Files {
			if !local(f.Name) {
				return fmt.Errorf("input file name %q is not a plain name", f.Name)
			}
			j := job{src: c.path(f.Digest), dst: filepath.Join(dir, f.Name), mode: 0o644, link: linkable(f)}
			if f.IsExecutable {
				j.mode = 0o755
			}
			if mt := f.GetNodeProperties().GetMtime(); mt != nil {
				j.mtime = mt.AsTime()
			}
			if warm != nil {
				if j.keep = c.still(j.dst, path.Join(rel, f.Name), f.Digest, j.link, warm); j.keep {
					kept++
				} else if err := os.RemoveAll(j.dst); err != nil {
					// Never written through: it may be a link into the cache.
					return err
				}
			}
			jobs = append(jobs, j)
		}
		for _, s := range node.Symlinks {
			if !local(s.Name) {
				return fmt.Errorf("input symlink name %q is not a plain name", s.Name)
			}
			p := filepath.Join(dir, s.Name)
			if warm != nil {
				if t, err := os.Readlink(p); err == nil && t == s.Target {
					continue
				}
				if err := os.RemoveAll(p); err != nil {
					return err
				}
			}
			if err := os.Symlink(s.Target, p); err != nil {
				return err
			}
		}
		for _, sub := range node.Directories {
			if !local(sub.Name) {
				return fmt.Errorf("input directory name %q is not a plain name", sub.Name)
			}
			p := filepath.Join(dir, sub.Name)
			if warm != nil {
				if info, err := os.Lstat(p); err == nil && !info.IsDir() {
					if err := os.Remove(p); err != nil {
						return err
					}
				}
			}
			if err := walk(p, path.Join(rel, sub.Name), sub.Digest); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(dst, "", root); err != nil {
		return kept, err
	}
	// A few copies at once: most inputs are small files.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan job)
	)
	for range 4 {
		wg.Go(func() {
			for j := range next {
				var err error
				switch {
				case j.keep:
					err = os.Chmod(j.dst, j.mode)
				case !j.link || os.Link(j.src, j.dst) != nil || os.Chmod(j.dst, j.mode) != nil:
					err = copyFile(j.src, j.dst, j.mode)
				}
				if err == nil && !j.mtime.IsZero() {
					err = os.Chtimes(j.dst, j.mtime, j.mtime)
				}
				if err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	return kept, first
}

// still reports whether the warm root's file p (rel below it) holds the
// blob d as an input must: a link into the cache for a linked input, else
// a file of its own (no write may reach the cache) that nothing touched
// since the last action's end (its inode, size and ctime as recorded).
func (c *cache) still(p, rel string, d *repb.Digest, link bool, warm map[string]knownFile) bool {
	var st syscall.Stat_t
	if syscall.Lstat(p, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return false
	}
	if link {
		var cs syscall.Stat_t
		return syscall.Stat(c.path(d), &cs) == nil && cs.Ino == st.Ino && cs.Dev == st.Dev
	}
	k, ok := warm[rel]
	return ok && st.Nlink == 1 && st.Ino == k.ino && uint64(st.Size) == k.size && st.Ctim.Nano() == k.ctime &&
		reapi.Key(k.d) == reapi.Key(d)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// local: a name within its directory (no separator, not . or ..).
func local(name string) bool {
	return name != "" && name != "." && name != ".." && filepath.Base(name) == name
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Chmod(dst, mode); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
