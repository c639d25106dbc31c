package kind

import (
	"fmt"
	"slices"
	"strings"
)

// What every kind's commands are made of: the Command type, the flags that
// every build-like command of a step gets, and cargo's argument grammar.

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
func flags(s *Step, extra []string, profileFlag string, vendorFlag bool) []string {
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

func std(s *Step, extra []string) []string { return flags(s, extra, "--profile", true) }

// one is the command of a kind that runs one cargo subcommand with the
// step's flags and args.
func one(sub ...string) func(s *Step, _ []*Step, _, _ int) []Command {
	return func(s *Step, _ []*Step, _, _ int) []Command {
		return []Command{cargo(nil, sub, std(s, s.Args), s.Args)}
	}
}

// warm is the usual warm-up: the cargo subcommand sub (with --keep-going)
// with the heir's flags and cargo's part of its args.
func warm(h *Step, env map[string]string, sub ...string) Command {
	args := cargoPart(h.Args)
	return cargo(env, append(sub, "--keep-going"), std(h, args), args)
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
