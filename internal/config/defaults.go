package config

import "smelt/internal/kind"

// Kinds lists the step kinds this version knows, in a stable order.
var Kinds = kind.Names()

// DefaultArgs gives each kind's extra args when a step sets none, as a
// fresh slice so callers may append to it without aliasing.
func DefaultArgs(k string) []string { return kind.DefaultArgs(k) }

// defaultProfile is what a step builds with when neither it nor [common]
// sets a profile: smelt produces shippable output, so release.
const defaultProfile = "release"

// Default is the built-in pipeline used when a project has no smelt.toml:
// deps first, then every other step starts from the deps target/ (fmt needs
// no compiled code, so it starts from nothing).
func Default() *Config {
	c := &Config{
		Steps:   map[string]*Step{},
		Default: "package",
		Checks:  []string{"clippy", "test", "fmt", "doc", "package"},
	}
	for _, s := range []struct{ name, kind, artifacts string }{
		{"deps", "deps", ""},
		{"clippy", "clippy", "deps"},
		{"test", "test", "deps"},
		{"fmt", "fmt", ""},
		{"doc", "doc", "deps"},
		{"package", "package", "deps"},
	} {
		c.Steps[s.name] = &Step{
			Name:     s.name,
			Kind:     s.kind,
			Inherits: s.artifacts,
			Args:     DefaultArgs(s.kind),
			Profile:  defaultProfile,
			Env:      map[string]string{},
			Base:     s.name,
		}
		c.Order = append(c.Order, s.name)
	}
	return c
}

// DefaultTOML is Default() written out as a commented smelt.toml, so a user
// can start from the built-in pipeline and edit it.
func DefaultTOML() string { return defaultTOML }

// SequentialTOML is a commented smelt.toml for a strict chain in which each
// step starts from the previous step's target/ and runs only if it passed.
func SequentialTOML() string { return sequentialTOML }

const defaultTOML = `# smelt.toml: the build pipeline smelt runs for this Cargo workspace.
#
# Each [step.NAME] table is one cached step; smelt reruns a step only when its
# inputs change. "kind" says what the step does (deps, clippy, test, fmt, doc,
# package). "artifacts" names the step whose target/ directory this step starts
# from, so it reuses the dependencies that step already compiled.
# More kinds: tarpaulin and coverage (fail-under = 80: minimum line coverage
# in percent), nextest (partitions = 4: split the tests into 4 steps), doctest,
# deny (cargo-deny), and command (run = "make assets" or ["make", "assets"],
# outputs = ["assets/out/**"]: the files it produces).
#
# [common] is merged into every step key by key, a shallow merge: a key set in
# a step replaces the [common] value entirely (an env table in a step replaces
# the whole [common] env; a features list replaces the whole list).
# Keys for [common] and for steps: profile, features, all-features,
# no-default-features, target, toolchain, cargo-args, env, include, exclude.
# Steps also take: kind (required), artifacts, args, and the kind-specific
# fail-under, partitions, run, outputs.
#
# A [matrix] runs every step once per row, named STEP@ROW (clippy@nightly,
# test@features=serde, clippy@nightly,features=serde); [outputs] names the
# steps without @ROW. Rows can override [common] keys:
# [matrix]
# toolchain = ["stable", "nightly"]
# features = [["serde"], []]
# [matrix.row."nightly,features=serde"]
# cargo-args = ["-Zunstable-options"]

[common]
profile = "release"

# build only the dependencies, on a skeleton of the workspace: reruns only when Cargo.toml or Cargo.lock change
[step.deps]
kind = "deps"

# lint with clippy on top of the compiled dependencies (default args: --all-targets -- --deny warnings)
[step.clippy]
kind = "clippy"
artifacts = "deps"

# run the test suite on top of the compiled dependencies
[step.test]
kind = "test"
artifacts = "deps"

# check formatting with rustfmt: needs no compiled code, so it starts from an empty target/
[step.fmt]
kind = "fmt"

# build the documentation on top of the compiled dependencies
[step.doc]
kind = "doc"
artifacts = "deps"

# build the workspace's final output on top of the compiled dependencies
[step.package]
kind = "package"
artifacts = "deps"

# default: the step whose output is built when none is asked for.
# checks: the steps that must all pass for the project to be green.
[outputs]
default = "package"
checks = ["clippy", "test", "fmt", "doc", "package"]
`

const sequentialTOML = `# smelt.toml: a sequential pipeline. Each step starts from the target/ of the
# step before it and runs only if that step passed, so a lint failure stops
# the tests and a test failure stops the package.
#
# [common] is merged into every step key by key, a shallow merge: a key set in
# a step replaces the [common] value entirely.

[common]
profile = "release"

# build only the dependencies, on a skeleton of the workspace: reruns only when Cargo.toml or Cargo.lock change
[step.deps]
kind = "deps"

# lint with clippy, denying warnings; runs only if deps built
[step.clippy]
kind = "clippy"
artifacts = "deps"
args = ["--all-targets", "--", "--deny", "warnings"]

# run the test suite; runs only if clippy passed
[step.test]
kind = "test"
artifacts = "clippy"

# build the final crate; runs only if the tests passed
[step.crate]
kind = "package"
artifacts = "test"

[outputs]
default = "crate"
checks = ["clippy", "test", "crate"]
`
