package depsrc

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"smelt/internal/par"
	"smelt/internal/store"
)

// The sources crates.io's packages carry in Cargo.lock (git index, sparse).
var cratesIO = map[string]bool{
	"registry+https://github.com/rust-lang/crates.io-index": true,
	"sparse+https://index.crates.io/":                       true,
}

// cratesIOConfig is what `cargo vendor` prints for a lock file whose only
// remote source is crates.io, given the vendored directory.
const cratesIOConfig = `[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "%s"
`

type lockPackage struct {
	Name     string `toml:"name"`
	Version  string `toml:"version"`
	Source   string `toml:"source"`
	Checksum string `toml:"checksum"`
}

// lockPackages reads the packages of a Cargo.lock.
func lockPackages(lock []byte) ([]lockPackage, error) {
	var parsed struct {
		Package []lockPackage `toml:"package"`
	}
	err := toml.Unmarshal(lock, &parsed)
	return parsed.Package, err
}

// crate is one crates.io package of a lock file.
type crate struct {
	dir      string // "name-version", as cargo vendor --versioned-dirs names it
	checksum string // SHA-256 of the .crate file, from Cargo.lock
	file     string // the .crate file in cargo's download cache
}

// errNoCache says the download cache cannot stand in for `cargo vendor`.
var errNoCache = errors.New("not vendorable from cargo's download cache")

// fromCache vendors into dir those of the lock file's crates that the pool
// lacks, by unpacking the .crate files cargo already downloaded into
// $CARGO_HOME/registry/cache, each verified against the lock file's
// checksum. Adding one dependency then unpacks one crate, where `cargo
// vendor` would copy all of them again. It returns the cargo config that
// uses dir, or errNoCache when only `cargo vendor` can do the job: a
// source other than crates.io (git, another registry), a crate not
// downloaded yet, a lock file it cannot read (cargo then says what is
// wrong with it), or a pooled crate of the same name and version from
// another source. log, if not nil, gets one line saying what was unpacked.
func fromCache(st *store.Store, lock []byte, env []string, dir string, log io.Writer) (string, error) {
	pkgs, err := lockPackages(lock)
	if err != nil {
		return "", errNoCache
	}
	var missing []crate
	remote := 0
	for _, p := range pkgs {
		if p.Source == "" {
			continue // the workspace's own packages and path dependencies
		}
		if !cratesIO[p.Source] || p.Checksum == "" || !safeName(p.Name) || !safeName(p.Version) {
			return "", errNoCache
		}
		remote++
		c := crate{dir: p.Name + "-" + p.Version, checksum: p.Checksum}
		switch pooledChecksum(st, c.dir) {
		case c.checksum:
			continue
		case "":
			missing = append(missing, c)
		default:
			return "", errNoCache
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if remote == 0 {
		return "", nil
	}
	home := cargoHome(env)
	for i := range missing {
		if missing[i].file = cached(home, missing[i]); missing[i].file == "" {
			return "", errNoCache
		}
	}
	err = par.Each(runtime.GOMAXPROCS(0), missing, func(c crate) error {
		return unpack(c, filepath.Join(dir, c.dir))
	})
	if err != nil {
		return "", err
	}
	if log != nil {
		fmt.Fprintf(log, "smelt: %d of %d crates unpacked from %s, the others already in the store\n", len(missing), remote, filepath.Join(home, "registry", "cache"))
	}
	return fmt.Sprintf(cratesIOConfig, dir), nil
}

// safeName refuses what could step out of a directory when used in a path.
func safeName(s string) bool {
	return s != "" && !strings.ContainsAny(s, `/\`) && !strings.HasPrefix(s, ".")
}

func cargoHome(env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "CARGO_HOME="); ok && v != "" {
			return v
		}
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cargo")
}

// cached finds c's .crate file in cargo's download cache (one directory
// per registry index), and checks it against the lock file's checksum: a
// truncated or tampered download is not used.
func cached(home string, c crate) string {
	matches, _ := filepath.Glob(filepath.Join(home, "registry", "cache", "*", c.dir+".crate"))
	for _, m := range matches {
		if h, _, err := store.HashFile(m); err == nil && h == c.checksum {
			return m
		}
	}
	return ""
}

// pooledChecksum is the package checksum of the pooled crate directory
// name, or "" if there is none.
func pooledChecksum(st *store.Store, name string) string {
	b, err := os.ReadFile(filepath.Join(PoolDir(st), name, ".cargo-checksum.json"))
	if err != nil {
		return ""
	}
	if sum := packageChecksum(b); sum != "" {
		return sum
	}
	return "\x00unknown" // some crate is there, of no known checksum
}

// packageChecksum is the "package" field of a .cargo-checksum.json (the
// SHA-256 of the .crate the crate came from), or "" if it has none (a git
// dependency) or cannot be read.
func packageChecksum(b []byte) string {
	var sums struct {
		Package string `json:"package"`
	}
	if json.Unmarshal(b, &sums) != nil {
		return ""
	}
	return sums.Package
}

// skipped are the files `cargo vendor` leaves out of a vendored crate:
// git's own files, which mean nothing to a build, and cargo's marker that
// it finished unpacking.
var skipped = map[string]bool{".gitignore": true, ".gitattributes": true, ".git": true, ".cargo-ok": true}

// unpack extracts c's .crate file into dst, as `cargo vendor
// --versioned-dirs` lays a crate out, with the .cargo-checksum.json that
// cargo requires of a vendored crate (each file's SHA-256, and the .crate's
// own as "package").
func unpack(c crate, dst string) error {
	f, err := os.Open(c.file)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", c.file, err)
	}
	tr := tar.NewReader(zr)
	sums := map[string]string{}
	prefix := c.dir + "/"
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("unpack %s: %w", c.file, err)
		}
		name := path.Clean(hdr.Name)
		rel, ok := strings.CutPrefix(name, prefix)
		if !ok || rel == "" || rel == ".." || strings.HasPrefix(rel, "../") || path.IsAbs(rel) {
			return fmt.Errorf("unpack %s: entry %q lies outside %s", c.file, hdr.Name, c.dir)
		}
		if skip(rel) {
			continue
		}
		p := filepath.Join(dst, filepath.FromSlash(rel))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		case tar.TypeReg:
		default:
			// Links and the like: cargo's own extraction has rules of its
			// own for them; leave such a crate to cargo vendor.
			return errNoCache
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if hdr.Mode&0o111 != 0 {
			mode = 0o755
		}
		out, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
		if err != nil {
			return fmt.Errorf("unpack %s: %w", c.file, err)
		}
		h := sha256.New()
		_, err = io.Copy(io.MultiWriter(out, h), tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("unpack %s: %w", c.file, err)
		}
		sums[rel] = hex.EncodeToString(h.Sum(nil))
	}
	if _, ok := sums["Cargo.toml"]; !ok {
		return fmt.Errorf("unpack %s: no Cargo.toml in %s", c.file, c.dir)
	}
	b, err := json.Marshal(struct {
		Files   map[string]string `json:"files"`
		Package string            `json:"package"`
	}{sums, c.checksum})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dst, ".cargo-checksum.json"), b, 0o644)
}

// skip reports whether a crate's file is one cargo vendor leaves out.
func skip(rel string) bool {
	for _, part := range strings.Split(rel, "/") {
		if skipped[part] {
			return true
		}
	}
	return false
}
