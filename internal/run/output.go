package run

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"smelt/internal/cargo"
	"smelt/internal/store"
)

// Materialize writes the entries of an output layer that keep() accepts to a
// read-only directory in the store, named by their content, and returns it.
// It is published with one rename, so a directory that exists is complete.
func Materialize(st *store.Store, layer string, keep func(store.Entry) bool) (string, error) {
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
	dir := filepath.Join(st.Dir, "out", sel.ContentID())
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	tmp, err := st.TempDir("out-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := st.Restore(tmp, withDirs(sel)); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			return dir, nil // another smelt published it first
		}
		return "", err
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
func BinsOf(r *store.Result, pkg string) []string {
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
func RestoreArtifacts(st *store.Store, r *store.Result, dir string, link bool) error {
	if r.Artifacts == "" {
		return fmt.Errorf("step %s (kind %s) keeps no artifacts", r.Step, r.Kind)
	}
	tree, err := st.Flatten(r.Artifacts)
	if err != nil {
		return err
	}
	if link {
		return st.RestoreLinking(dir, tree, cargo.Replaced)
	}
	return st.Restore(dir, tree)
}
