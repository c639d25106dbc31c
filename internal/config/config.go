// Package config reads smelt.toml: the graph of cached steps smelt runs for a
// Cargo workspace, with [common] settings shallow-merged into every step.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

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
}

// Error is a problem in smelt.toml. Error() renders as one sentence:
//
//	"<file>:<line>: <msg>; <fix>"
//
// (":<line>" omitted when Line is 0, "; <fix>" omitted when Fix is "").
type Error struct {
	File string
	Line int
	Msg  string
	Fix  string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Msg)
	if e.Fix != "" {
		b.WriteString("; " + e.Fix)
	}
	return b.String()
}

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
	topTables   = []string{"common", "step", "matrix", "outputs"}
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

type rawFile struct {
	Common  *rawCommon          `toml:"common"`
	Step    map[string]*rawStep `toml:"step"`
	Matrix  *rawMatrix          `toml:"matrix"`
	Outputs *rawOutputs         `toml:"outputs"`
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
		if s.Artifacts == "" {
			continue
		}
		from := base.Steps[s.Artifacts]
		switch {
		case from == nil:
			p.add(p.ix.line("step", name, "artifacts"), p.stepFix(s.Artifacts, base.Order),
				"step %q takes artifacts from unknown step %q", name, s.Artifacts)
		case kind.Get(from.Kind).Partitioned && from.Partitions > 1:
			fix := fmt.Sprintf("remove artifacts from %q, or remove partitions from %q", name, s.Artifacts)
			if from.Artifacts != "" {
				fix = fmt.Sprintf("take artifacts from %q (where %q starts), or remove partitions from %q", from.Artifacts, s.Artifacts, s.Artifacts)
			}
			p.add(p.ix.line("step", name, "artifacts"), fix,
				"step %q takes artifacts from step %q, which is split into %d partitions, so it has no single target/", name, s.Artifacts, from.Partitions)
		}
	}
	p.cycles(base)
	p.outputs(base, raw.Outputs)

	if e := earliest(p.errs...); e != nil {
		return nil, e
	}
	if rows == nil {
		return base, nil
	}
	return p.expand(base, raw, common, rows), nil
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
		Artifacts:         deref(rs.Artifacts),
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

// kindList names kinds in a message: kind "a", kinds "a" and "b",
// kinds "a", "b" and "c".
func kindList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	switch len(q) {
	case 0:
		return "no kind"
	case 1:
		return "kind " + q[0]
	}
	return "kinds " + strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
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

// tomlTypeName names the TOML type of a value go-toml decoded into any.
func tomlTypeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	default:
		return "date or time"
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
		for cur := name; cur != "" && cfg.Steps[cur] != nil; cur = cfg.Steps[cur].Artifacts {
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

// stepFix suggests a close step name, or lists them all.
func (p *parser) stepFix(bad string, order []string) string {
	list := "existing steps: " + strings.Join(order, ", ")
	if near := nearest(bad, order); near != "" {
		return fmt.Sprintf("did you mean %q? (%s)", near, list)
	}
	return list
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

// decode runs a strict go-toml decode into v and turns its errors into
// *Error with a line and a fix.
func (p *parser) decode(data []byte, v any) *Error {
	d := toml.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var all []*Error
		for i := range strict.Errors {
			line, _ := strict.Errors[i].Position()
			all = append(all, p.unknownKey(line, strict.Errors[i].Key()))
		}
		if e := earliest(all...); e != nil {
			return e
		}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		return p.badValue(de)
	}
	return &Error{File: p.file, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

func (p *parser) unknownKey(line int, key []string) *Error {
	e := &Error{File: p.file, Line: line}
	switch {
	case len(key) == 1:
		if strings.HasPrefix(strings.TrimSpace(p.ix.text(line)), "[") {
			e.Msg = fmt.Sprintf("unknown table [%s]", key[0])
			e.Fix = "the tables are [common], [step.NAME] and [outputs], and an optional [matrix]"
			if near := nearest(key[0], topTables); near == "step" {
				e.Fix = "did you mean [step.NAME]?"
			} else if near != "" {
				e.Fix = fmt.Sprintf("did you mean [%s]?", near)
			}
		} else {
			e.Msg = fmt.Sprintf("unknown top-level key %q", key[0])
			e.Fix = "settings go in [common] or a [step.NAME] table"
		}
	case key[0] == "common":
		e.Msg = fmt.Sprintf("unknown key %q in [common]", key[1])
		if slices.Contains(stepOnly, key[1]) {
			e.Fix = fmt.Sprintf("%q can only be set in a [step.NAME] table", key[1])
		} else {
			e.Fix = keyFix(key[1], commonKeys)
		}
	case key[0] == "step" && len(key) >= 3:
		e.Msg = fmt.Sprintf("unknown key %q in [step.%s]", key[2], key[1])
		e.Fix = keyFix(key[2], stepKeys)
	case key[0] == "outputs":
		e.Msg = fmt.Sprintf("unknown key %q in [outputs]", key[1])
		e.Fix = keyFix(key[1], outputsKeys)
	case key[0] == "matrix" && len(key) == 2:
		e.Msg = fmt.Sprintf("unknown key %q in [matrix]", key[1])
		e.Fix = keyFix(key[1], matrixKeys)
		if key[1] != "row" && slices.Contains(commonKeys, key[1]) {
			e.Fix = fmt.Sprintf("%q is not a matrix dimension; set it for one row in a [matrix.row.\"LABEL\"] table", key[1])
		}
	case key[0] == "matrix" && key[1] == "row" && len(key) >= 4:
		e.Msg = fmt.Sprintf("unknown key %q in [matrix.row.%q]", key[3], key[2])
		if slices.Contains(stepOnly, key[3]) {
			e.Fix = fmt.Sprintf("%q can only be set in a [step.NAME] table", key[3])
		} else {
			e.Fix = keyFix(key[3], commonKeys)
		}
	default:
		e.Msg = fmt.Sprintf("unknown key %q", strings.Join(key, "."))
	}
	return e
}

// caseError finds a key that differs from a known key only in case. go-toml
// matches struct fields case-insensitively, so strict decoding accepts
// `Kind` or `[Common]`; smelt.toml is case-sensitive like Cargo.toml.
func (p *parser) caseError() *Error {
	for _, at := range p.ix.paths {
		var known []string
		for i, k := range at.path {
			switch {
			case i == 0:
				known = topTables
			case i == 1 && at.path[0] == "common":
				known = commonKeys
			case i == 1 && at.path[0] == "outputs":
				known = outputsKeys
			case i == 2 && at.path[0] == "step":
				known = stepKeys
			case i == 1 && at.path[0] == "matrix":
				known = matrixKeys
			case i == 3 && at.path[0] == "matrix" && at.path[1] == "row":
				known = commonKeys
			default:
				continue
			}
			if slices.Contains(known, k) {
				continue
			}
			for _, want := range known {
				if strings.EqualFold(k, want) {
					return p.unknownKey(at.line, at.path[:i+1])
				}
			}
		}
	}
	return nil
}

func keyFix(bad string, allowed []string) string {
	if near := nearest(bad, allowed); near != "" {
		return fmt.Sprintf("did you mean %q?", near)
	}
	return "allowed keys: " + strings.Join(allowed, ", ")
}

// Examples of each key, used as the fix for a value of the wrong type.
var keyExamples = map[string]string{
	"profile":             `profile = "release"`,
	"features":            `features = ["serde"]`,
	"all-features":        `all-features = true`,
	"no-default-features": `no-default-features = true`,
	"target":              `target = "x86_64-unknown-linux-gnu"`,
	"toolchain":           `toolchain = "nightly"`,
	"cargo-args":          `cargo-args = ["--locked"]`,
	"env":                 `env = { RUSTFLAGS = "-C target-cpu=native" }`,
	"include":             `include = ["assets/**"]`,
	"exclude":             `exclude = ["benches/big/**"]`,
	"kind":                `kind = "test"`,
	"artifacts":           `artifacts = "deps"`,
	"args":                `args = ["--all-targets"]`,
	"fail-under":          `fail-under = 80`,
	"partitions":          `partitions = 4`,
	"run":                 `run = "make assets"`,
	"outputs":             `outputs = ["assets/out/**"]`,
	"default":             `default = "package"`,
	"checks":              `checks = ["clippy", "test"]`,
}

var keyTypes = map[string]string{
	"profile": "a string", "target": "a string", "kind": "a string", "artifacts": "a string", "default": "a string",
	"features": "a list of strings", "cargo-args": "a list of strings", "include": "a list of strings",
	"exclude": "a list of strings", "args": "a list of strings", "checks": "a list of strings",
	"all-features": "true or false", "no-default-features": "true or false",
	"env": "a table of strings", "toolchain": "a string",
	"fail-under": "a number", "partitions": "an integer", "run": "a string or a list of strings",
	"outputs": "a list of strings",
}

// The [matrix] keys share names with common keys but take lists.
var (
	matrixTypes = map[string]string{
		"toolchain": "a list of strings", "target": "a list of strings", "features": "a list of feature lists",
		"row": `a table of [matrix.row."LABEL"] tables`,
	}
	matrixExamples = map[string]string{
		"toolchain": `toolchain = ["stable", "nightly"]`,
		"target":    `target = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]`,
		"features":  `features = [["serde"], []]`,
		"row":       `[matrix.row."nightly"] with profile = "dev"`,
	}
)

// badValue explains a type mismatch in smelt's terms (go-toml's message
// names Go types), or passes a syntax error through with its line.
func (p *parser) badValue(de *toml.DecodeError) *Error {
	line, _ := de.Position()
	key := de.Key()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	e := &Error{File: p.file, Line: line}
	got, ok := strings.CutPrefix(msg, "cannot decode TOML ")
	if !ok || len(key) == 0 {
		e.Msg = "invalid TOML: " + msg
		return e
	}
	got, _, _ = strings.Cut(got, " into")
	got = article(got)
	var where, leaf string
	switch {
	case len(key) == 1 && key[0] == "step":
		e.Msg = fmt.Sprintf("step must hold [step.NAME] tables, got %s", got)
		return e
	case len(key) == 1:
		e.Msg = fmt.Sprintf("[%s] must be a table, got %s", key[0], got)
		return e
	case key[0] == "step" && len(key) == 2:
		e.Msg = fmt.Sprintf("[step.%s] must be a table, got %s", key[1], got)
		return e
	case key[0] == "step":
		where, leaf = "[step."+key[1]+"]", key[2]
	case key[0] == "matrix" && key[1] == "row" && len(key) == 3:
		e.Msg = fmt.Sprintf("[matrix.row.%q] must be a table, got %s", key[2], got)
		e.Fix = "write it like " + matrixExamples["row"]
		return e
	case key[0] == "matrix" && key[1] == "row" && len(key) >= 4:
		where, leaf = fmt.Sprintf("[matrix.row.%q]", key[2]), key[3]
	case key[0] == "matrix":
		e.Msg = fmt.Sprintf("%q in [matrix] must be %s, got %s", key[1], matrixTypes[key[1]], got)
		e.Fix = "write it like " + matrixExamples[key[1]]
		return e
	default:
		where, leaf = "["+key[0]+"]", key[1]
	}
	want := keyTypes[leaf]
	if want == "" {
		e.Msg = "invalid TOML: " + msg
		return e
	}
	e.Msg = fmt.Sprintf("%q in %s must be %s, got %s", leaf, where, want, got)
	if ex := keyExamples[leaf]; ex != "" {
		e.Fix = "write it like " + ex
	}
	return e
}

func article(tomlType string) string {
	if strings.ContainsAny(tomlType[:1], "aeiou") {
		return "an " + tomlType
	}
	return "a " + tomlType
}

// earliest returns the error that comes first in the file; unplaced errors
// (line 0) sort last, and ties keep argument order.
func earliest(errs ...*Error) *Error {
	var best *Error
	for _, e := range errs {
		if e == nil {
			continue
		}
		if best == nil || (e.Line > 0 && (best.Line == 0 || e.Line < best.Line)) {
			best = e
		}
	}
	return best
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

// Nearest returns the closest candidate to s within a typo's distance, or
// "": the suggestion behind every "did you mean" of smelt.
func Nearest(s string, candidates []string) string { return nearest(s, candidates) }

// nearest returns the closest candidate within edit distance 2 of s, or "".
// The distance must also be below len(s): rewriting all of a one- or
// two-letter name is no typo.
func nearest(s string, candidates []string) string {
	best, bestD := "", min(3, len(s))
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// textIndex locates tables and keys in the raw text, because go-toml only
// gives positions for errors, and validation errors need lines too.
type textIndex struct {
	lines []string
	first map[string]int // path joined by "\x00" -> first line it or anything under it appears
	paths []pathAt       // every header and key path, in file order
	steps []string       // step names in order of first appearance
}

type pathAt struct {
	path []string
	line int
}

// indexText scans line by line: headers set the current table, and
// `key = value` lines add keys under it. It is a scanner, not a TOML parser;
// it skips the bodies of multi-line strings, and lines it cannot read as a
// header or key (array continuations, comments) are ignored.
func indexText(data []byte) *textIndex {
	ix := &textIndex{lines: strings.Split(string(data), "\n"), first: map[string]int{}}
	var table []string
	inString := "" // delimiter of an open multi-line string
	for i, raw := range ix.lines {
		if inString != "" {
			if strings.Count(raw, inString)%2 == 1 {
				inString = ""
			}
			continue
		}
		s := strings.TrimSpace(raw)
		var path []string
		if strings.HasPrefix(s, "[") {
			inner := strings.TrimPrefix(strings.TrimPrefix(s, "["), "[")
			parts, rest, ok := parseKeyPath(inner)
			if !ok || !strings.HasPrefix(rest, "]") {
				continue
			}
			table, path = parts, parts
		} else {
			parts, rest, ok := parseKeyPath(s)
			if !ok || !strings.HasPrefix(rest, "=") {
				continue
			}
			path = append(slices.Clone(table), parts...)
			for _, delim := range []string{`"""`, `'''`} {
				if strings.Count(rest, delim)%2 == 1 {
					inString = delim
					break
				}
			}
		}
		ix.paths = append(ix.paths, pathAt{path, i + 1})
		for n := 1; n <= len(path); n++ {
			k := strings.Join(path[:n], "\x00")
			if _, seen := ix.first[k]; !seen {
				ix.first[k] = i + 1
				if n == 2 && path[0] == "step" {
					ix.steps = append(ix.steps, path[1])
				}
			}
		}
	}
	return ix
}

// line gives the line of a table or key path, falling back to the nearest
// enclosing table that was found (a key inherited or written inline has no
// line of its own), or 0.
func (ix *textIndex) line(path ...string) int {
	for n := len(path); n > 0; n-- {
		if l, ok := ix.first[strings.Join(path[:n], "\x00")]; ok {
			return l
		}
	}
	return 0
}

func (ix *textIndex) text(line int) string {
	if line < 1 || line > len(ix.lines) {
		return ""
	}
	return ix.lines[line-1]
}

// parseKeyPath reads a dotted TOML key (bare, "basic" or 'literal' parts)
// from the start of s and returns the parts and the rest after spaces.
func parseKeyPath(s string) (parts []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		switch s[0] {
		case '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, "", false
			}
			part, err := strconv.Unquote(s[:end+1])
			if err != nil {
				part = s[1:end]
			}
			parts, s = append(parts, part), s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", false
			}
			parts, s = append(parts, s[1:end+1]), s[end+2:]
		default:
			end := 0
			for end < len(s) && isBareKeyChar(s[end]) {
				end++
			}
			if end == 0 {
				return nil, "", false
			}
			parts, s = append(parts, s[:end]), s[end:]
		}
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return parts, s, true
		}
		s = s[1:]
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
