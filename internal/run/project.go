package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"smelt/internal/depsrc"
	"smelt/internal/skeleton"
	"smelt/internal/source"
	"smelt/internal/store"
	"smelt/internal/toolchain"
)

// FindRoot returns the workspace root for dir: the nearest ancestor whose
// Cargo.toml declares a [workspace], else the nearest with a Cargo.toml.
func FindRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	// A directory that is not there must not fall through to the project
	// around it (`-C app` with a typo would build the enclosing project).
	if info, err := os.Stat(abs); os.IsNotExist(err) {
		return "", fmt.Errorf("project directory %s does not exist: pass -C an existing directory", abs)
	} else if err != nil {
		return "", fmt.Errorf("project directory %s: %w", abs, err)
	} else if !info.IsDir() {
		return "", fmt.Errorf("project directory %s is not a directory (pass -C the directory that holds Cargo.toml)", abs)
	}
	first := ""
	for d := abs; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "Cargo.toml"))
		if err == nil {
			if first == "" {
				first = d
			}
			if bytes.Contains(data, []byte("[workspace]")) {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	if first == "" {
		return "", fmt.Errorf("no Cargo.toml in %s or any directory above it: run smelt inside a Cargo project (or pass -C DIR)", abs)
	}
	return first, nil
}

// envKeep are the variables a step sees from smelt's own environment. A step
// is hermetic: anything else (RUSTFLAGS, CARGO_TARGET_DIR, …) must be
// declared in smelt.toml, where it enters the key.
// RUSTUP_AUTO_INSTALL and RUSTUP_DIST_SERVER say whether and where rustup
// may download a missing toolchain: the user's choice, which changes no
// build's result.
var envKeep = []string{"PATH", "HOME", "USER", "LOGNAME", "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "RUSTUP_AUTO_INSTALL", "RUSTUP_DIST_SERVER", "TMPDIR", "LANG", "LC_ALL"}

// BaseEnv is the environment every step starts from.
func BaseEnv() []string {
	var env []string
	for _, k := range envKeep {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// project is what all steps of one run share, computed at most once.
type project struct {
	root string
	id   string // names the project's working directories in the store
	st   *store.Store

	cargoConfig string // hash of cargo's user-level configuration

	tcMu       sync.Mutex
	toolchains map[string]*toolchain.Identity // by rustup toolchain name ("" = default)

	mu       sync.Mutex
	sources  map[string]source.Tree // by include/exclude
	skels    map[string]source.Tree
	vendorMu sync.Mutex
	vendored *depsrc.Sources
}

func newProject(ctx context.Context, st *store.Store, root string) (*project, error) {
	p := &project{
		root:    root,
		id:      projectID(root),
		st:      st,
		sources: map[string]source.Tree{},
		skels:   map[string]source.Tree{},

		toolchains: map[string]*toolchain.Identity{},
	}
	// The default toolchain is always needed: detect it now, so a missing
	// Rust installation is reported before anything else.
	if _, err := p.toolchain(ctx, ""); err != nil {
		return nil, err
	}
	p.cargoConfig = cargoUserConfig()
	return p, nil
}

// stepEnv is the environment a step's commands start from.
func stepEnv(tc string) []string {
	env := BaseEnv()
	if tc != "" {
		env = append(env, "RUSTUP_TOOLCHAIN="+tc)
	}
	return env
}

// toolchain identifies the named rustup toolchain ("" = the project's own).
func (p *project) toolchain(ctx context.Context, name string) (*toolchain.Identity, error) {
	p.tcMu.Lock()
	defer p.tcMu.Unlock()
	if id, ok := p.toolchains[name]; ok {
		return id, nil
	}
	id, err := toolchain.Detect(ctx, p.st, p.root, stepEnv(name))
	if err != nil {
		if name != "" {
			return nil, fmt.Errorf("toolchain %s: %w (is it installed? `rustup toolchain install %s`)", name, err, name)
		}
		return nil, err
	}
	p.toolchains[name] = id
	return id, nil
}

// projectID names a project's working directories and logs in the store.
func projectID(root string) string {
	return store.HashBytes([]byte(root))[:12] + "-" + filepath.Base(root)
}

// cargoUserConfig hashes cargo's configuration outside the project (in
// CARGO_HOME): it can set flags that change every build.
func cargoUserConfig() string {
	home := os.Getenv("CARGO_HOME")
	if home == "" {
		h, _ := os.UserHomeDir()
		home = filepath.Join(h, ".cargo")
	}
	var b strings.Builder
	for _, name := range []string{"config.toml", "config"} {
		if data, err := os.ReadFile(filepath.Join(home, name)); err == nil {
			b.WriteString(name + ":" + store.HashBytes(data) + "\n")
		}
	}
	return store.HashBytes([]byte(b.String()))
}

func globKey(include, exclude []string) string {
	return strings.Join(include, "\x00") + "\x01" + strings.Join(exclude, "\x00")
}

// source returns the cleaned source for a step's include/exclude globs.
func (p *project) source(include, exclude []string) (source.Tree, error) {
	k := globKey(include, exclude)
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.sources[k]; ok {
		return t, nil
	}
	t, err := source.Clean(p.root, include, exclude)
	if err != nil {
		return nil, err
	}
	if _, ok := t.Get("Cargo.lock"); !ok {
		return nil, fmt.Errorf("no Cargo.lock in %s: run `cargo generate-lockfile` and commit it (smelt builds exactly the versions the lock file names)", p.root)
	}
	p.sources[k] = t
	return t, nil
}

// skeleton returns the deps skeleton of the cleaned source.
func (p *project) skeleton(include, exclude []string) (source.Tree, error) {
	src, err := p.source(include, exclude)
	if err != nil {
		return nil, err
	}
	k := globKey(include, exclude)
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.skels[k]; ok {
		return t, nil
	}
	m, err := skeleton.Make(src.Map())
	if err != nil {
		return nil, p.inRoot(fmt.Errorf("make the dependency skeleton: %w", err))
	}
	t := source.FromMap(m)
	p.skels[k] = t
	return t, nil
}

// vendorID is the id of the vendored sources for the project's Cargo.lock,
// taken from the skeleton's lock file: a version bump of a workspace member
// changes no dependency, so it must not change the id.
func (p *project) vendorID() (string, error) {
	skel, err := p.skeleton(nil, nil)
	if err != nil {
		return "", err
	}
	lock, _ := skel.Get("Cargo.lock")
	return depsrc.ID(lock.Data), nil
}

// vendor fetches the dependency sources once per run (and once per lock
// file across runs and projects).
func (p *project) vendor(ctx context.Context, log *os.File) (*depsrc.Sources, error) {
	p.vendorMu.Lock()
	defer p.vendorMu.Unlock()
	if p.vendored != nil {
		return p.vendored, nil
	}
	id, err := p.vendorID()
	if err != nil {
		return nil, err
	}
	if s, ok := depsrc.Lookup(p.st, id); ok {
		p.vendored = s
		return s, nil
	}
	skel, err := p.skeleton(nil, nil)
	if err != nil {
		return nil, err
	}
	dir, err := p.st.TempDir("fetch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ws := source.Nest(dir, p.root, skel.Depth())
	times := source.MTimes(skel, nil, 0, timeNow(), time.Second)
	if err := source.Layout(ws, skel, times); err != nil {
		return nil, err
	}
	// Fetching is the one step that may use the network, so it sees the
	// whole environment (proxies, registry tokens).
	s, err := depsrc.Fetch(ctx, p.st, ws, id, os.Environ(), log)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		// Name the project's files, not their copies in dir.
		msg := strings.ReplaceAll(err.Error(), ws, p.root)
		return nil, fmt.Errorf("fetch dependency sources for %s: %s", filepath.Join(p.root, "Cargo.lock"), msg)
	}
	p.vendored = s
	return s, nil
}

// inRoot turns a file error of the workspace into one naming the file by
// its path in the project (the user's file, not smelt's copy of it).
func (p *project) inRoot(err error) error {
	if fe := fileError(err, p.root); fe != nil {
		return fe
	}
	return err
}

func fileError(err error, root string) error {
	var fe *skeleton.FileError
	if !errors.As(err, &fe) {
		return nil
	}
	c := *fe
	c.Path = filepath.Join(root, filepath.FromSlash(fe.Path))
	return &c
}

// Members lists the names of the workspace's own packages (every Cargo.toml
// with a [package] in the cleaned source).
func Members(root string) ([]string, error) {
	src, err := source.Clean(root, nil, nil)
	if err != nil {
		return nil, err
	}
	names, _, err := memberNames(src, root)
	return names, err
}

// memberNames lists the packages of the Cargo.toml files in a source tree,
// and those the deps skeleton builds as other units (skeleton.Packages).
func memberNames(src source.Tree, root string) ([]string, map[string]bool, error) {
	names, distinct, err := skeleton.Packages(src.Map())
	if err != nil {
		if fe := fileError(err, root); fe != nil {
			return nil, nil, fe
		}
		return nil, nil, fmt.Errorf("read the manifests in %s: %w", root, err)
	}
	return names, distinct, nil
}
