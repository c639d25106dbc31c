// Package config reads smelt.toml: the graph of cached steps smelt runs for a
// Cargo workspace, with [common] settings shallow-merged into every step.
package config

import (
	"strings"

	"smelt/internal/kind"
)

// Step is one [step.NAME] after the [common] merge (defined in package
// kind, whose commands are made from it).
type Step = kind.Step

// Config is a parsed smelt.toml.
type Config struct {
	File    string // path it was read from; "" for the built-in default
	Steps   map[string]*Step
	Order   []string // step names in the order they appear in the file
	Default string   // [outputs] default
	Checks  []string // [outputs] checks
	Remote  Remote   // [remote]
}

// Remote is the [remote] table: the remote caches and who to trust.
type Remote struct {
	URLs        []string // url: read in order; pushed to when push is set
	Push        bool     // push: upload what this machine builds
	TrustedKeys []string // trusted-public-keys: NAME:BASE64, checked by Parse
	Executor    string   // executor: grpc://HOST:PORT[/INSTANCE], runs the steps' commands
	Line        int      // line of [remote] (0 when absent)
}

// MemberSep joins a package step's name and a workspace member's: the step
// that builds that member's binaries alone (`cargo build -p MEMBER`), which
// [outputs] may name ("package.app"). Neither step nor package names hold
// it, and it is safe in paths (a step's name names its directories: ":"
// would split $LD_LIBRARY_PATH, which cargo sets to them).
const MemberSep = "."

// SplitMember parts STEP.MEMBER; a matrix row's name may hold a dot
// (package@1.80.app), a package's never does.
func SplitMember(name string) (step, member string, ok bool) {
	i := strings.LastIndex(name, MemberSep)
	if i <= 0 || i == len(name)-1 {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

// isOutput reports whether [outputs] may name name: a step, or a package
// step's build of one member (which member cargo checks).
func (c *Config) isOutput(name string) bool {
	if c.Steps[name] != nil {
		return true
	}
	base, _, ok := SplitMember(name)
	return ok && c.Steps[base] != nil && kind.Get(c.Steps[base].Kind).Members
}
