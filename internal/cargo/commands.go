package cargo

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"smelt/internal/config"
)

// Placeholders stand in a command for paths that differ between machines
// and runs, so that commands (which enter the key) do not.
const (
	VendorConfig = "<vendor-config>" // the vendored sources' cargo config file
	WorkDir      = "<work>"          // the step's private scratch directory
)

// Command is one process a step runs.
type Command struct {
	Program string            `json:"program"` // "cargo" unless the step is a user command
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env,omitempty"`
	// JSON: stdout carries cargo's JSON messages (for the executables built).
	JSON bool `json:"json,omitempty"`
}

// String renders the command for logs.
func (c Command) String() string {
	var b strings.Builder
	for _, k := range sortedKeys(c.Env) {
		fmt.Fprintf(&b, "%s=%s ", k, c.Env[k])
	}
	b.WriteString(c.Program)
	for _, a := range c.Args {
		b.WriteString(" " + a)
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Expand replaces the placeholders with real paths.
func (c Command) Expand(vendorConfig, work string) Command {
	r := strings.NewReplacer(VendorConfig, vendorConfig, WorkDir, work)
	out := Command{Program: c.Program, JSON: c.JSON, Env: map[string]string{}}
	for _, a := range c.Args {
		out.Args = append(out.Args, r.Replace(a))
	}
	for k, v := range c.Env {
		out.Env[k] = r.Replace(v)
	}
	return out
}

// selectsPackages reports whether args already choose packages.
func selectsPackages(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-p") || a == "--workspace" || a == "--all" || a == "--manifest-path" ||
			strings.HasPrefix(a, "--package") || strings.HasPrefix(a, "--manifest-path=") {
			return true
		}
	}
	return false
}

// cargoPart is args before `--` (cargo's own); the rest goes to the tool.
func cargoPart(args []string) []string {
	if i := slices.Index(args, "--"); i >= 0 {
		return args[:i]
	}
	return args
}

// flags is what every build-like command of a step gets. It must be the same
// for the deps step and its heirs, or cargo rebuilds the dependencies.
// profileFlag is the option that names the cargo profile (nextest and
// tarpaulin use their own names for it).
func flags(s *config.Step, extra []string, profileFlag string, vendorFlag bool) []string {
	out := []string{"--offline", "--locked"}
	if vendorFlag {
		out = append(out, "--config", VendorConfig)
	}
	out = append(out, profileFlag, s.Profile)
	if s.AllFeatures {
		out = append(out, "--all-features")
	}
	if s.NoDefaultFeatures {
		out = append(out, "--no-default-features")
	}
	if len(s.Features) > 0 {
		out = append(out, "--features", strings.Join(s.Features, ","))
	}
	if s.Target != "" {
		out = append(out, "--target", s.Target)
	}
	if !selectsPackages(s.CargoArgs) && !selectsPackages(extra) {
		out = append(out, "--workspace")
	}
	return append(out, s.CargoArgs...)
}

func cargo(env map[string]string, parts ...[]string) Command {
	c := Command{Program: "cargo", Env: env}
	for _, p := range parts {
		c.Args = append(c.Args, p...)
	}
	return c
}

func std(s *config.Step, extra []string) []string { return flags(s, extra, "--profile", true) }

// CoverageEnv instruments every crate for the coverage kind. The deps step
// builds with it too when a coverage step inherits from it, so dependencies
// are compiled once, instrumented.
func CoverageEnv(s *config.Step) map[string]string {
	rf := "-C instrument-coverage"
	if v := s.Env["RUSTFLAGS"]; v != "" {
		rf = v + " " + rf
	}
	return map[string]string{"RUSTFLAGS": rf, "LLVM_PROFILE_FILE": WorkDir + "/profraw/%p-%m.profraw"}
}

// Commands gives the commands that a step runs. heirs are the steps that
// (transitively) inherit a deps step's artifacts: the deps step builds the
// dependencies exactly as they will. part/of select a nextest partition.
func Commands(s *config.Step, heirs []*config.Step, part, of int) []Command {
	switch s.Kind {
	case "deps":
		var cmds []Command
		add := func(c Command) {
			for _, have := range cmds {
				if have.String() == c.String() {
					return
				}
			}
			cmds = append(cmds, c)
		}
		for _, h := range heirs {
			for _, c := range warmup(h) {
				add(c)
			}
		}
		if len(cmds) == 0 {
			// Nothing inherits from it: prepare for the usual heirs.
			add(cargo(nil, []string{"check", "--keep-going"}, std(s, nil), []string{"--all-targets"}))
			add(cargo(nil, []string{"build", "--keep-going"}, std(s, nil)))
		}
		for i := range cmds {
			cmds[i].Args = append(cmds[i].Args, s.Args...)
		}
		return cmds
	case "clippy":
		return []Command{cargo(nil, []string{"clippy"}, std(s, s.Args), s.Args)}
	case "test":
		return []Command{cargo(nil, []string{"test"}, std(s, s.Args), s.Args)}
	case "doctest":
		return []Command{cargo(nil, []string{"test", "--doc"}, std(s, s.Args), s.Args)}
	case "doc":
		return []Command{cargo(nil, []string{"doc", "--no-deps"}, std(s, s.Args), s.Args)}
	case "package":
		c := cargo(nil, []string{"build", "--message-format=json-render-diagnostics"}, std(s, s.Args), s.Args)
		c.JSON = true
		return []Command{c}
	case "fmt":
		return []Command{cargo(nil, []string{"fmt", "--all", "--check"}, s.Args)}
	case "coverage":
		env := CoverageEnv(s)
		build := cargo(env, []string{"test", "--no-run", "--message-format=json-render-diagnostics"}, std(s, s.Args), cargoPart(s.Args))
		build.JSON = true
		return []Command{build, cargo(env, []string{"test"}, std(s, s.Args), s.Args)}
	case "tarpaulin":
		return []Command{cargo(nil, []string{"tarpaulin"}, flags(s, s.Args, "--profile", false),
			[]string{"--skip-clean", "--out", "Xml", "--out", "Lcov", "--out", "Html", "--out", "Json", "--output-dir", WorkDir + "/tarpaulin"}, s.Args)}
	case "nextest":
		args := []string{"nextest", "run"}
		if of > 1 {
			args = append(args, "--partition", fmt.Sprintf("count:%d/%d", part, of))
		}
		return []Command{cargo(nil, args, flags(s, s.Args, "--cargo-profile", false), s.Args)}
	case "deny":
		args := s.Args
		if len(args) == 0 {
			args = []string{"licenses", "bans", "sources"}
		}
		return []Command{cargo(nil, []string{"deny", "--offline", "--workspace", "check"}, args)}
	case "command":
		if len(s.Run) == 0 {
			return nil
		}
		return []Command{{Program: s.Run[0], Args: append(slices.Clone(s.Run[1:]), s.Args...)}}
	}
	return nil
}

// warmup is what the deps step runs on the skeleton so that step h finds
// every dependency built: the same cargo subcommand family, flags and target
// selection, without the user's code. The skeleton's stubs fail to compile
// on purpose and --keep-going builds every dependency regardless, so no
// stub is linked (see skeleton.OnlyStubsFailed).
func warmup(h *config.Step) []Command {
	args := cargoPart(h.Args)
	c := func(env map[string]string, sub ...string) Command {
		return cargo(env, append(sub, "--keep-going"), std(h, args), args)
	}
	switch h.Kind {
	case "clippy":
		// clippy reuses the dependencies that `cargo check` builds.
		return []Command{c(nil, "check")}
	case "test", "nextest":
		// `cargo test` (and nextest, which runs `cargo test --no-run`)
		// builds what `cargo build --tests` does and, when no target is
		// named, the examples too (to see that they compile); only
		// `cargo build` keeps going past the stubs.
		return []Command{c(nil, testBuild(args)...)}
	case "doctest":
		return []Command{c(nil, "build", "--tests")}
	case "doc":
		return []Command{c(nil, "doc", "--no-deps")}
	case "package":
		return []Command{c(nil, "build")}
	case "coverage":
		return []Command{c(CoverageEnv(h), testBuild(args)...)}
	case "tarpaulin":
		return []Command{cargo(nil, []string{"tarpaulin", "--no-run", "--skip-clean"}, flags(h, args, "--profile", false), args)}
	case "command":
		return []Command{c(nil, "build")}
	}
	return nil
}

// testBuild is the `cargo build` that builds what `cargo test` with these
// arguments does: examples too when none of its target options are given.
// Measured on ripgrep (cargo 1.95): without --examples the test step of a
// first run compiled three packages' examples after the deps step, 3.4 s.
func testBuild(args []string) []string {
	if selectsTargets(args) {
		return []string{"build", "--tests"}
	}
	return []string{"build", "--tests", "--examples"}
}

// selectsTargets reports whether cargo arguments name the targets to build.
func selectsTargets(args []string) bool {
	for _, a := range cargoPart(args) {
		switch strings.SplitN(a, "=", 2)[0] {
		case "--lib", "--bin", "--bins", "--example", "--examples", "--test", "--tests",
			"--bench", "--benches", "--all-targets", "--doc":
			return true
		}
	}
	return false
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
