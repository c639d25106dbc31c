package plan

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"smelt/internal/cargo"
	"smelt/internal/config"
	"smelt/internal/key"
	"smelt/internal/kind"
)

// step builds a config.Step as the [common] merge would leave it.
func step(name, kind, artifacts string) *config.Step {
	return &config.Step{
		Name: name, Kind: kind, Inherits: artifacts,
		Args: config.DefaultArgs(kind), Profile: "release", Env: map[string]string{},
	}
}

func configOf(steps ...*config.Step) *config.Config {
	c := &config.Config{Steps: map[string]*config.Step{}}
	for _, s := range steps {
		c.Steps[s.Name] = s
		c.Order = append(c.Order, s.Name)
	}
	return c
}

func mustNew(t *testing.T, cfg *config.Config) *Graph {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func cmdStrings(cmds []cargo.Command) []string {
	out := []string{}
	for _, c := range cmds {
		out = append(out, c.String())
	}
	return out
}

func names(nodes []*Node) []string {
	out := []string{}
	for _, n := range nodes {
		out = append(out, n.Name())
	}
	return out
}

func checkTopological(t *testing.T, g *Graph) {
	t.Helper()
	pos := map[string]int{}
	for i, n := range g.Order {
		if _, dup := pos[n]; dup {
			t.Errorf("%s twice in Order %v", n, g.Order)
		}
		pos[n] = i
	}
	if len(pos) != len(g.Nodes) {
		t.Errorf("Order %v does not hold all %d nodes", g.Order, len(g.Nodes))
	}
	for name, n := range g.Nodes {
		if n.Parent != nil && pos[n.Parent.Name()] >= pos[name] {
			t.Errorf("%s comes before the step it inherits from, %s: %v", name, n.Parent.Name(), g.Order)
		}
	}
}

func TestNewDefault(t *testing.T) {
	g := mustNew(t, config.Default())
	checkTopological(t, g)
	if g.Order[0] != "deps" && g.Order[0] != "fmt" {
		t.Errorf("Order starts with %s", g.Order[0])
	}
	if got := names(g.Nodes["deps"].Children); !reflect.DeepEqual(got, []string{"clippy", "test", "doc", "package"}) {
		t.Errorf("deps children = %v", got)
	}
	if g.Nodes["fmt"].Parent != nil || len(g.Nodes["fmt"].Children) != 0 {
		t.Errorf("fmt should stand alone")
	}
	for _, n := range []string{"clippy", "test", "doc", "package"} {
		if p := g.Nodes[n].Parent; p == nil || p.Name() != "deps" {
			t.Errorf("%s parent = %v", n, p)
		}
	}

	vc := cargo.VendorConfig
	common := "--offline --locked --config " + vc + " --profile release --workspace"
	wantDeps := []string{
		"cargo check --keep-going " + common + " --all-targets",
		"cargo build --tests --examples --keep-going " + common,
		"cargo doc --no-deps --keep-going " + common,
		"cargo build --keep-going " + common,
	}
	if got := cmdStrings(g.Nodes["deps"].Commands); !reflect.DeepEqual(got, wantDeps) {
		t.Errorf("deps commands:\n got %q\nwant %q", got, wantDeps)
	}
	wantOwn := map[string][]string{
		"clippy":  {"cargo clippy " + common + " --all-targets -- --deny warnings"},
		"test":    {"cargo test " + common},
		"doc":     {"cargo doc --no-deps " + common},
		"package": {"cargo build --message-format=json-render-diagnostics " + common},
		"fmt":     {"cargo fmt --all --check"},
	}
	for name, want := range wantOwn {
		if got := cmdStrings(g.Nodes[name].Commands); !reflect.DeepEqual(got, want) {
			t.Errorf("%s commands:\n got %q\nwant %q", name, got, want)
		}
	}
}

func TestNewSequentialFromTOML(t *testing.T) {
	cfg, err := config.Parse("smelt.toml", []byte(config.SequentialTOML()))
	if err != nil {
		t.Fatal(err)
	}
	g := mustNew(t, cfg)
	checkTopological(t, g)
	if !reflect.DeepEqual(g.Order, []string{"deps", "clippy", "test", "crate"}) {
		t.Errorf("Order = %v", g.Order)
	}
	if got := names(g.Nodes["deps"].Descendants()); !reflect.DeepEqual(got, []string{"clippy", "test", "crate"}) {
		t.Errorf("Descendants = %v", got)
	}
	// Deps warms up for every transitive heir, not only its child.
	got := cmdStrings(g.Nodes["deps"].Commands)
	for _, prefix := range []string{"cargo check ", "cargo build --tests ", "cargo build "} {
		if !slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, prefix) }) {
			t.Errorf("deps commands %q lack %q", got, prefix)
		}
	}
}

func TestOrderIndependentOfFileOrder(t *testing.T) {
	// Heirs listed before the steps they inherit from.
	cfg := configOf(
		step("pkg", "package", "test"),
		step("test", "test", "lint"),
		step("fmt", "fmt", ""),
		step("lint", "clippy", "deps"),
		step("deps", "deps", ""),
	)
	g := mustNew(t, cfg)
	checkTopological(t, g)
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  *config.Config
		want string
	}{
		{"unknown parent", configOf(step("a", "test", "nope")), "unknown step nope"},
		{"cycle", configOf(step("a", "test", "b"), step("b", "clippy", "a")), "cycle"},
		{"cycle beside a root", configOf(step("deps", "deps", ""), step("a", "test", "b"), step("b", "clippy", "a")), "cycle"},
		{"self", configOf(step("a", "test", "a")), "cycle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestDepsCommandsFollowHeirs(t *testing.T) {
	deps := step("deps", "deps", "")
	lint := step("lint", "clippy", "deps")
	lint.Features = []string{"serde", "derive"}
	tst := step("test", "test", "deps")
	tst.Profile = "dev"
	tst.Args = []string{"--lib", "--", "--nocapture"}
	pkg1 := step("pkg1", "package", "deps")
	pkg2 := step("pkg2", "package", "deps") // same settings: deduplicated
	pkgT := step("pkgT", "package", "deps")
	pkgT.Target = "x86_64-unknown-linux-musl"
	pkgT.NoDefaultFeatures = true
	pkgP := step("pkgP", "package", "deps")
	pkgP.Args = []string{"-p", "app"}
	fmtS := step("fmt", "fmt", "deps") // fmt adds no warm-up
	g := mustNew(t, configOf(deps, lint, tst, pkg1, pkg2, pkgT, pkgP, fmtS))

	vc := cargo.VendorConfig
	want := []string{
		"cargo check --keep-going --offline --locked --config " + vc + " --profile release --features serde,derive --workspace --all-targets",
		"cargo build --tests --keep-going --offline --locked --config " + vc + " --profile dev --workspace --lib",
		"cargo build --keep-going --offline --locked --config " + vc + " --profile release --workspace",
		"cargo build --keep-going --offline --locked --config " + vc + " --profile release --no-default-features --target x86_64-unknown-linux-musl --workspace",
		"cargo build --keep-going --offline --locked --config " + vc + " --profile release -p app",
	}
	if got := cmdStrings(g.Nodes["deps"].Commands); !reflect.DeepEqual(got, want) {
		t.Errorf("deps commands:\n got %q\nwant %q", got, want)
	}
}

func TestDepsArgsAppendedToEveryWarmup(t *testing.T) {
	deps := step("deps", "deps", "")
	deps.Args = []string{"--jobs", "2"}
	g := mustNew(t, configOf(deps, step("c", "clippy", "deps"), step("p", "package", "deps")))
	for _, c := range g.Nodes["deps"].Commands {
		if a := c.Args; len(a) < 2 || !slices.Equal(a[len(a)-2:], []string{"--jobs", "2"}) {
			t.Errorf("deps command %q lacks its own args at the end", c)
		}
	}
}

func TestDepsWithoutHeirs(t *testing.T) {
	g := mustNew(t, configOf(step("deps", "deps", "")))
	got := cmdStrings(g.Nodes["deps"].Commands)
	if len(got) != 2 || !strings.HasPrefix(got[0], "cargo check ") || !strings.HasSuffix(got[0], " --all-targets") || !strings.HasPrefix(got[1], "cargo build ") {
		t.Errorf("deps without heirs runs %q", got)
	}
}

func TestSelect(t *testing.T) {
	cfg, err := config.Parse("smelt.toml", []byte(config.SequentialTOML()))
	if err != nil {
		t.Fatal(err)
	}
	g := mustNew(t, cfg)
	def := mustNew(t, config.Default())
	tests := []struct {
		g     *Graph
		names []string
		want  []string
	}{
		{g, []string{"crate"}, []string{"deps", "clippy", "test", "crate"}},
		{g, []string{"clippy"}, []string{"deps", "clippy"}},
		{g, []string{"deps"}, []string{"deps"}},
		{g, []string{"crate", "clippy", "crate"}, []string{"deps", "clippy", "test", "crate"}},
		{g, nil, []string{}},
		{def, []string{"fmt"}, []string{"fmt"}},
		{def, []string{"doc", "fmt"}, nil}, // graph order; checked below
	}
	for _, tt := range tests {
		got, err := tt.g.Select(tt.names)
		if err != nil {
			t.Fatal(err)
		}
		if tt.want == nil {
			if gn := names(got); len(gn) != 3 || !slices.Contains(gn, "deps") || !slices.Contains(gn, "doc") || !slices.Contains(gn, "fmt") ||
				slices.Index(gn, "deps") > slices.Index(gn, "doc") {
				t.Errorf("Select(%v) = %v", tt.names, gn)
			}
			continue
		}
		if gn := names(got); !reflect.DeepEqual(gn, tt.want) {
			t.Errorf("Select(%v) = %v, want %v", tt.names, gn, tt.want)
		}
	}
	if _, err := g.Select([]string{"nope"}); err == nil || !strings.Contains(err.Error(), "no step named nope") || !strings.Contains(err.Error(), "deps, clippy, test, crate") {
		t.Errorf("Select(unknown) error = %v", err)
	}
}

// The deps step's commands (and so its key) must not depend on which output
// is asked for.
func TestDepsKeyIndependentOfSelection(t *testing.T) {
	base := func() *config.Config {
		c := config.Default()
		c.Steps["test"].Profile = "dev"
		c.Steps["clippy"].Features = []string{"x"}
		return c
	}
	ref := mustNew(t, base())
	refCmds := ref.Nodes["deps"].Commands
	refKey := StepInputs(ref.Nodes["deps"]).Key()
	for _, sel := range [][]string{{"clippy"}, {"test"}, {"doc"}, {"package"}, {"fmt"}, {"deps"}, {"clippy", "package"}} {
		g := mustNew(t, base())
		nodes, err := g.Select(sel)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if n.Name() != "deps" {
				continue
			}
			if !reflect.DeepEqual(n.Commands, refCmds) {
				t.Errorf("select %v: deps commands %q differ from %q", sel, n.Commands, refCmds)
			}
			if k := StepInputs(n).Key(); k != refKey {
				t.Errorf("select %v: deps key differs", sel)
			}
		}
	}
}

func TestStepInputs(t *testing.T) {
	key := func(edit func(*config.Config)) Inputs {
		c := config.Default()
		edit(c)
		g := mustNew(t, c)
		return StepInputs(g.Nodes["deps"])
	}
	ref := key(func(*config.Config) {})
	for _, k := range []string{"smelt", "step", "commands"} {
		if ref[k] == "" {
			t.Errorf("StepInputs lacks %q", k)
		}
	}
	tests := []struct {
		name    string
		edit    func(*config.Config)
		changed []string
	}{
		{"nothing", func(*config.Config) {}, nil},
		{"own profile", func(c *config.Config) { c.Steps["deps"].Profile = "dev" }, []string{"step"}},
		{"heir profile", func(c *config.Config) { c.Steps["test"].Profile = "dev" }, []string{"commands"}},
		{"own env", func(c *config.Config) { c.Steps["deps"].Env = map[string]string{"RUSTFLAGS": "-Cx"} }, []string{"step"}},
		{"fmt args", func(c *config.Config) { c.Steps["fmt"].Args = []string{"--verbose"} }, nil},
		{"own args", func(c *config.Config) { c.Steps["deps"].Args = []string{"-v"} }, []string{"commands", "step"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := key(tt.edit)
			var changed []string
			for _, k := range []string{"commands", "smelt", "step"} {
				if in[k] != ref[k] {
					changed = append(changed, k)
				}
			}
			if !reflect.DeepEqual(changed, tt.changed) {
				t.Errorf("changed inputs = %v, want %v", changed, tt.changed)
			}
		})
	}
}

func TestInputsKey(t *testing.T) {
	a := Inputs{"step": "1", "source": "2", "vendor": "3"}
	// Same map built in another order.
	b := Inputs{}
	for _, k := range []string{"vendor", "source", "step"} {
		b[k] = a[k]
	}
	if a.Key() != b.Key() {
		t.Errorf("Key depends on insertion order")
	}
	if len(a.Key()) != 64 {
		t.Errorf("Key %q is not a sha256 hex", a.Key())
	}
	ref := a.Key()
	variants := []Inputs{
		{"step": "1", "source": "2", "vendor": "4"},
		{"step": "1", "source": "X", "vendor": "3"},
		{"step": "1", "source": "2"},
		{"step": "1", "source": "2", "vendor": "3", "artifacts": "a"},
		{"step": "1", "source": "2", "vendor": "3", "artifacts": ""},
		// Names and values must not run together.
		{"step": "1", "source": "2", "vendo": "r=3"},
		{"step": "1", "source": "2\nvendor=3"},
	}
	seen := map[string]int{}
	for i, v := range variants {
		k := v.Key()
		if k == ref {
			t.Errorf("variant %d %v has the same key as %v", i, v, a)
		}
		if j, ok := seen[k]; ok {
			t.Errorf("variants %d and %d share a key", i, j)
		}
		seen[k] = i
	}
	if (Inputs{}).Key() == "" {
		t.Errorf("empty inputs have no key")
	}
}

// BUG: Inputs.Key writes "name=value\n" without escaping, so a value holding
// a newline can collide with another set of inputs. Inputs are hashes and
// fixed words in practice, so this is theoretical.
func TestInputsKeyNoCollisionWithNewlines(t *testing.T) {
	a := Inputs{"a": "1\nb=2"}
	b := Inputs{"a": "1", "b": "2"}
	if a.Key() == b.Key() {
		t.Errorf("distinct inputs share the key %s", a.Key())
	}
}

func TestKindPredicates(t *testing.T) {
	for _, k := range []string{"deps", "clippy", "test", "doc", "package", "fmt"} {
		want := k != "fmt"
		if s := kind.Get(k); s.KeepsArtifacts != want || s.UsesDependencies != want {
			t.Errorf("%s: KeepsArtifacts=%v UsesDependencies=%v", k, s.KeepsArtifacts, s.UsesDependencies)
		}
	}
}

func TestExplain(t *testing.T) {
	old := Inputs{"smelt": "s", "step": "1", "commands": "c", "source": "a", "vendor": "v", "toolchain": "t", "cargo-config": "cc", "artifacts": "x"}
	with := func(k, v string) Inputs {
		n := Inputs{}
		for a, b := range old {
			n[a] = b
		}
		n[k] = v
		return n
	}
	files := map[string]string{"src/lib.rs": "1", "src/main.rs": "2", "Cargo.toml": "3"}
	tests := []struct {
		name               string
		old, now           Inputs
		oldFiles, nowFiles map[string]string
		want               string
	}{
		{"first run", nil, old, nil, nil, "first run"},
		{"first run with files", nil, old, files, files, "first run"},
		{"nothing changed", old, with("step", "1"), nil, nil, "its earlier result is not in the store"},
		{"step", old, with("step", "2"), nil, nil, "the step's settings in smelt.toml changed"},
		{"commands", old, with("commands", "d"), nil, nil, "the commands it runs changed (for deps: a step that inherits from it changed settings)"},
		{"vendor", old, with("vendor", "w"), nil, nil, "Cargo.lock changed (dependency sources)"},
		{"toolchain", old, with("toolchain", "u"), nil, nil, "the Rust toolchain changed"},
		{"cargo config", old, with("cargo-config", "dd"), nil, nil, "cargo's user configuration changed"},
		{"artifacts", old, with("artifacts", "y"), nil, nil, "the artifacts it inherits changed"},
		{"format", old, with("smelt", "s2"), nil, nil, "smelt's store format changed"},
		{"unknown input", old, with("matrix", "m"), nil, nil, "matrix changed"},
		{"source without files", old, with("source", "b"), nil, nil, "source changed"},
		{"source with files", old, with("source", "b"), files,
			map[string]string{"src/lib.rs": "9", "src/main.rs": "2", "Cargo.toml": "3"}, "source changed: src/lib.rs"},
		{"source, files equal", old, with("source", "b"), files, files, "source changed"},
		{"source, only one file list", old, with("source", "b"), files, nil, "source changed"},
		{"several, sorted by input name", old, func() Inputs {
			n := with("vendor", "w")
			n["artifacts"] = "z"
			n["source"] = "b"
			return n
		}(), files, map[string]string{"src/lib.rs": "1", "src/main.rs": "2", "Cargo.toml": "3", "src/new.rs": "4"},
			"the artifacts it inherits changed; source changed: +src/new.rs; Cargo.lock changed (dependency sources)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Explain(tt.old, tt.now, tt.oldFiles, tt.nowFiles); got != tt.want {
				t.Errorf("Explain =\n %q\nwant\n %q", got, tt.want)
			}
		})
	}
}

// An input present in the last run and absent now (e.g. a step that no
// longer inherits artifacts: "artifacts" disappears while "step" does not
// change, since Artifacts is not part of the step's definition) changes the
// key, yet Explain looks only at the current inputs' names.
func TestExplainRemovedInput(t *testing.T) {
	old := Inputs{"step": "1", "artifacts": "x"}
	now := Inputs{"step": "1"}
	if got := Explain(old, now, nil, nil); got == "its earlier result is not in the store" {
		t.Errorf("Explain = %q, want it to name the removed artifacts input", got)
	}
}

func TestDiffFiles(t *testing.T) {
	tests := []struct {
		name     string
		old, now map[string]string
		want     string
	}{
		{"none", map[string]string{"a": "1"}, map[string]string{"a": "1"}, ""},
		{"both empty", nil, nil, ""},
		{"changed", map[string]string{"a": "1"}, map[string]string{"a": "2"}, "a"},
		{"added", map[string]string{}, map[string]string{"a": "1"}, "+a"},
		{"removed", map[string]string{"a": "1"}, map[string]string{}, "-a"},
		{"mixed, sorted by path", map[string]string{"b": "1", "c": "1"}, map[string]string{"a": "1", "b": "2"}, "+a, b, -c"},
		{"three", map[string]string{}, map[string]string{"a": "", "b": "", "c": ""}, "+a, +b, +c"},
		{"four", map[string]string{"d": "1"}, map[string]string{"a": "", "b": "", "c": ""}, "+a, +b, +c and 1 more"},
		{"many", map[string]string{"z1": "1", "z2": "1"}, map[string]string{"a": "", "b": "", "c": "", "d": "", "e": ""}, "+a, +b, +c and 4 more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DiffFiles(tt.old, tt.now); got != tt.want {
				t.Errorf("DiffFiles = %q, want %q", got, tt.want)
			}
		})
	}
}

// An unknown step on the command line: the steps there are, and the one
// meant when the name looks like a typo (rows and partitions too).
func TestSelectUnknownSuggests(t *testing.T) {
	g := mustNew(t, config.Default())
	for name, want := range map[string]string{
		"clipy":    "no step named clipy; did you mean clippy? (steps: deps, clippy, test, doc, package, fmt)",
		"packages": "did you mean package?",
		"zzzzzz":   "no step named zzzzzz (steps: deps, clippy, test, doc, package, fmt)",
	} {
		_, err := g.Select([]string{name})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Select(%s) = %v, want it to contain %q", name, err, want)
		}
	}
	cfg, err := config.Parse("smelt.toml", []byte("[step.deps]\nkind = \"deps\"\n[step.tests]\nkind = \"nextest\"\nartifacts = \"deps\"\npartitions = 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mustNew(t, cfg).Select([]string{"tests#3"}); err == nil || !strings.Contains(err.Error(), "did you mean tests?") {
		t.Errorf("Select(tests#3) = %v, want a partition suggested", err)
	}
}

// A member's build is a step of its own: the package step's settings and
// parent with -p MEMBER, nobody's heir, so the deps step's commands (and
// key) stay what they were.
func TestMemberStep(t *testing.T) {
	pkg := step("package", "package", "deps")
	pkg.Args = []string{"--workspace", "--bins"}
	cfg := configOf(step("deps", "deps", ""), pkg)
	g := mustNew(t, cfg)
	depsBefore := cmdStrings(g.Nodes["deps"].Commands)
	sel, err := g.Select([]string{MemberStep("package", "app")})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(sel); !slices.Equal(got, []string{"deps", "package.app"}) {
		t.Fatalf("selected %v", got)
	}
	m := sel[1]
	if m.Parent != g.Nodes["deps"] || slices.Contains(g.Nodes["deps"].Children, m) {
		t.Errorf("the member step's parent is %v, or it is among deps' heirs", m.Parent)
	}
	got := cmdStrings(m.Commands)
	if len(got) != 1 || !strings.HasPrefix(got[0], "cargo build --message-format=json-render-diagnostics") ||
		!strings.HasSuffix(got[0], " --bins -p app") || strings.Contains(got[0], "--workspace") {
		t.Errorf("member commands %q", got)
	}
	if after := cmdStrings(g.Nodes["deps"].Commands); !slices.Equal(after, depsBefore) {
		t.Errorf("deps commands changed:\n%q\n%q", depsBefore, after)
	}
	if StepInputs(m).Key() == StepInputs(g.Nodes["package"]).Key() {
		t.Error("the member step has the package step's key")
	}
	for _, bad := range []string{"deps.app", "package.", "nosuch.app", "package.a.b"} {
		if _, err := g.Select([]string{bad}); err == nil {
			t.Errorf("Select(%q) gave no error", bad)
		}
	}
}

// StepInputs names the inputs that come from the step's definition alone.
func StepInputs(n *Node) Inputs { return key.New(StepValues(n)) }

// A step's settings and commands are hashed as they always were: the
// hashes below were recorded before the key moved to package key, and a
// change here changes every stored key.
func TestStepValuesStable(t *testing.T) {
	s := &config.Step{Name: "test", Kind: "test", Profile: "release", Env: map[string]string{}, Features: []string{"x"}}
	v := StepValues(&Node{Step: s, Commands: cargo.Commands(s, nil, 0, 0)})
	if v.Smelt != "smelt-store-1" || v.Step != "ac60f30e25fe2f7823cdb3450f66c2cb9d33456161fabf2cfa8d57bceb58afe0" ||
		v.Commands != "327c8915933f65a8d47dfdb55dc7a513742b6de0bffba2b9c7558f65a9a44d25" {
		t.Errorf("test step: %+v", v)
	}
	d := &config.Step{Name: "deps", Kind: "deps", Profile: "release", Env: map[string]string{}}
	heirs := []*config.Step{
		{Name: "cov", Kind: "coverage", Profile: "dev", Env: map[string]string{}, Args: []string{"--lib"}},
		{Name: "clippy", Kind: "clippy", Profile: "release", Env: map[string]string{}, Args: config.DefaultArgs("clippy")},
		s,
	}
	if got := StepValues(&Node{Step: d, Commands: cargo.Commands(d, heirs, 0, 0)}).Commands; got != "3c70589020660f235a02af2fb9cc48221ec0fc374f9aa7da6b75a43e9898cff8" {
		t.Errorf("deps commands hash %s", got)
	}
}
