// Package skeleton derives the dependency-only "skeleton" of a Cargo workspace
// (the cargo-chef / crane idea): manifests and lock file kept, user code
// replaced by stubs, so the deps step's cache key only moves when the
// dependency graph moves.
package skeleton

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// maskedVersion replaces the workspace's own package versions, so that a
// version bump does not invalidate the dependency build.
const maskedVersion = "0.0.0"

// Stub contents. Every target fails to compile at once: the deps step runs
// cargo with --keep-going, so all dependencies are built and no stub is
// ever linked (with lto = true, linking stub binaries costs as much as
// linking the real ones). Build scripts fail too: their build-dependencies
// are still built, and a stub build script that compiled would cost a
// rustc run and a link for a unit the real build never reuses, its source
// being different.
const (
	libStub   = "compile_error!(\"" + Marker + "\");\n"
	mainStub  = libStub
	buildStub = libStub
)

// depTableNames are the dependency tables of a manifest (or of a
// target.'<cfg>' table), including the legacy underscore spellings cargo
// still accepts for older editions.
var depTableNames = []string{
	"dependencies", "dev-dependencies", "build-dependencies",
	"dev_dependencies", "build_dependencies",
}

// localPackage is a Cargo.toml with a [package] table.
type localPackage struct {
	manifestPath string
	dir          string // "" for the workspace root
	name         string
	manifest     map[string]any
}

// wsInfo is what Make and Packages read from a workspace's manifests.
type wsInfo struct {
	paths     []string // every file, sorted
	manifests map[string]map[string]any
	pkgs      []*localPackage
	patched   map[string]bool // directories of packages that [patch] or [replace] a crate
	masked    map[string]bool // names of packages whose version is masked
	maskWS    bool            // whether [workspace.package] version is masked
}

// FileError is a file of the workspace that is not valid TOML, with the
// place of the error when the parser gives one.
type FileError struct {
	Path      string // relative to the workspace root, until a caller knows the root
	Line, Col int    // 0: unknown
	Msg, Fix  string
}

func (e *FileError) Error() string {
	at := e.Path
	if e.Line > 0 {
		at = fmt.Sprintf("%s:%d:%d", e.Path, e.Line, e.Col)
	}
	return at + ": " + e.Msg + "; " + e.Fix
}

// tomlError names the file and, for a syntax or type error, its line.
func tomlError(p string, err error, fix string) error {
	fe := &FileError{Path: p, Msg: strings.TrimPrefix(err.Error(), "toml: "), Fix: fix}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		fe.Line, fe.Col = de.Position()
	}
	return fe
}

func parse(files map[string][]byte) (*wsInfo, error) {
	// Sorted iteration keeps error reporting (first failing file) deterministic.
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	manifests := map[string]map[string]any{}
	var pkgs []*localPackage
	for _, p := range paths {
		if path.Base(p) != "Cargo.toml" {
			continue
		}
		var m map[string]any
		if err := toml.Unmarshal(files[p], &m); err != nil {
			return nil, tomlError(p, err, "fix it: cargo cannot read it either")
		}
		if m == nil {
			m = map[string]any{}
		}
		manifests[p] = m
		pkg, ok := m["package"].(map[string]any)
		if !ok {
			continue
		}
		name, _ := pkg["name"].(string)
		pkgs = append(pkgs, &localPackage{manifestPath: p, dir: dirOf(p), name: name, manifest: m})
	}

	// Packages that replace a registry/git crate via [patch] or [replace] must
	// keep their real version: masking it would stop the patch from matching
	// the requirements of the crates that depend on it.
	patched := patchedDirs(manifests)
	masked := map[string]bool{}
	maskWorkspaceVersion := true
	for _, pkg := range pkgs {
		if !patched[pkg.dir] && pkg.name != "" {
			masked[pkg.name] = true
		}
		if patched[pkg.dir] && inheritsVersion(pkg.manifest) {
			maskWorkspaceVersion = false
		}
	}
	return &wsInfo{paths: paths, manifests: manifests, pkgs: pkgs, patched: patched, masked: masked, maskWS: maskWorkspaceVersion}, nil
}

// Packages lists the names of the workspace's own packages (every
// Cargo.toml with a [package]), sorted, and tells which of them the skeleton
// builds under another version than the real one. cargo's units of such a
// package (build scripts: every other target is a stub that fails) are
// other units than the real build's, so they can never be mistaken for
// them; a package that keeps its version (patched, or versioned 0.0.0)
// shares its build-script units with the real build.
func Packages(files map[string][]byte) (names []string, distinct map[string]bool, err error) {
	ws, err := parse(files)
	if err != nil {
		return nil, nil, err
	}
	wsVersion := ""
	for _, m := range ws.manifests {
		if w, ok := m["workspace"].(map[string]any); ok {
			if wp, ok := w["package"].(map[string]any); ok {
				wsVersion, _ = wp["version"].(string)
			}
		}
	}
	distinct = map[string]bool{}
	for _, pkg := range ws.pkgs {
		if pkg.name != "" {
			names = append(names, pkg.name)
		}
		if !ws.masked[pkg.name] {
			continue
		}
		pt, _ := pkg.manifest["package"].(map[string]any)
		if v, ok := pt["version"].(string); ok && v != maskedVersion ||
			inheritsVersion(pkg.manifest) && ws.maskWS && wsVersion != "" && wsVersion != maskedVersion {
			distinct[pkg.name] = true
		}
	}
	sort.Strings(names)
	return names, distinct, nil
}

// Make turns a cleaned Cargo workspace source (slash-separated paths relative to the workspace root → file contents)
// into the skeleton that smelt's `deps` step builds: the same manifests and lock file, with every target replaced
// by a stub and the workspace's own package versions masked, so that building it compiles exactly the
// dependencies and nothing of the user's code. The skeleton (and so the cache key of the deps step) must not change
// when a .rs file's body changes or when a workspace package's own version is bumped; it changes when dependencies change.
func Make(files map[string][]byte) (map[string][]byte, error) {
	ws, err := parse(files)
	if err != nil {
		return nil, err
	}
	paths, manifests, pkgs, patched, masked, maskWorkspaceVersion := ws.paths, ws.manifests, ws.pkgs, ws.patched, ws.masked, ws.maskWS

	out := map[string][]byte{}
	for _, p := range paths {
		m, ok := manifests[p]
		if !ok {
			continue
		}
		rewriteManifest(m, !patched[dirOf(p)], maskWorkspaceVersion)
		b, err := toml.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out[p] = b
	}

	for _, p := range paths {
		switch {
		case path.Base(p) == "Cargo.lock":
			b, err := rewriteLock(files[p], masked)
			if err != nil {
				return nil, tomlError(p, err, "fix it or regenerate it with `cargo generate-lockfile`")
			}
			out[p] = b
		case keptVerbatim(p):
			out[p] = files[p]
		}
	}

	for _, pkg := range pkgs {
		stubs, err := targetStubs(pkg, files)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pkg.manifestPath, err)
		}
		for p, content := range stubs {
			if _, taken := out[p]; taken {
				continue // never let a stub clobber a manifest or config file
			}
			out[p] = []byte(content)
		}
	}
	return out, nil
}

// keptVerbatim reports whether a non-manifest file influences how the
// dependencies are built (toolchain and cargo configuration).
func keptVerbatim(p string) bool {
	base := path.Base(p)
	switch base {
	case "rust-toolchain", "rust-toolchain.toml":
		return true
	case "config", "config.toml":
		return path.Base(path.Dir(p)) == ".cargo"
	}
	return false
}

// ups counts the leading ".." of a clean slash path.
func ups(p string) int {
	n := 0
	for ; p == ".." || strings.HasPrefix(p, "../"); p = strings.TrimPrefix(p[2:], "/") {
		n++
	}
	return n
}

func dirOf(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}

// joinRel resolves a manifest-relative path to a workspace-relative one;
// ok is false when it leaves the workspace (or is absolute). A package
// outside the workspace (a path dependency at "../lib") may name paths as
// far out as itself.
func joinRel(dir, rel string) (string, bool) {
	if rel == "" || path.IsAbs(rel) || strings.Contains(rel, "\\") {
		return "", false
	}
	j := path.Join(dir, rel)
	if ups(j) > ups(dir) {
		return "", false
	}
	if j == "." {
		j = ""
	}
	return j, true
}

// patchedDirs returns the directories that [patch.*] or [replace] entries
// point at by path.
func patchedDirs(manifests map[string]map[string]any) map[string]bool {
	dirs := map[string]bool{}
	add := func(manifestPath string, dep any) {
		t, ok := dep.(map[string]any)
		if !ok {
			return
		}
		if p, ok := t["path"].(string); ok && !path.IsAbs(p) {
			// Outside the workspace too: a path dependency at "../lib".
			if d := path.Join(dirOf(manifestPath), p); d != "." {
				dirs[d] = true
			} else {
				dirs[""] = true
			}
		}
	}
	for mp, m := range manifests {
		if patch, ok := m["patch"].(map[string]any); ok {
			for _, src := range patch {
				if deps, ok := src.(map[string]any); ok {
					for _, dep := range deps {
						add(mp, dep)
					}
				}
			}
		}
		if repl, ok := m["replace"].(map[string]any); ok {
			for _, dep := range repl {
				add(mp, dep)
			}
		}
	}
	return dirs
}

// inheritsVersion reports version.workspace = true.
func inheritsVersion(m map[string]any) bool {
	pkg, _ := m["package"].(map[string]any)
	v, _ := pkg["version"].(map[string]any)
	inherit, _ := v["workspace"].(bool)
	return inherit
}

// rewriteManifest masks the manifest's own [package] version (when maskOwn)
// and [workspace.package] version (when maskWS), and drops `version` from
// path dependencies, whose requirement would no longer match the masked
// version of the package they point at.
func rewriteManifest(m map[string]any, maskOwn, maskWS bool) {
	if pkg, ok := m["package"].(map[string]any); ok && maskOwn {
		// version.workspace = true decodes to a table and is kept as is.
		if _, ok := pkg["version"].(string); ok {
			pkg["version"] = maskedVersion
		}
	}
	if ws, ok := m["workspace"].(map[string]any); ok {
		if wp, ok := ws["package"].(map[string]any); ok && maskWS {
			if _, ok := wp["version"]; ok {
				wp["version"] = maskedVersion
			}
		}
		stripPathVersions(ws["dependencies"])
	}
	for _, name := range depTableNames {
		stripPathVersions(m[name])
	}
	if targets, ok := m["target"].(map[string]any); ok {
		for _, t := range targets {
			if tt, ok := t.(map[string]any); ok {
				for _, name := range depTableNames {
					stripPathVersions(tt[name])
				}
			}
		}
	}
}

// HasDevDependencies reports whether any manifest declares a dev-dependency
// (also under a target.'<cfg>' table or in the legacy spelling). Without
// one, `cargo build --tests` builds every dependency unit that `cargo
// build` would, with the same features, whatever the resolver.
func HasDevDependencies(files map[string][]byte) (bool, error) {
	ws, err := parse(files)
	if err != nil {
		return false, err
	}
	nonEmpty := func(t map[string]any) bool {
		for _, name := range []string{"dev-dependencies", "dev_dependencies"} {
			if deps, ok := t[name].(map[string]any); ok && len(deps) > 0 {
				return true
			}
		}
		return false
	}
	for _, m := range ws.manifests {
		if nonEmpty(m) {
			return true, nil
		}
		targets, _ := m["target"].(map[string]any)
		for _, t := range targets {
			if tt, ok := t.(map[string]any); ok && nonEmpty(tt) {
				return true, nil
			}
		}
	}
	return false, nil
}

func stripPathVersions(table any) {
	deps, ok := table.(map[string]any)
	if !ok {
		return
	}
	for _, d := range deps {
		if dt, ok := d.(map[string]any); ok {
			if _, hasPath := dt["path"]; hasPath {
				delete(dt, "version")
			}
		}
	}
}

// targetStubs returns the stub files (workspace-relative path → content) for
// one package: every auto-discovered target root that exists, plus every
// explicitly declared target path whether it exists or not.
func targetStubs(pkg *localPackage, files map[string][]byte) (map[string]string, error) {
	needsMain := map[string]bool{} // path → true unless it is only a lib root
	mark := func(p string, isLib bool) {
		needsMain[p] = needsMain[p] || !isLib
	}
	buildScripts := map[string]bool{}

	prefix := ""
	if pkg.dir != "" {
		prefix = pkg.dir + "/"
	}
	for p := range files {
		rel, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		if isLib, ok := autoTarget(rel); ok {
			mark(p, isLib)
			if rel == "build.rs" {
				buildScripts[p] = true
			}
		}
	}

	explicit := func(rel string, isLib bool) error {
		p, ok := joinRel(pkg.dir, rel)
		if !ok {
			return fmt.Errorf("target path %q is outside the workspace", rel)
		}
		mark(p, isLib)
		return nil
	}
	if lib, ok := pkg.manifest["lib"].(map[string]any); ok {
		if p, ok := lib["path"].(string); ok {
			if err := explicit(p, true); err != nil {
				return nil, err
			}
		}
	}
	for _, kind := range []string{"bin", "example", "test", "bench"} {
		list, _ := pkg.manifest[kind].([]any)
		for _, t := range list {
			tt, _ := t.(map[string]any)
			if p, ok := tt["path"].(string); ok {
				if err := explicit(p, false); err != nil {
					return nil, err
				}
			}
		}
	}
	if pt, ok := pkg.manifest["package"].(map[string]any); ok {
		// build = false / true are booleans and declare no extra file.
		if p, ok := pt["build"].(string); ok {
			if err := explicit(p, false); err != nil {
				return nil, err
			}
			if full, ok := joinRel(pkg.dir, p); ok {
				buildScripts[full] = true
			}
		}
	}

	stubs := make(map[string]string, len(needsMain))
	for p, main := range needsMain {
		if buildScripts[p] {
			stubs[p] = buildStub
		} else if main {
			stubs[p] = mainStub
		} else {
			stubs[p] = libStub
		}
	}
	return stubs, nil
}

// autoTarget reports whether a package-relative path is one of cargo's
// auto-discovered target roots, and whether that root is the library.
func autoTarget(rel string) (isLib, ok bool) {
	switch rel {
	case "src/lib.rs":
		return true, true
	case "src/main.rs", "build.rs":
		return false, true
	}
	for _, dir := range []string{"src/bin/", "examples/", "tests/", "benches/"} {
		rest, found := strings.CutPrefix(rel, dir)
		if !found {
			continue
		}
		// <dir>/<name>.rs or <dir>/<name>/main.rs
		if !strings.Contains(rest, "/") && strings.HasSuffix(rest, ".rs") && rest != ".rs" {
			return false, true
		}
		if name, found := strings.CutSuffix(rest, "/main.rs"); found && name != "" && !strings.Contains(name, "/") {
			return false, true
		}
	}
	return false, false
}

// Marker is the error every target stub of the skeleton fails with.
const Marker = "smelt: a stub of the deps skeleton; only dependencies are built here"

var reFailedUnit = regexp.MustCompile("(?m)^error: could not (?:compile|document) `([^`]+)`")

// OnlyStubsFailed reports whether a cargo run on the skeleton failed only
// because its stubs do (as they must), so that every dependency was built:
// every unit that failed is one of the workspace's own packages (locals),
// and no build script of a dependency failed.
func OnlyStubsFailed(stderr string, locals []string) bool {
	if !strings.Contains(stderr, Marker) || strings.Contains(stderr, "failed to run custom build command for `") {
		return false
	}
	return OnlyOwnFailed(stderr, locals)
}

// reFailedScript is cargo's report of a build script that failed as it ran.
var reFailedScript = regexp.MustCompile("(?m)^error: failed to run custom build command for `([^` ]+)")

// OnlyOwnFailed reports whether every unit that a failed cargo run names
// as failed, compiled or run (a build script), is one of the workspace's
// own packages (locals): with --keep-going every dependency was built.
func OnlyOwnFailed(stderr string, locals []string) bool {
	failed := append(reFailedUnit.FindAllStringSubmatch(stderr, -1), reFailedScript.FindAllStringSubmatch(stderr, -1)...)
	for _, m := range failed {
		if !slices.Contains(locals, m[1]) {
			return false
		}
	}
	return len(failed) > 0
}
