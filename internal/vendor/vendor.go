// Package vendor fetches the sources of every dependency in Cargo.lock once,
// verified against the lock file's checksums, into the store, so that every
// build step after it runs offline.
//
// It drives `cargo vendor`, so registry mirrors, alternate registries and git
// dependencies configured for cargo keep working exactly as cargo sees them.
package vendor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"smelt/internal/cargo"
	"smelt/internal/store"
)

// Sources is a vendored dependency set.
type Sources struct {
	ID     string // hash of the Cargo.lock it was made from
	Dir    string // the vendored crates
	Config string // a cargo config file that points every source at Dir
}

// ID is the vendor id for a Cargo.lock's contents.
func ID(lock []byte) string { return store.HashBytes(append([]byte("vendor-1\x00"), lock...)) }

// Lookup returns the vendored sources for id if they are in the store.
func Lookup(st *store.Store, id string) (*Sources, bool) {
	dir := filepath.Join(st.Dir, "vendor", id)
	s := &Sources{ID: id, Dir: filepath.Join(dir, "crates"), Config: filepath.Join(dir, "config.toml")}
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
	cmd := exec.CommandContext(ctx, "cargo", "vendor", "--locked", "--versioned-dirs", "--respect-source-config", filepath.Join(tmp, "crates"))
	cmd.Dir, cmd.Env = wsDir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if log != nil {
		cmd.Stderr = io.MultiWriter(&stderr, log)
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if msg := cargo.Explain(stderr.String()); msg != "" {
			return nil, errors.New(msg)
		}
		return nil, fmt.Errorf("fetch dependency sources with `cargo vendor`: %s", cargo.FirstError(stderr.String()))
	}
	final := filepath.Join(st.Dir, "vendor", id)
	// cargo prints the config that uses the vendored directory; point it at
	// the directory's final place.
	conf := strings.ReplaceAll(stdout.String(), filepath.Join(tmp, "crates"), filepath.Join(final, "crates"))
	if !strings.Contains(conf, "vendored-sources") {
		// No dependencies at all: cargo prints nothing useful. An empty
		// config keeps the command lines uniform.
		conf = ""
		if err := os.MkdirAll(filepath.Join(tmp, "crates"), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.toml"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another smelt published the same sources first: use theirs.
		if s, ok := Lookup(st, id); ok {
			return s, nil
		}
		return nil, fmt.Errorf("publish vendored sources: %w", err)
	}
	s, _ := Lookup(st, id)
	return s, nil
}
