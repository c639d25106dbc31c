// Package depsrc fetches the sources of every dependency in Cargo.lock once,
// verified against the lock file's checksums, into the store, so that every
// build step after it runs offline.
//
// Crates from crates.io that cargo has downloaded before are unpacked from
// its download cache, checked against the lock file (see fromCache); for
// anything else it drives `cargo vendor`, so registry mirrors, alternate
// registries and git dependencies configured for cargo keep working exactly
// as cargo sees them.
package depsrc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"smelt/internal/cargo"
	"smelt/internal/store"
	"sort"
	"strings"
)

// Sources is a vendored dependency set.
type Sources struct {
	ID     string // hash of the Cargo.lock it was made from
	Dir    string // the vendored crates
	Config string // a cargo config file that points every source at Dir
}

// ID is the vendor id for a Cargo.lock's contents.
func ID(lock []byte) string { return store.HashBytes(append([]byte("vendor-1\x00"), lock...)) }

// Lookup returns the vendored sources for id if they are in the store and
// intact (see Check): a changed crate is dropped, with a warning, and
// vendored again by the next Fetch.
func Lookup(st *store.Store, id string) (*Sources, bool) {
	s, ok := lookup(st, id)
	if !ok {
		return nil, false
	}
	damaged, err := Check(st, s, false)
	if err == nil && len(damaged) == 0 {
		return s, true
	}
	if err == nil {
		err = Drop(st, s, damaged)
	}
	if err != nil {
		st.Warnf("%v; fetching the dependency sources again", err)
	} else {
		st.Warnf("vendored crates changed in the store %s: %s; dropped them, fetching them again", st.Dir, describe(damaged))
	}
	return nil, false
}

// lookup is Lookup without the check.
func lookup(st *store.Store, id string) (*Sources, bool) {
	dir := filepath.Join(Dir(st), id)
	s := &Sources{ID: id, Dir: filepath.Join(dir, "crates"), Config: filepath.Join(dir, "config.toml")}
	if entries, err := os.ReadDir(s.Dir); err == nil && len(entries) == 0 {
		s.Dir = PoolDir(st) // its crates are in the pool
	}
	if _, err := os.Stat(s.Config); err != nil {
		return nil, false
	}
	return s, true
}

// Fetch vendors the dependencies of the workspace laid out in wsDir (whose
// Cargo.lock has the vendor id id). The result is published atomically: a
// failed or interrupted fetch leaves nothing behind but tmp/ garbage.
func Fetch(ctx context.Context, st *store.Store, wsDir, id string, env []string, log *os.File) (*Sources, error) {
	if s, ok := Lookup(st, id); ok {
		return s, nil
	}
	tmp, err := st.TempDir("vendor-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	crates := filepath.Join(tmp, "crates")
	conf, err := "", errNoCache
	lock, lockErr := os.ReadFile(filepath.Join(wsDir, "Cargo.lock"))
	if lockErr == nil {
		var w io.Writer
		if log != nil {
			w = log
		}
		conf, err = fromCache(st, lock, env, crates, w)
	}
	if errors.Is(err, errNoCache) {
		if err := os.RemoveAll(crates); err != nil {
			return nil, err
		}
		conf, err = cargoVendor(ctx, wsDir, crates, env, log)
	}
	if err != nil {
		return nil, err
	}
	final := filepath.Join(Dir(st), id)
	if err := dedupe(st, crates); err != nil {
		return nil, err
	}
	// Listed before pooling, which moves the crates out of crates.
	var uses []string
	if lockErr == nil {
		uses = crateDirs(crates, lock)
	}
	// The crates go to the store's shared pool, so that a crate's sources
	// keep one path whatever the lock file: cargo fingerprints a
	// dependency by its path, and a new path would rebuild every
	// dependency when only one was added.
	dir := filepath.Join(final, "crates")
	if pooled, err := pool(st, crates); err != nil {
		return nil, err
	} else if pooled {
		dir = PoolDir(st)
	} else {
		uses = []string{}
	}
	// What it takes from the pool, for gc (see PoolList). Without
	// the list, gc keeps the whole pool.
	if uses != nil {
		b, err := json.Marshal(uses)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(tmp, PoolList), b, 0o644); err != nil {
			return nil, err
		}
	}
	// Point the config that uses the vendored directory at the
	// directory's final place.
	conf = strings.ReplaceAll(conf, crates, dir)
	if !strings.Contains(conf, "vendored-sources") {
		// No dependencies at all: cargo prints nothing useful. An empty
		// config keeps the command lines uniform.
		conf = ""
		if err := os.MkdirAll(crates, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.toml"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(Dir(st), 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another smelt published the same sources first: use theirs.
		if s, ok := lookup(st, id); ok {
			return s, nil
		}
		return nil, fmt.Errorf("publish vendored sources: %w", err)
	}
	s, _ := lookup(st, id)
	return s, nil
}

// cargoVendor runs `cargo vendor` into dir and returns the cargo config
// it prints, which uses dir.
func cargoVendor(ctx context.Context, wsDir, dir string, env []string, log *os.File) (string, error) {
	cmd := exec.CommandContext(ctx, "cargo", "vendor", "--locked", "--versioned-dirs", "--respect-source-config", dir)
	cmd.Dir, cmd.Env = wsDir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if log != nil {
		cmd.Stderr = io.MultiWriter(&stderr, log)
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if msg := cargo.Explain(stderr.String()); msg != "" {
			return "", errors.New(msg)
		}
		return "", fmt.Errorf("fetch dependency sources with `cargo vendor`: %s", cargo.FirstError(stderr.String()))
	}
	return stdout.String(), nil
}

// dedupe makes every vendored file a hard link to a store object, so that
// the sources of a crate version are stored once however many lock files
// name it (adding one dependency must not copy all the others). cargo only
// reads vendored sources, so sharing them is safe. The hashes come from the
// .cargo-checksum.json that cargo vendor wrote (SHA-256 of each file, the
// store's own hash), so nothing is read twice, and a crate already in the
// pool is skipped: pool drops the new copy.
func dedupe(st *store.Store, dir string) error {
	crates, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, c := range crates {
		cdir := filepath.Join(dir, c.Name())
		sums, err := os.ReadFile(filepath.Join(cdir, ".cargo-checksum.json"))
		if err != nil {
			return fmt.Errorf("vendored crate %s: %w", c.Name(), err)
		}
		if pooled, err := os.ReadFile(filepath.Join(PoolDir(st), c.Name(), ".cargo-checksum.json")); err == nil && sameCrate(pooled, sums) {
			continue
		}
		var checksums struct {
			Files map[string]string `json:"files"`
		}
		if err := json.Unmarshal(sums, &checksums); err != nil {
			return fmt.Errorf("vendored crate %s: read .cargo-checksum.json: %w", c.Name(), err)
		}
		err = filepath.WalkDir(cdir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(cdir, p)
			h, ok := checksums.Files[filepath.ToSlash(rel)]
			if !ok { // .cargo-checksum.json itself
				if h, _, err = store.HashFile(p); err != nil {
					return err
				}
			}
			// A link can fail (too many links to one object): the file
			// then stays a copy of its own, which costs only space.
			st.Share(p, store.ObjectID(h))
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// crateDirs names the crate directories a vendored set uses: those in dir
// (what was vendored now) and, as the crates already pooled were not, one
// per package of the lock file that has a source ("name-version", as both
// fromCache and `cargo vendor --versioned-dirs` name them). It returns nil
// when it cannot tell.
func crateDirs(dir string, lock []byte) []string {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	pkgs, err := lockPackages(lock)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.Name()] = true
	}
	for _, p := range pkgs {
		if p.Source != "" {
			seen[p.Name+"-"+p.Version] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// sameCrate reports whether two vendored crates, given their
// .cargo-checksum.json, are the same: the same package checksum (the
// .crate they came from) if both have one, else the same files. smelt and
// cargo vendor unpack a registry crate alike, but a difference in which
// files they keep must not make the crate look like another one.
func sameCrate(a, b []byte) bool {
	if x, y := packageChecksum(a), packageChecksum(b); x != "" && y != "" {
		return x == y
	}
	return bytes.Equal(a, b)
}

// pool moves the crate directories vendored in dir into the pool, leaving
// dir empty. A crate directory already pooled must be the same crate (see
// sameCrate); if one is not (two git revisions with the same name and
// version), nothing moves and pool reports false: this lock file's crates
// stay private.
func pool(st *store.Store, dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	poolDir := PoolDir(st)
	if err := os.MkdirAll(poolDir, 0o755); err != nil {
		return false, err
	}
	same := func(name string) (exists, equal bool) {
		have, err := os.ReadFile(filepath.Join(poolDir, name, ".cargo-checksum.json"))
		if err != nil {
			return false, false
		}
		want, _ := os.ReadFile(filepath.Join(dir, name, ".cargo-checksum.json"))
		return true, sameCrate(have, want)
	}
	for _, e := range entries {
		if exists, equal := same(e.Name()); exists && !equal {
			return false, nil
		}
	}
	for _, e := range entries {
		if exists, _ := same(e.Name()); exists {
			continue
		}
		if err := record(filepath.Join(dir, e.Name())); err != nil {
			return false, fmt.Errorf("pool vendored crate %s: %w", e.Name(), err)
		}
		if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(poolDir, e.Name())); err != nil {
			// Another smelt pooled it first; it must be the same.
			if exists, equal := same(e.Name()); !exists || !equal {
				return false, fmt.Errorf("pool vendored crate %s: %w", e.Name(), err)
			}
		}
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return false, err
		}
	}
	return true, nil
}
