package run

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"smelt/internal/cargo"
	"smelt/internal/store"
)

// LinkResult links the output of a step's result (only the binaries of
// the workspace member member, if not "") at link (see LinkOutput).
func LinkResult(st *store.Store, res *Result, member, link string) (string, error) {
	var keep func(store.Entry) bool
	if member != "" {
		bins := BinsOf(res, member)
		if len(bins) == 0 {
			return "", fmt.Errorf("workspace member %s has no binaries to link (`cargo build -p %s` built none): name a member with a [[bin]] or src/main.rs", member, member)
		}
		keep = BinFilter(bins)
	}
	if res.Output == "" {
		return "", fmt.Errorf("step %s (kind %s) has no output to link", res.Step, res.Kind)
	}
	return LinkOutput(st, res.Output, keep, link)
}

// LinkOutput writes the entries of an output layer that keep() accepts
// to a directory in the store of link's own and points link (e.g.
// ./result) at it. The directory holds copies (reflinks where the file
// system has them), never the store's objects, and no other link shares
// it: a write through the link (`strip result/bin/app`) reaches neither
// the store nor another project. The link is recorded as a gc root, with
// the files' stat identity: a later build reuses the directory only if
// nothing in it changed, else writes it afresh.
func LinkOutput(st *store.Store, layer store.LayerID, keep func(store.Entry) bool, link string) (string, error) {
	link, err := filepath.Abs(link)
	if err != nil {
		return "", err
	}
	tree, err := st.Flatten(layer)
	if err != nil {
		return "", err
	}
	sel := store.Tree{}
	for p, e := range tree {
		if keep == nil || keep(e) {
			sel[p] = e
		}
	}
	if len(sel) == 0 {
		return "", fmt.Errorf("nothing to output")
	}
	lid := linkID(link)
	dir := filepath.Join(outRoot(st), lid+"-"+string(sel.ContentID()[:16]))
	if r := readRoot(st, link); r != nil && r.Dir == dir && r.untouched() {
		return dir, Link(dir, link)
	}
	tmp, err := st.TempDir("out-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := st.Restore(tmp, withDirs(sel), store.RestoreOptions{}); err != nil {
		return "", err
	}
	files, err := identities(tmp) // a rename keeps them
	if err != nil {
		return "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	if err := Link(dir, link); err != nil {
		return "", err
	}
	if err := saveRoot(st, &root{Link: link, Dir: dir, Files: files}); err != nil {
		return "", err
	}
	// The link's earlier directories: nothing points at them any more.
	old, _ := filepath.Glob(filepath.Join(outRoot(st), lid+"-*"))
	for _, o := range old {
		if o != dir {
			os.RemoveAll(o)
		}
	}
	return dir, nil
}

// withDirs adds the parent directories of every entry.
func withDirs(t store.Tree) store.Tree {
	out := store.Tree{}
	for p, e := range t {
		out[p] = e
		for d := filepath.ToSlash(filepath.Dir(p)); d != "." && d != "/"; d = filepath.ToSlash(filepath.Dir(d)) {
			out[d] = store.Entry{Path: d, Type: store.TypeDir}
		}
	}
	return out
}

// Link points link (e.g. ./result) at target, replacing an earlier link
// atomically. It refuses to replace anything that is not a symlink.
func Link(target, link string) error {
	if info, err := os.Lstat(link); err == nil && info.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("%s exists and is not a symlink: move it away so smelt can link the result there", link)
	}
	tmp := link + ".smelt-tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

// BinsOf lists the binaries of a package step's result that belong to the
// workspace package pkg.
func BinsOf(r *Result, pkg string) []string {
	var out []string
	for bin, owner := range r.Bins {
		if owner == pkg {
			out = append(out, bin)
		}
	}
	sort.Strings(out)
	return out
}

// BinFilter keeps only the named binaries of an output.
func BinFilter(bins []string) func(store.Entry) bool {
	want := map[string]bool{}
	for _, b := range bins {
		want["bin/"+b] = true
	}
	return func(e store.Entry) bool { return want[e.Path] }
}

// RestoreArtifacts writes the target/ that a step left behind into dir, with
// its mtimes, as the step's heirs see it.
// With link, compiled crates are hard links into the store: cargo replaces
// such files rather than rewriting them, but nothing else may write them.
func RestoreArtifacts(st *store.Store, r *Result, dir string, link bool) error {
	if r.Artifacts == "" {
		return fmt.Errorf("step %s (kind %s) keeps no artifacts", r.Step, r.Kind)
	}
	tree, err := st.Flatten(r.Artifacts)
	if err != nil {
		return err
	}
	var o store.RestoreOptions
	if link {
		o.Linkable = cargo.Replaced
	}
	return st.Restore(dir, tree, o)
}
