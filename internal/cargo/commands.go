package cargo

import (
	"maps"
	"path"
	"slices"
	"strings"

	"smelt/internal/config"
	"smelt/internal/kind"
)

// The commands themselves are each kind's (package kind); these names
// stay here for the packages that run them.
const (
	VendorConfig = kind.VendorConfig // the vendored sources' cargo config file
	WorkDir      = kind.WorkDir      // the step's private scratch directory
)

// Command is one process a step runs.
type Command = kind.Command

// Commands gives the commands that a step runs (see kind.Commands).
func Commands(s *config.Step, heirs []*config.Step, part, of int) []Command {
	return kind.Commands(s, heirs, part, of)
}

// DropCoveredBuilds removes from a deps step's warm-ups every `cargo build`
// that a `cargo build --tests` (with or without --examples) of the same
// flags and environment covers. It
// is only sound for a workspace without dev-dependencies (see
// skeleton.HasDevDependencies): then both build the same dependency units
// with the same features, and the plain build would be a no-op that still
// costs a cargo start and a resolve. alsoRun are warm-ups that run too and
// may cover, but are never dropped: those a fused deps step runs on its
// heirs' source, where a plain build builds the heirs' binaries.
func DropCoveredBuilds(cmds, alsoRun []Command) (kept, dropped []Command) {
	covers := func(tests, plain Command) bool {
		if tests.Program != "cargo" || plain.Program != "cargo" || !slices.Contains(tests.Args, "--tests") ||
			len(plain.Args) == 0 || plain.Args[0] != "build" || slices.Contains(plain.Args, "--tests") {
			return false
		}
		// What testBuild adds to a plain build's arguments.
		added := func(a string) bool { return a == "--tests" || a == "--examples" }
		return slices.Equal(slices.DeleteFunc(slices.Clone(tests.Args), added), slices.DeleteFunc(slices.Clone(plain.Args), added)) &&
			maps.Equal(tests.Env, plain.Env)
	}
	for _, c := range cmds {
		covered := func(t Command) bool { return covers(t, c) }
		if slices.ContainsFunc(cmds, covered) || slices.ContainsFunc(alsoRun, covered) {
			dropped = append(dropped, c)
		} else {
			kept = append(kept, c)
		}
	}
	return kept, dropped
}

// OutDir is the directory under target/ where a step's profile puts its
// outputs: target/<triple>/<dir> or target/<dir>.
func OutDir(s *config.Step) string {
	dir := s.Profile
	switch dir {
	case "dev", "test":
		dir = "debug"
	case "bench":
		dir = "release"
	}
	if s.Target != "" {
		return path.Join(s.Target, dir)
	}
	return dir
}

// DocDir is where `cargo doc` writes HTML, relative to target/.
func DocDir(s *config.Step) string {
	if s.Target != "" {
		return path.Join(s.Target, "doc")
	}
	return "doc"
}

// Replaced reports whether cargo and rustc only ever replace the file at
// this path under target/ (write a new file and rename it, or unlink it
// first), never rewrite it in place, so that it may be a hard link into the
// store. Measured on cargo 1.95 by rebuilding over a hard-linked copy of
// target/: compiled crates and executables in deps/ and build-script
// executables are replaced; fingerprints, *.d dep-info, build-script
// outputs (build/*/out, output, root-output) and incremental state are
// rewritten in place and must stay copies.
func Replaced(p string) bool {
	if strings.HasSuffix(p, ".d") || strings.Contains(p, "/.fingerprint/") || strings.Contains(p, "/incremental/") {
		return false
	}
	dir, base := path.Split(p)
	if path.Base(dir) == "deps" {
		return true
	}
	return path.Base(path.Dir(path.Dir(p))) == "build" && strings.HasPrefix(base, "build_script_") && !strings.Contains(base, ".")
}

// RustcInfo is where, under target/, cargo caches the output of its
// compiler queries (`rustc -vV`, `--print`), keyed by the compiler and
// wrappers that gave it.
const RustcInfo = ".rustc_info.json"

// UnitDir returns the directory under target/ that holds one unit's state
// as a whole, when p lies in one: PROFILE/.fingerprint/UNIT or
// PROFILE/build/UNIT (a build script's executable or its run's output).
// Such a directory must come from one build or another, never be mixed
// file by file: a fingerprint from one build and a warnings cache or an
// OUT_DIR file from another would not belong together.
func UnitDir(p string) string {
	parts := strings.Split(p, "/")
	for i := 0; i+2 < len(parts); i++ {
		if parts[i] == ".fingerprint" || parts[i] == "build" {
			return strings.Join(parts[:i+2], "/")
		}
	}
	return ""
}

// UnitPackage returns the package whose unit directory (UnitDir) holds p,
// or "" when p lies in none. A directory is PACKAGE-HASH, HASH being 16 hex
// digits.
func UnitPackage(p string) string {
	dir := UnitDir(p)
	if dir == "" {
		return ""
	}
	base := path.Base(dir)
	i := strings.LastIndexByte(base, '-')
	if i < 1 || len(base)-i-1 != 16 {
		return ""
	}
	for _, c := range base[i+1:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	return base[:i]
}
