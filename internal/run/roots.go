package run

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"smelt/internal/store"
)

// root records a result link that `smelt build` made (./result), as Nix's
// gcroots do: gc keeps the output directory the link still points at.
// Files is the stat identity (size, mtime, ctime, inode) of each file of
// that directory when smelt wrote it: a write through the link (`strip
// result/bin/app`) changes it, and the next build writes the directory
// afresh instead of handing out what the user changed.
type root struct {
	Link  string              `json:"link"`
	Dir   string              `json:"dir"`
	Files map[string][4]int64 `json:"files"`
}

func rootRel(link string) string {
	return filepath.Join("gcroots", store.HashBytes([]byte(link))[:32]+".json")
}

// linkID names a link's output directories.
func linkID(link string) string { return store.HashBytes([]byte(link))[:16] }

// readRoot returns the root of the link at the absolute path link, or nil.
func readRoot(st *store.Store, link string) *root {
	var r root
	if st.ReadJSON(rootRel(link), &r) != nil || r.Link != link {
		return nil
	}
	return &r
}

// saveRoot records r.
func saveRoot(st *store.Store, r *root) error {
	if err := os.MkdirAll(filepath.Join(st.Dir, "gcroots"), 0o755); err != nil {
		return err
	}
	return st.WriteJSON(rootRel(r.Link), r)
}

// identities returns the stat identity of every file under dir, by path
// relative to it.
func identities(dir string) (map[string][4]int64, error) {
	out := map[string][4]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = identity(fi)
		return nil
	})
	return out, err
}

func identity(fi fs.FileInfo) [4]int64 {
	id := [4]int64{fi.Size(), fi.ModTime().UnixNano(), 0, 0}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id[2] = st.Ctim.Nano()
		id[3] = int64(st.Ino)
	}
	return id
}

// untouched reports whether r's directory holds exactly the files it
// was written with, none changed since (by stat identity).
func (r *root) untouched() bool {
	have, err := identities(r.Dir)
	if err != nil || len(have) != len(r.Files) {
		return false
	}
	for p, id := range r.Files {
		if have[p] != id {
			return false
		}
	}
	return true
}

// liveRoots returns the names of the directories under out/ that a
// recorded link still points at, and forgets the other roots.
func liveRoots(st *store.Store) map[string]bool {
	live := map[string]bool{}
	dir := filepath.Join(st.Dir, "gcroots")
	entries, _ := os.ReadDir(dir)
	out := outRoot(st) + string(filepath.Separator)
	for _, e := range entries {
		var r root
		if err := st.ReadJSON(filepath.Join("gcroots", e.Name()), &r); err == nil {
			if t, err := filepath.EvalSymlinks(r.Link); err == nil {
				if d, err := filepath.EvalSymlinks(r.Dir); err == nil && t == d {
					if name, ok := strings.CutPrefix(r.Dir, out); ok && !strings.Contains(name, string(filepath.Separator)) {
						live[name] = true
						continue
					}
				}
			}
		}
		os.Remove(filepath.Join(dir, e.Name()))
	}
	return live
}
