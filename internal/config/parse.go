package config

// Parsing smelt.toml: decoding, validating and merging the steps.

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"smelt/internal/kind"
)

// Load reads and parses the smelt.toml at path. A missing file is returned
// as the *fs.PathError from os.ReadFile, so callers can test
// errors.Is(err, fs.ErrNotExist) and fall back to Default().
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Key sets. They must match the toml tags of the raw types below
// (config_test.go checks this), since error fixes list them.
var (
	commonKeys  = []string{"profile", "features", "all-features", "no-default-features", "target", "toolchain", "cargo-args", "env", "include", "exclude"}
	stepOnly    = []string{"kind", "artifacts", "args", "fail-under", "partitions", "run", "outputs"}
	stepKeys    = slices.Concat(stepOnly[:3], commonKeys, stepOnly[3:]) // kind, artifacts, args first in fixes
	outputsKeys = []string{"default", "checks"}
	matrixKeys  = []string{"toolchain", "target", "features", "row"}
	remoteKeys  = []string{"url", "push", "trusted-public-keys", "executor"}
	topTables   = []string{"common", "step", "matrix", "outputs", "remote"}
)

// Raw types use pointers so "unset" differs from a zero value: the shallow
// merge needs to know whether a step set a key at all.
type rawCommon struct {
	Profile           *string            `toml:"profile"`
	Features          *[]string          `toml:"features"`
	AllFeatures       *bool              `toml:"all-features"`
	NoDefaultFeatures *bool              `toml:"no-default-features"`
	Target            *string            `toml:"target"`
	Toolchain         *string            `toml:"toolchain"`
	CargoArgs         *[]string          `toml:"cargo-args"`
	Env               *map[string]string `toml:"env"`
	Include           *[]string          `toml:"include"`
	Exclude           *[]string          `toml:"exclude"`
}

type rawStep struct {
	rawCommon
	Kind       *string   `toml:"kind"`
	Artifacts  *string   `toml:"artifacts"`
	Args       *[]string `toml:"args"`
	FailUnder  *float64  `toml:"fail-under"` // go-toml decodes integers into floats too
	Partitions *int      `toml:"partitions"`
	Run        any       `toml:"run"` // a string or a list of strings, checked by runArgv
	Outputs    *[]string `toml:"outputs"`
}

type rawMatrix struct {
	Toolchain *[]string             `toml:"toolchain"`
	Target    *[]string             `toml:"target"`
	Features  *[][]string           `toml:"features"`
	Row       map[string]*rawCommon `toml:"row"`
}

type rawOutputs struct {
	Default *string   `toml:"default"`
	Checks  *[]string `toml:"checks"`
}

type rawRemote struct {
	URL     any       `toml:"url"` // a string or a list of strings
	Push    *bool     `toml:"push"`
	Trusted *[]string `toml:"trusted-public-keys"`
	Exec    *string   `toml:"executor"`
}

type rawFile struct {
	Common  *rawCommon          `toml:"common"`
	Step    map[string]*rawStep `toml:"step"`
	Matrix  *rawMatrix          `toml:"matrix"`
	Outputs *rawOutputs         `toml:"outputs"`
	Remote  *rawRemote          `toml:"remote"`
}

// The loose types have the same keys but accept any value. go-toml stops at
// the first type error and only reports unknown keys when decoding succeeds,
// so a first strict pass into these finds every unknown key regardless of
// value types; that lets us report whichever problem comes first in the file.
type looseCommon struct {
	Profile           any `toml:"profile"`
	Features          any `toml:"features"`
	AllFeatures       any `toml:"all-features"`
	NoDefaultFeatures any `toml:"no-default-features"`
	Target            any `toml:"target"`
	Toolchain         any `toml:"toolchain"`
	CargoArgs         any `toml:"cargo-args"`
	Env               any `toml:"env"`
	Include           any `toml:"include"`
	Exclude           any `toml:"exclude"`
}

type looseStep struct {
	looseCommon
	Kind       any `toml:"kind"`
	Artifacts  any `toml:"artifacts"`
	Args       any `toml:"args"`
	FailUnder  any `toml:"fail-under"`
	Partitions any `toml:"partitions"`
	Run        any `toml:"run"`
	Outputs    any `toml:"outputs"`
}

type looseMatrix struct {
	Toolchain any                     `toml:"toolchain"`
	Target    any                     `toml:"target"`
	Features  any                     `toml:"features"`
	Row       map[string]*looseCommon `toml:"row"`
}

type looseFile struct {
	Common  *looseCommon          `toml:"common"`
	Step    map[string]*looseStep `toml:"step"`
	Matrix  *looseMatrix          `toml:"matrix"`
	Outputs *struct {
		Default any `toml:"default"`
		Checks  any `toml:"checks"`
	} `toml:"outputs"`
	Remote *struct {
		URL     any `toml:"url"`
		Push    any `toml:"push"`
		Trusted any `toml:"trusted-public-keys"`
		Exec    any `toml:"executor"`
	} `toml:"remote"`
}

var validStepName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

type parser struct {
	file string
	ix   *textIndex
	errs []*Error
}

func (p *parser) add(line int, fix, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...), Fix: fix})
}

// Parse parses smelt.toml text; file is used in errors and Config.File.
// On error it returns the first problem in file order as an *Error.
func Parse(file string, data []byte) (*Config, error) {
	p := &parser{file: file, ix: indexText(data)}
	// Both passes share syntax errors; otherwise the earlier line wins.
	looseErr := p.decode(data, &looseFile{})
	var raw rawFile
	typedErr := p.decode(data, &raw)
	if e := earliest(looseErr, typedErr, p.caseError()); e != nil {
		return nil, e
	}

	remote := p.remote(raw.Remote)
	if len(raw.Step) == 0 && raw.Remote != nil && raw.Common == nil && raw.Matrix == nil && raw.Outputs == nil {
		// Only [remote]: the default pipeline, with its remote caches.
		if e := earliest(p.errs...); e != nil {
			return nil, e
		}
		cfg := Default()
		cfg.File, cfg.Remote = file, remote
		return cfg, nil
	}
	if len(raw.Step) == 0 {
		return nil, &Error{File: file, Line: p.ix.line("step"), Msg: "no steps are defined",
			Fix: "add a [step.NAME] table or delete smelt.toml to use the default pipeline"}
	}

	common := raw.Common
	if common == nil {
		common = &rawCommon{}
	}
	if common.Profile != nil && *common.Profile == "" {
		p.add(p.ix.line("common", "profile"), `set a cargo profile such as "release" or "dev", or remove the key to get "release"`,
			`profile in [common] is empty`)
	}
	p.noTargetDir([]string{"common"}, common, nil)
	rows := p.matrix(raw.Matrix)
	for _, r := range rows {
		if r.over != nil {
			p.noTargetDir([]string{"matrix", "row", r.label}, r.over, nil)
		}
	}

	// Validate and merge the steps as written (with the first row's values
	// under a matrix); the checks between steps work on these base steps,
	// since every row has the same graph.
	base := &Config{File: file, Steps: map[string]*Step{}, Order: p.stepOrder(raw.Step)}
	var first *row
	if len(rows) > 0 {
		first = &rows[0]
	}
	for _, name := range base.Order {
		base.Steps[name] = p.step(name, raw.Step[name], common, first)
	}
	for _, name := range base.Order {
		s := base.Steps[name]
		if s.Inherits == "" {
			continue
		}
		from := base.Steps[s.Inherits]
		switch {
		case from == nil:
			p.add(p.ix.line("step", name, "artifacts"), p.stepFix(s.Inherits, base.Order),
				"step %q takes artifacts from unknown step %q", name, s.Inherits)
		case kind.Get(from.Kind).Partitioned && from.Partitions > 1:
			fix := fmt.Sprintf("remove artifacts from %q, or remove partitions from %q", name, s.Inherits)
			if from.Inherits != "" {
				fix = fmt.Sprintf("take artifacts from %q (where %q starts), or remove partitions from %q", from.Inherits, s.Inherits, s.Inherits)
			}
			p.add(p.ix.line("step", name, "artifacts"), fix,
				"step %q takes artifacts from step %q, which is split into %d partitions, so it has no single target/", name, s.Inherits, from.Partitions)
		}
	}
	p.cycles(base)
	p.outputs(base, raw.Outputs)

	if e := earliest(p.errs...); e != nil {
		return nil, e
	}
	base.Remote = remote
	if rows == nil {
		return base, nil
	}
	cfg := p.expand(base, raw, common, rows)
	cfg.Remote = remote
	return cfg, nil
}

// step validates one raw step and merges into it, in order, [common], the
// row's override table, the step's own keys and the row's dimension values.
// r is nil without a matrix.
func (p *parser) step(name string, rs *rawStep, common *rawCommon, r *row) *Step {
	if rs == nil {
		rs = &rawStep{}
	}
	header := p.ix.line("step", name)
	if !validStepName.MatchString(name) {
		p.add(header, `use only letters, digits, "_" and "-" ("@" is reserved)`, "step name %q is not allowed", name)
	}
	kinds := strings.Join(Kinds, ", ")
	k := ""
	switch {
	case rs.Kind == nil:
		p.add(header, "add a kind key set to one of: "+kinds, "step %q has no kind", name)
	case !slices.Contains(Kinds, *rs.Kind):
		fix := "valid kinds: " + kinds
		if near := nearest(*rs.Kind, Kinds); near != "" {
			fix = fmt.Sprintf("did you mean %q? (valid kinds: %s)", near, kinds)
		}
		p.add(p.ix.line("step", name, "kind"), fix, "step %q has unknown kind %q", name, *rs.Kind)
	default:
		k = *rs.Kind
	}
	if rs.Profile != nil && *rs.Profile == "" {
		p.add(p.ix.line("step", name, "profile"), `set a cargo profile such as "release" or "dev", or remove the key to inherit one`,
			"profile of step %q is empty", name)
	}

	p.noTargetDir([]string{"step", name}, &rs.rawCommon, rs.Args)

	layers := []*rawCommon{common}
	label := ""
	if r != nil {
		layers = append(layers, r.over)
		label = r.label
	}
	layers = append(layers, &rs.rawCommon)
	if r != nil {
		layers = append(layers, &rawCommon{Toolchain: r.toolchain, Target: r.target, Features: r.features})
	}
	m := merge(layers...)
	s := &Step{
		Name:              name,
		Kind:              k,
		Inherits:          deref(rs.Artifacts),
		Args:              DefaultArgs(k),
		Profile:           defaultProfile,
		Features:          cloneList(m.Features),
		AllFeatures:       deref(m.AllFeatures),
		NoDefaultFeatures: deref(m.NoDefaultFeatures),
		Target:            deref(m.Target),
		CargoArgs:         cloneList(m.CargoArgs),
		Env:               map[string]string{},
		Include:           cloneList(m.Include),
		Exclude:           cloneList(m.Exclude),
		Line:              header,
		Toolchain:         deref(m.Toolchain),
		Outputs:           cloneList(rs.Outputs),
		Base:              name,
		Row:               label,
	}
	if rs.Args != nil {
		s.Args = cloneList(rs.Args)
	}
	if m.Profile != nil {
		s.Profile = *m.Profile
	}
	// Copy so steps never share (and mutate) the [common] env map.
	if m.Env != nil {
		for k, v := range *m.Env {
			s.Env[k] = v
		}
	}
	p.kindKeys(s, rs)
	return s
}

// targetDirEnv are the variables that move cargo's target directory.
var targetDirEnv = []string{"CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"}

// noTargetDir rejects settings that move cargo's target directory: smelt
// stores and restores the target/ it gives each step, so cargo must write
// there (elsewhere, a step would pass and store nothing).
func (p *parser) noTargetDir(table []string, c *rawCommon, args *[]string) {
	const fix = "remove it: smelt gives each step its own target directory and keeps what cargo writes there (`smelt restore STEP DIR` writes a step's target/ where you want it)"
	where := "[" + strings.Join(table, ".") + "]"
	if c.Env != nil {
		for _, k := range targetDirEnv {
			if _, ok := (*c.Env)[k]; ok {
				p.add(p.ix.line(append(slices.Clone(table), "env", k)...), fix, "env in %s sets %s", where, k)
			}
		}
	}
	for key, list := range map[string]*[]string{"cargo-args": c.CargoArgs, "args": args} {
		if list == nil {
			continue
		}
		for _, a := range *list {
			if a == "--" {
				break // what follows goes to the tool cargo runs
			}
			if a == "--target-dir" || strings.HasPrefix(a, "--target-dir=") {
				p.add(p.ix.line(append(slices.Clone(table), key)...), fix, "%s in %s passes --target-dir", key, where)
				break
			}
		}
	}
}

// kindKeys checks and sets the keys that belong to some kinds only (each
// kind's Spec lists those it takes).
func (p *parser) kindKeys(s *Step, rs *rawStep) {
	name, k := s.Name, kind.Get(s.Kind)
	known := s.Kind != "" // an unknown kind is reported already; don't pile on
	// wrong reports a key that the step's kind does not take.
	wrong := func(key, orSet string) {
		p.add(p.ix.line("step", name, key), key+" applies only to "+kindList(kind.Taking(key))+"; remove it"+orSet,
			"step %q of kind %q does not take %s", name, s.Kind, key)
	}
	if rs.FailUnder != nil {
		line := p.ix.line("step", name, "fail-under")
		v := *rs.FailUnder
		switch {
		case known && !k.Takes("fail-under"):
			wrong("fail-under", "")
		case !(v >= 0 && v <= 100):
			p.add(line, "write a percentage such as fail-under = 80 (0 = no minimum)",
				"fail-under of step %q is %v, outside 0 to 100", name, v)
		default:
			s.FailUnder = v
		}
	}
	if rs.Partitions != nil {
		line := p.ix.line("step", name, "partitions")
		n := *rs.Partitions
		switch {
		case known && !k.Takes("partitions"):
			wrong("partitions", "")
		case n < 1:
			p.add(line, "use partitions = 2 or more to split the tests, or remove the key",
				"partitions of step %q is %d, must be at least 1", name, n)
		default:
			s.Partitions = n
		}
	}
	if rs.Run != nil {
		line := p.ix.line("step", name, "run")
		argv, err := runArgv(rs.Run)
		switch {
		case err != "":
			p.add(line, `write it like run = "make assets" (run by sh -c) or run = ["make", "assets"]`,
				`"run" in [step.%s] must be %s`, name, err)
		case known && !k.Takes("run"):
			orSet := ""
			if t := kind.Taking("run"); len(t) == 1 {
				orSet = fmt.Sprintf(" or set kind = %q", t[0])
			}
			wrong("run", orSet)
		default:
			s.Run = argv
		}
	} else if slices.Contains(k.Requires, "run") {
		p.add(p.ix.line("step", name), `add run = "make assets" (run by sh -c) or run = ["make", "assets"]`,
			"step %q of kind %q has no run", name, s.Kind)
	}
	if rs.Outputs != nil && known && !k.Takes("outputs") {
		wrong("outputs", "")
		s.Outputs = nil
	}
}

// runArgv turns the run value into argv: a string s is ["sh", "-c", s]. On
// a bad value it returns what the value must be, and what it got.
func runArgv(v any) ([]string, string) {
	switch v := v.(type) {
	case string:
		if strings.TrimSpace(v) == "" {
			return nil, "a non-empty command, got an empty string"
		}
		return []string{"sh", "-c", v}, ""
	case []any:
		if len(v) == 0 {
			return nil, "a non-empty command, got an empty list"
		}
		argv := make([]string, len(v))
		for i, a := range v {
			str, ok := a.(string)
			if !ok {
				return nil, fmt.Sprintf("a string or a list of strings, got a list holding %s", article(tomlTypeName(a)))
			}
			argv[i] = str
		}
		if argv[0] == "" {
			return nil, "a command whose first element names the program, got an empty first element"
		}
		return argv, ""
	default:
		return nil, "a string or a list of strings, got " + article(tomlTypeName(v))
	}
}

// merge overlays the layers key by key: the last layer that sets a key wins.
func merge(layers ...*rawCommon) rawCommon {
	var m rawCommon
	for _, l := range layers {
		if l == nil {
			continue
		}
		m.Profile = pick(l.Profile, m.Profile)
		m.Features = pick(l.Features, m.Features)
		m.AllFeatures = pick(l.AllFeatures, m.AllFeatures)
		m.NoDefaultFeatures = pick(l.NoDefaultFeatures, m.NoDefaultFeatures)
		m.Target = pick(l.Target, m.Target)
		m.Toolchain = pick(l.Toolchain, m.Toolchain)
		m.CargoArgs = pick(l.CargoArgs, m.CargoArgs)
		m.Env = pick(l.Env, m.Env)
		m.Include = pick(l.Include, m.Include)
		m.Exclude = pick(l.Exclude, m.Exclude)
	}
	return m
}

// cycles reports each artifacts cycle once, from the member that comes
// first in the file, so the message reads in file order.
func (p *parser) cycles(cfg *Config) {
	reported := map[string]bool{}
	for _, name := range cfg.Order {
		if reported[name] {
			continue
		}
		var path []string
		pos := map[string]int{}
		for cur := name; cur != "" && cfg.Steps[cur] != nil; cur = cfg.Steps[cur].Inherits {
			if i, ok := pos[cur]; ok {
				if i == 0 { // name itself is on the cycle
					for _, n := range path {
						reported[n] = true
					}
					line := p.ix.line("step", name, "artifacts")
					if len(path) == 1 {
						p.add(line, "remove artifacts or name another step", "step %q takes artifacts from itself (%s -> %s)", name, name, name)
					} else {
						p.add(line, "remove artifacts from one of these steps", "steps take artifacts from each other in a cycle: %s -> %s",
							strings.Join(path, " -> "), name)
					}
				}
				break
			}
			pos[cur] = len(path)
			path = append(path, cur)
		}
	}
}

func (p *parser) outputs(cfg *Config, out *rawOutputs) {
	if out == nil {
		out = &rawOutputs{}
	}
	if out.Default != nil {
		// An explicit "" means "no default output", so it is not checked.
		cfg.Default = *out.Default
		if cfg.Default != "" && !cfg.isOutput(cfg.Default) {
			p.add(p.ix.line("outputs", "default"), p.stepFix(cfg.Default, cfg.Order),
				"[outputs] default names unknown step %q", cfg.Default)
		}
	} else {
		for _, name := range cfg.Order {
			if kind.Get(cfg.Steps[name].Kind).Members {
				cfg.Default = name
				break
			}
		}
	}
	if out.Checks != nil {
		cfg.Checks = cloneList(out.Checks)
		for _, c := range cfg.Checks {
			if !cfg.isOutput(c) {
				p.add(p.ix.line("outputs", "checks"), p.stepFix(c, cfg.Order), "[outputs] checks names unknown step %q", c)
				break
			}
		}
	} else {
		cfg.Checks = slices.Clone(cfg.Order)
	}
}

// stepOrder is the order the steps' tables appear in the text; steps the
// scanner could not place (unusual layouts) follow, sorted, for determinism.
func (p *parser) stepOrder(steps map[string]*rawStep) []string {
	var order []string
	for _, name := range p.ix.steps {
		if _, ok := steps[name]; ok && !slices.Contains(order, name) {
			order = append(order, name)
		}
	}
	var rest []string
	for name := range steps {
		if !slices.Contains(order, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	return append(order, rest...)
}

func pick[T any](step, common *T) *T {
	if step != nil {
		return step
	}
	return common
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// cloneList copies so no two steps alias one decoded slice.
func cloneList(p *[]string) []string {
	if p == nil {
		return nil
	}
	return append([]string{}, *p...)
}
