package depsrc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"smelt/internal/par"
	"smelt/internal/store"
)

// statFile records, in a vendored crate's directory, the stat identity
// (size, mtime) of each of its files when smelt put it there, and the hash
// and identity of its .cargo-checksum.json: checking a crate then costs a
// stat per file and no parsing of .cargo-checksum.json, and only a file
// whose identity changed is hashed against the checksum cargo would check
// it with. cargo reads only the files .cargo-checksum.json lists, and skips
// dot files in a crate's directory. It is text, one file a line ("size
// mtime path"; the first line "sums HASH size mtime"): parsing JSON for
// every file of a large lock file's crates took most of the check's time.
const statFile = ".smelt-stat"

// StatFile is not part of a vendored crate: what a copy of the vendored
// crates on another machine (an action's inputs) leaves out.
const StatFile = statFile

type checksums struct {
	Files   map[string]string `json:"files"`
	Package string            `json:"package"`
}

const checksumFile = ".cargo-checksum.json"

// record writes the stat identity of the crate directory dir.
func record(dir string) error {
	sp := filepath.Join(dir, checksumFile)
	b, err := os.ReadFile(sp)
	if err != nil {
		return err
	}
	var sums checksums
	if err := json.Unmarshal(b, &sums); err != nil {
		return err
	}
	si, err := os.Stat(sp)
	if err != nil {
		return err
	}
	var out strings.Builder
	fmt.Fprintf(&out, "sums %s %d %d\n", store.HashBytes(b), si.Size(), si.ModTime().UnixNano())
	for _, f := range sortedFiles(sums.Files) {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return err
		}
		fmt.Fprintf(&out, "%d %d %s\n", fi.Size(), fi.ModTime().UnixNano(), f)
	}
	tmp := filepath.Join(dir, statFile+".tmp")
	if err := os.WriteFile(tmp, []byte(out.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, statFile))
}

// quickCheck reports whether the crate directory dir is as its record
// says, by stat alone.
func quickCheck(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, statFile))
	if err != nil {
		return false
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var hash string
	var size, mtime int64
	if _, err := fmt.Sscanf(lines[0], "sums %s %d %d", &hash, &size, &mtime); err != nil || !sameStat(filepath.Join(dir, checksumFile), size, mtime) {
		return false
	}
	for _, l := range lines[1:] {
		sz, rest, ok1 := strings.Cut(l, " ")
		mt, f, ok2 := strings.Cut(rest, " ")
		size, err1 := strconv.ParseInt(sz, 10, 64)
		mtime, err2 := strconv.ParseInt(mt, 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || !sameStat(filepath.Join(dir, filepath.FromSlash(f)), size, mtime) {
			return false
		}
	}
	return true
}

func sameStat(p string, size, mtime int64) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Size() == size && fi.ModTime().UnixNano() == mtime
}

// recordedSums is the hash of .cargo-checksum.json that dir's record
// holds, or "" if none.
func recordedSums(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, statFile))
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(string(b), "\n")
	var hash string
	var size, mtime int64
	if _, err := fmt.Sscanf(first, "sums %s %d %d", &hash, &size, &mtime); err != nil {
		return ""
	}
	return hash
}

// checkCrate checks the vendored crate directory dir against its
// .cargo-checksum.json and returns what is wrong ("" if nothing) and the
// hashes of the files found changed. With full, every file is hashed;
// else only when the stat identity of some file changed.
func checkCrate(dir string, full bool) (why string, changed []string, err error) {
	if !full && quickCheck(dir) {
		return "", nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, checksumFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "missing from the store", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	var sums checksums
	if json.Unmarshal(b, &sums) != nil {
		return ".cargo-checksum.json unreadable", nil, nil
	}
	if h := recordedSums(dir); h != "" && h != store.HashBytes(b) {
		return ".cargo-checksum.json changed", nil, nil
	}
	var bad []string
	for _, f := range sortedFiles(sums.Files) {
		p := filepath.Join(dir, filepath.FromSlash(f))
		h, _, err := store.HashFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			bad = append(bad, f+" missing")
			continue
		}
		if err != nil {
			return "", nil, err
		}
		if h != sums.Files[f] {
			bad = append(bad, f+" changed")
			changed = append(changed, sums.Files[f]+"\x00"+p)
		}
	}
	if len(bad) > 0 {
		if len(bad) > 3 {
			bad = append(bad[:3], fmt.Sprintf("and %d more", len(bad)-3))
		}
		return strings.Join(bad, ", "), changed, nil
	}
	record(dir) // intact: the new identities save the next check the hashing
	return "", nil, nil
}

func sortedFiles(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for f := range m {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// crates names the crate directories of a vendored set: those its pool
// list names if its crates are pooled, else those of its own directory.
func crates(st *store.Store, s *Sources) ([]string, error) {
	if s.Dir == PoolDir(st) {
		var names []string
		err := st.ReadJSON(filepath.Join("vendor", s.ID, PoolList), &names)
		if err == nil {
			return names, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Damage is a vendored crate found changed.
type Damage struct {
	Crate, Why string
	changed    []string // expected hash NUL path, of each changed file
}

// Check checks the crates of a vendored set against their
// .cargo-checksum.json (full: every file hashed; else only those whose
// stat identity changed since smelt put them there).
func Check(st *store.Store, s *Sources, full bool) ([]Damage, error) {
	names, err := crates(st, s)
	if err != nil {
		return nil, fmt.Errorf("check vendored sources %s: %w", s.Dir, err)
	}
	var mu sync.Mutex
	var out []Damage
	err = par.Each(runtime.GOMAXPROCS(0), names, func(n string) error {
		why, changed, err := checkCrate(filepath.Join(s.Dir, n), full)
		if err != nil {
			return fmt.Errorf("check vendored crate %s: %w", n, err)
		}
		if why != "" {
			mu.Lock()
			out = append(out, Damage{Crate: n, Why: why, changed: changed})
			mu.Unlock()
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Crate < out[j].Crate })
	return out, err
}

// Drop removes the damaged crates of a vendored set, the store objects
// their changed files are (vendored files are hard links to objects), and
// the set itself, so that the next fetch vendors them again.
func Drop(st *store.Store, s *Sources, damaged []Damage) error {
	tmp, err := st.TempDir("vendor-drop-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for i, d := range damaged {
		for _, c := range d.changed {
			hash, p, _ := strings.Cut(c, "\x00")
			st.DropObjectOf(store.ObjectID(hash), p)
		}
		err := os.Rename(filepath.Join(s.Dir, d.Crate), filepath.Join(tmp, fmt.Sprint(i)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("drop vendored crate %s: %w", d.Crate, err)
		}
	}
	if s.ID == "" {
		return nil
	}
	err = os.Rename(filepath.Join(Dir(st), s.ID), filepath.Join(tmp, "set"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("drop vendored set %s: %w", s.ID, err)
	}
	return nil
}

// describe is one line naming the damaged crates.
func describe(damaged []Damage) string {
	var parts []string
	for _, d := range damaged {
		parts = append(parts, d.Crate+" ("+d.Why+")")
	}
	return strings.Join(parts, "; ")
}

// VerifyPool hashes every file of every crate in the store's pool and of
// every vendored set of its own, against their .cargo-checksum.json. With
// repair it drops the damaged crates and the sets that use them, so that
// the next fetch vendors them again.
func VerifyPool(st *store.Store, repair bool) (checked int, damaged []Damage, err error) {
	sets, _ := os.ReadDir(Dir(st))
	pool := &Sources{Dir: PoolDir(st)}
	var users []*Sources // the sets that use the pool
	var all []Damage
	for _, e := range sets {
		if !e.IsDir() || filepath.Join(Dir(st), e.Name()) == PoolDir(st) {
			continue
		}
		s, ok := lookup(st, e.Name())
		if !ok {
			continue
		}
		if s.Dir == PoolDir(st) {
			users = append(users, s)
			continue
		}
		n, _ := crates(st, s)
		checked += len(n)
		d, err := Check(st, s, true)
		if err != nil {
			return checked, all, err
		}
		for i := range d {
			d[i].Crate = filepath.Join(s.ID, d[i].Crate)
		}
		all = append(all, d...)
		if repair && len(d) > 0 {
			if err := Drop(st, s, nil); err != nil {
				return checked, all, err
			}
		}
	}
	if n, err := crates(st, pool); err == nil {
		checked += len(n)
		d, err := Check(st, pool, true)
		if err != nil {
			return checked, all, err
		}
		all = append(all, d...)
		if repair && len(d) > 0 {
			bad := map[string]bool{}
			for _, x := range d {
				bad[x.Crate] = true
			}
			if err := Drop(st, pool, d); err != nil {
				return checked, all, err
			}
			for _, s := range users {
				var names []string
				if st.ReadJSON(filepath.Join("vendor", s.ID, PoolList), &names) == nil && !slices.ContainsFunc(names, func(n string) bool { return bad[n] }) {
					continue
				}
				if err := Drop(st, s, nil); err != nil {
					return checked, all, err
				}
			}
		}
	}
	return checked, all, nil
}
