package cargo

import (
	"path"
	"slices"
	"strings"

	"smelt/internal/config"
)

// VendorConfig stands in a command line for the path of the vendored
// sources' config file, so that the command (which enters the key) does not
// depend on where the store is.
const VendorConfig = "<vendor-config>"

// Command is one cargo invocation: its arguments after `cargo`.
type Command []string

// selection reports whether args already choose packages.
func selectsPackages(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-p" || a == "--workspace" || a == "--all" || a == "--manifest-path" ||
			strings.HasPrefix(a, "--package") || strings.HasPrefix(a, "--manifest-path=") {
			return true
		}
	}
	return false
}

// cargoPart is args before `--` (cargo's own), the rest goes to the tool.
func cargoPart(args []string) []string {
	if i := slices.Index(args, "--"); i >= 0 {
		return args[:i]
	}
	return args
}

// common is what every build-like command of a step gets. It must be the
// same for the deps step and its heirs, or cargo rebuilds the dependencies.
func common(s *config.Step, extra []string) []string {
	out := []string{"--offline", "--locked", "--config", VendorConfig, "--profile", s.Profile}
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

// Commands gives the cargo commands that a step of kind s.Kind runs.
// heirs are the steps that (transitively) inherit a deps step's artifacts:
// the deps step builds the dependencies exactly as they will.
func Commands(s *config.Step, heirs []*config.Step) []Command {
	join := func(parts ...[]string) Command {
		var c Command
		for _, p := range parts {
			c = append(c, p...)
		}
		return c
	}
	switch s.Kind {
	case "deps":
		var cmds []Command
		add := func(c Command) {
			for _, have := range cmds {
				if slices.Equal(have, c) {
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
			add(join([]string{"check"}, common(s, nil), []string{"--all-targets"}))
			add(join([]string{"build"}, common(s, nil)))
		}
		for i := range cmds {
			cmds[i] = append(cmds[i], s.Args...)
		}
		return cmds
	case "clippy":
		return []Command{join([]string{"clippy"}, common(s, s.Args), s.Args)}
	case "test":
		return []Command{join([]string{"test"}, common(s, s.Args), s.Args)}
	case "doc":
		return []Command{join([]string{"doc", "--no-deps"}, common(s, s.Args), s.Args)}
	case "package":
		return []Command{join([]string{"build", "--message-format=json-render-diagnostics"}, common(s, s.Args), s.Args)}
	case "fmt":
		return []Command{join([]string{"fmt", "--all", "--check"}, s.Args)}
	}
	return nil
}

// warmup is what the deps step runs on the skeleton so that step h finds
// every dependency built: the same cargo subcommand family, flags and target
// selection, without the user's code.
func warmup(h *config.Step) []Command {
	args := cargoPart(h.Args)
	c := func(sub ...string) Command {
		return append(append(Command{}, sub...), append(common(h, args), args...)...)
	}
	switch h.Kind {
	case "clippy":
		// clippy reuses the dependencies that `cargo check` builds.
		return []Command{c("check")}
	case "test":
		return []Command{c("test", "--no-run")}
	case "doc":
		return []Command{c("doc", "--no-deps")}
	case "package":
		return []Command{c("build")}
	}
	return nil
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

// Expand replaces the vendor-config placeholder with the real path.
func (c Command) Expand(vendorConfig string) []string {
	out := make([]string, len(c))
	for i, a := range c {
		if a == VendorConfig {
			a = vendorConfig
		}
		out[i] = a
	}
	return out
}
