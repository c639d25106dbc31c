// Package kind holds every step kind smelt knows, one file per kind. Each
// file declares, in one Spec, everything about its kind: the settings keys
// it takes, its default args, the tools it needs, its commands and the
// warm-ups a deps step runs for it, what the engine does with its target/
// and how it reads its outputs. Config, plan, cargo and run look kinds up
// here and never compare a kind's name.
//
// Adding a kind is adding one file: copy the file of the nearest kind
// (clippy.go for a cargo subcommand that only checks, coverage.go for one
// that writes reports), rename it and its Spec, give it the next Order, and
// fill in the fields. No other package compares a kind's name (the built-in
// pipeline in config/defaults.go names the kinds it uses, and the README's
// smelt.toml reference documents each).
package kind

import (
	"slices"
	"sort"
)

// Output says how the engine reads what a step produced besides target/.
type Output int

const (
	NoOutput        Output = iota
	Binaries               // the executables cargo reported (JSON messages), kept as bin/NAME
	DocHTML                // target/doc, kept as doc/
	TestCounts             // a summary of the test harness's result lines in the log
	LLVMCoverage           // llvm-cov reports of the raw profiles the tests wrote
	TarpaulinReport        // cargo-tarpaulin's reports and coverage figure
	Declared               // the files the step's outputs globs name
)

// Tool is an external program a kind runs; its version enters the key.
type Tool struct {
	Name        string   // the program, as found on PATH
	VersionArgs []string // the arguments that make it print its version
}

// Spec is everything about one kind.
type Spec struct {
	Name  string
	Order int // where it is listed (kinds in messages, Names)

	// Keys are the kind-specific settings keys it takes (fail-under,
	// partitions, run, outputs); Requires those it cannot do without.
	Keys, Requires []string
	DefaultArgs    []string // args when a step sets none
	Tools          []Tool   // external programs it runs
	LLVMTools      bool     // llvm-profdata and llvm-cov of the step's toolchain
	Component      string   // the rustup component it needs beyond cargo and rustc (a CI job installs it)

	KeepsArtifacts   bool // its target/ is stored for heirs
	UsesDependencies bool // it needs the vendored sources
	RunsTests        bool // it runs the project's tests (a missing file likely is one the cleaned source left out)
	// BuildsOwn: the warm-ups a deps step runs for it, run on the real
	// source, build what the step itself would of the workspace's own code
	// (see run/fuse.go): the deps step may run them fused, and the step
	// may start from the target/ they leave (a seed).
	BuildsOwn bool
	Skeleton  bool // it builds the dependencies alone, on the skeleton (deps)
	// UserCommand: it runs the user's own program, which may read or write
	// anything: network off, no hard links into the store, no warm start,
	// keyed on all of target/ it inherits, and its outputs appear in its
	// heirs' source.
	UserCommand bool
	Members     bool // STEP.MEMBER builds one workspace member's binaries with its settings
	Partitioned bool // partitions = N splits it into N steps, each cached on its own
	Output      Output
	// Summary reads the one-line summary of a step's log (TestCounts).
	Summary func(log []byte) string

	// Commands gives the commands a step of this kind runs (see Commands).
	Commands func(s *Step, heirs []*Step, part, of int) []Command
	// Warmup is what a deps step runs on the skeleton so that a step h of
	// this kind that inherits from it finds every dependency built: the
	// same cargo subcommand family, flags and target selection, without
	// the user's code. The skeleton's stubs fail to compile on purpose and
	// --keep-going builds every dependency regardless, so no stub is
	// linked (see skeleton.OnlyStubsFailed). nil: nothing to prepare.
	Warmup func(h *Step) []Command
}

// Takes reports whether the kind takes a kind-specific settings key.
func (s *Spec) Takes(key string) bool { return slices.Contains(s.Keys, key) }

var registry = map[string]*Spec{}

// register adds a kind; each kind's file calls it once.
func register(s *Spec) *Spec {
	if _, dup := registry[s.Name]; dup {
		panic("kind " + s.Name + " registered twice")
	}
	registry[s.Name] = s
	return s
}

// unknown is what Get gives for a name no kind has: no commands, nothing
// kept. Config rejects such a step; a stored result of an older smelt may
// still name one.
var unknown = Spec{}

// Get returns the kind named, or an empty Spec for an unknown name.
func Get(name string) *Spec {
	if s, ok := registry[name]; ok {
		return s
	}
	u := unknown
	u.Name = name
	return &u
}

// Known reports whether a kind of that name exists.
func Known(name string) bool { _, ok := registry[name]; return ok }

// Names lists the kinds in their Order.
func Names() []string {
	specs := make([]*Spec, 0, len(registry))
	for _, s := range registry {
		specs = append(specs, s)
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Order < specs[j].Order })
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

// Taking lists, sorted by name, the kinds that take a settings key.
func Taking(key string) []string {
	var out []string
	for name, s := range registry {
		if s.Takes(key) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// DefaultArgs gives a kind's extra args when a step sets none, as a fresh
// slice so callers may append to it without aliasing.
func DefaultArgs(name string) []string { return slices.Clone(Get(name).DefaultArgs) }

// Commands gives the commands that a step runs. heirs are the steps that
// (transitively) inherit a deps step's artifacts: the deps step builds the
// dependencies exactly as they will. part/of select a nextest partition.
func Commands(s *Step, heirs []*Step, part, of int) []Command {
	k := Get(s.Kind)
	if k.Commands == nil {
		return nil
	}
	return k.Commands(s, heirs, part, of)
}

// Warmup gives what a deps step runs for heir h (see Spec.Warmup).
func Warmup(h *Step) []Command {
	k := Get(h.Kind)
	if k.Warmup == nil {
		return nil
	}
	return k.Warmup(h)
}
