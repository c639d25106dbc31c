// Package key computes a step's key: the name of its result in the store.
//
// Design. A step's key hashes everything that can change its result, and
// nothing else. What enters it: smelt's store format; the step's settings
// in smelt.toml (all but names: renaming a step changes no result); the
// commands it runs, with placeholders (kind.VendorConfig, kind.WorkDir)
// where paths differ between machines; the content of its cleaned source
// (the skeleton, for a deps step); the dependency set Cargo.lock names
// (vendor); the Rust toolchain; the versions of the external tools its kind
// runs; cargo's user configuration; the paths its commands see; and the
// content of what it inherits.
//
// No absolute path and no time enters it, so that two machines, two
// checkouts and two stores agree on every key, and a result built in one
// serves the others (the remote cache). Steps run in a private mount
// namespace at fixed paths under /srv/smelt (internal/sandbox,
// internal/run/sandbox.go), so the paths that cargo writes into target/
// (dep-info, debug info, OUT_DIR) are the same everywhere; the paths input
// names that fixed root, or, without a sandbox, the store the step ran in,
// whose results are then its own. Times never enter: the source's mtimes
// are laid out by the mtime rule from the stored ones, not read from disk.
//
// Early cutoff. The artifacts input is the content identity of what the
// step inherits, not its parent's key: a parent that runs again and gives
// the same target/ leaves its heirs' keys, and so their results, valid. A
// step that runs cargo keys only on the dependencies' part of it (DepsID):
// the workspace's own units there are a step's local history, and cargo
// rebuilds those its source leaves stale. A user's command could read
// anything, so it keys on all of it; a parent that keeps nothing gives
// "none".
package key

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// The inputs' names, as stored in result records and state files: renaming
// one changes every key.
const (
	Smelt       = "smelt"        // the store format
	Step        = "step"         // the step's settings
	Commands    = "commands"     // the commands it runs
	Source      = "source"       // its cleaned source (the skeleton for deps)
	Vendor      = "vendor"       // the dependency set Cargo.lock names
	Toolchain   = "toolchain"    // the Rust toolchain
	Tools       = "tools"        // the external tools' versions
	CargoConfig = "cargo-config" // cargo's user configuration
	Paths       = "paths"        // the paths its commands see
	Artifacts   = "artifacts"    // what it inherits, by content
)

// Words says in words what a change of each input means (smelt why).
var Words = map[string]string{
	Smelt:       "smelt's store format changed",
	Step:        "the step's settings in smelt.toml changed",
	Commands:    "the commands it runs changed (for deps: a step that inherits from it changed settings)",
	Source:      "source changed",
	Vendor:      "Cargo.lock changed (dependency sources)",
	Toolchain:   "the Rust toolchain changed",
	CargoConfig: "cargo's user configuration changed",
	Artifacts:   "the artifacts it inherits changed",
	Tools:       "an external tool it runs changed version",
	Paths:       "the paths its commands see changed (a sandbox, or the store's own)",
}

// Inputs are the named parts of a step's key.
type Inputs map[string]string

// Values are a step's inputs before they are named.
type Values struct {
	Smelt, Step, Commands string // from the step's definition (plan.StepValues)
	Source, Toolchain     string
	CargoConfig, Paths    string
	Tools                 string // "" when its kind runs no external tool: left out
	// UsesDependencies: the kind needs the vendored sources; Vendor names them.
	UsesDependencies bool
	Vendor           string
	// Inherits: the step starts from another's target/; Artifacts is its
	// content identity (see the package doc).
	Inherits  bool
	Artifacts string
}

// New names the values: the only place a step's inputs are made.
func New(v Values) Inputs {
	in := Inputs{
		Smelt:       v.Smelt,
		Step:        v.Step,
		Commands:    v.Commands,
		Source:      v.Source,
		Toolchain:   v.Toolchain,
		CargoConfig: v.CargoConfig,
		Paths:       v.Paths,
	}
	if v.Tools != "" {
		in[Tools] = v.Tools
	}
	if v.UsesDependencies {
		in[Vendor] = v.Vendor
	}
	if v.Inherits {
		in[Artifacts] = v.Artifacts
	}
	return in
}

// Key hashes the inputs.
func (in Inputs) Key() string {
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		// Quoted, so that no value can pose as another input.
		fmt.Fprintf(&b, "%q=%q\n", k, in[k])
	}
	s := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(s[:])
}
