// Package ci writes CI workflows (GitHub Actions, GitLab CI) that run each
// step the checks of smelt.toml need as a job of its own: a job starts when
// the jobs of the steps it inherits from have passed, runs `smelt check
// STEP`, and takes what it inherits from the remote cache that all jobs share.
package ci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"smelt/internal/config"
	"smelt/internal/kind"
	"smelt/internal/plan"
)

// Job is one step as a CI job.
type Job struct {
	ID         string   // the job's id in the workflow
	Step       string   // the smelt step it checks
	Needs      []string // ids of the jobs of the step it inherits from (one or none)
	Toolchains []string // rustup toolchains it and the steps it inherits from use ("" = the project's)
	Components []string // rustup components they need
	Targets    []string // target triples they build for
	Tools      []string // cargo subcommands they run (cargo-nextest, …)
}

// Toolchain is what rust-toolchain.toml asks for.
type Toolchain struct {
	File       string // the file's name: rust-toolchain.toml or rust-toolchain
	Channel    string
	Components []string
	Targets    []string
}

// ReadToolchain reads the project's rust-toolchain.toml (or the older
// rust-toolchain); nil when it has neither.
func ReadToolchain(root string) (*Toolchain, error) {
	for _, name := range []string{"rust-toolchain.toml", "rust-toolchain"} {
		data, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		tc := &Toolchain{File: name}
		text := strings.TrimSpace(string(data))
		if name == "rust-toolchain" && !strings.Contains(text, "[toolchain]") {
			tc.Channel = text // the old form: the channel alone
			return tc, nil
		}
		var f struct {
			Toolchain struct {
				Channel    string   `toml:"channel"`
				Components []string `toml:"components"`
				Targets    []string `toml:"targets"`
			} `toml:"toolchain"`
		}
		if err := toml.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("%s: %v: fix the file so that rustup can read it", name, err)
		}
		tc.Channel, tc.Components, tc.Targets = f.Toolchain.Channel, f.Toolchain.Components, f.Toolchain.Targets
		return tc, nil
	}
	return nil, nil
}

// reserved are job names the workflows use themselves or that GitLab
// reads as keywords at the top level.
var reserved = []string{"smelt", "image", "services", "stages", "types", "before_script", "after_script",
	"variables", "cache", "include", "default", "workflow", "pages", "spec"}

var notID = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// Jobs lists a job for each step the checks of cfg need (every step when
// cfg names no checks), in the graph's order.
func Jobs(g *plan.Graph, cfg *config.Config) ([]Job, error) {
	checks := cfg.Checks
	if len(checks) == 0 {
		checks = g.Order
	}
	var names []string
	for _, c := range checks {
		if rows, err := cfg.Resolve(c); err == nil {
			names = append(names, rows...)
		} else {
			names = append(names, c) // a partition, or unknown: Select says which
		}
	}
	nodes, err := g.Select(names)
	if err != nil {
		return nil, err
	}
	ids := map[string]string{}
	taken := map[string]bool{}
	for _, r := range reserved {
		taken[r] = true
	}
	var jobs []Job
	for _, n := range nodes {
		// Job ids: letters, digits, - and _ (clippy@stable → clippy-stable,
		// tests#2 → tests-2), starting with a letter, never twice.
		id := strings.Trim(notID.ReplaceAllString(n.Name(), "-"), "-")
		if id == "" || !(id[0] >= 'A' && id[0] <= 'Z' || id[0] >= 'a' && id[0] <= 'z') {
			id = "step-" + id
		}
		for base, i := id, 2; taken[id]; i++ {
			id = fmt.Sprintf("%s-%d", base, i)
		}
		taken[id] = true
		ids[n.Name()] = id
		j := Job{ID: id, Step: n.Name()}
		if n.Parent != nil {
			j.Needs = []string{ids[n.Parent.Name()]}
		}
		// A job computes the keys of the steps it inherits from, and builds
		// them when the cache lacks them (a branch that may not push), so
		// it needs their tools too.
		for m := n; m != nil; m = m.Parent {
			s := m.Step
			j.Toolchains = addOnce(j.Toolchains, s.Toolchain)
			if s.Target != "" {
				j.Targets = addOnce(j.Targets, s.Target)
			}
			// What its kind needs beyond cargo and rustc.
			k := kind.Get(s.Kind)
			if k.Component != "" {
				j.Components = addOnce(j.Components, k.Component)
			}
			for _, t := range k.Tools {
				j.Tools = addOnce(j.Tools, t.Name)
			}
		}
		sort.Strings(j.Toolchains)
		sort.Strings(j.Components)
		sort.Strings(j.Targets)
		sort.Strings(j.Tools)
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func addOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// Options are the choices a workflow leaves to its user.
type Options struct {
	// SmeltGit and SmeltRef name the git repository smelt is built from in
	// CI, and the branch, tag or commit; "" leaves them to CI variables
	// (SMELT_GIT, SMELT_REF, main by default).
	SmeltGit, SmeltRef string
	Toolchain          *Toolchain // the project's rust-toolchain.toml; nil: none
	Source             string     // what the workflow was written from, for its header
}

// ParseFrom splits --smelt-from's URL#REF.
func ParseFrom(s string) (git, ref string) {
	git, ref, _ = strings.Cut(s, "#")
	return git, ref
}

// rustup lists the shell commands that install what a job needs.
func (j Job) rustup(tc *Toolchain) []string {
	var cmds []string
	comps := slices.Clone(j.Components)
	targets := slices.Clone(j.Targets)
	fileChannel := ""
	if tc != nil {
		fileChannel = tc.Channel
		for _, c := range tc.Components {
			comps = addOnce(comps, c)
		}
		for _, t := range tc.Targets {
			targets = addOnce(targets, t)
		}
	}
	sort.Strings(comps)
	sort.Strings(targets)
	setDefault := false
	for _, name := range j.Toolchains {
		ch := name
		if ch == "" {
			ch = fileChannel
		}
		if ch == "" {
			// Without rust-toolchain.toml the project builds with
			// rustup's default toolchain.
			ch, setDefault = "stable", true
		}
		c := "rustup toolchain install " + shellQuote(ch) + " --profile minimal --no-self-update"
		for _, comp := range comps {
			c += " --component " + shellQuote(comp)
		}
		for _, t := range targets {
			c += " --target " + shellQuote(t)
		}
		cmds = append(cmds, c)
	}
	if setDefault {
		cmds = append(cmds, "rustup default stable")
	}
	return cmds
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// buildSmelt is the script that builds smelt from its repository into out,
// cloning it under tmp. smelt's Go module path ("smelt") is not a URL, so
// `go install PATH@VERSION` cannot fetch it.
func buildSmelt(tmp, out string) []string {
	src := tmp + "/smelt-src"
	return []string{
		`git init -q "` + src + `"`,
		`git -C "` + src + `" fetch -q --depth 1 "$SMELT_GIT" "$SMELT_REF"`,
		`git -C "` + src + `" checkout -q FETCH_HEAD`,
		`(cd "` + src + `" && CGO_ENABLED=0 go build -trimpath -o "` + out + `" ./cmd/smelt)`,
	}
}

// header is the comment that opens both workflows.
func header(cmd string, o Options, vars string) string {
	src := o.Source
	if src == "" {
		src = "smelt.toml"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `%s` from %s: each step the checks need is a job of its\n", cmd, src)
	b.WriteString("# own, which starts when the job of the step it inherits from has passed and\n")
	b.WriteString("# runs `smelt check STEP`: it takes what it inherits from smelt's remote cache,\n")
	b.WriteString("# shared by every job, and builds only its own step. Write it again when\n")
	b.WriteString("# smelt.toml changes.\n#\n")
	b.WriteString(vars)
	b.WriteString("#\n# Runs on the default branch write to the cache; every other run only reads\n")
	b.WriteString("# it, so there a job whose inherited results the cache lacks builds them too.\n")
	b.WriteString("# smelt is built once per run from its git repository (SMELT_GIT at\n")
	b.WriteString("# SMELT_REF): its Go module path is not a URL `go install` can fetch. Pin\n")
	b.WriteString("# SMELT_REF to a tag or commit so every run uses the same smelt.\n")
	return b.String()
}
