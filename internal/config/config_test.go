package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const example = `[common]                 # merged into every step
profile = "release"
features = ["serde"]
all-features = false
no-default-features = false
target = "x86_64-unknown-linux-gnu"
cargo-args = ["--locked"]
env = { RUSTFLAGS = "-C target-cpu=native" }
include = ["assets/**"]
exclude = ["benches/big/**"]

[step.deps]
kind = "deps"

[step.clippy]
kind = "clippy"
artifacts = "deps"
args = ["--all-targets", "--", "--deny", "warnings"]

[step.test]
kind = "test"
artifacts = "clippy"
profile = "dev"          # overrides [common].profile for this step only
env = { RUST_BACKTRACE = "1" }
features = []

[step.crate]
kind = "package"
artifacts = "test"

[outputs]
default = "crate"
checks = ["clippy", "test", "crate"]
`

func TestParseExample(t *testing.T) {
	cfg, err := Parse("smelt.toml", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	common := func(name, kind, artifacts string, line int) *Step {
		return &Step{
			Name: name, Kind: kind, Inherits: artifacts, Args: DefaultArgs(kind),
			Profile: "release", Features: []string{"serde"}, Target: "x86_64-unknown-linux-gnu",
			CargoArgs: []string{"--locked"}, Env: map[string]string{"RUSTFLAGS": "-C target-cpu=native"},
			Include: []string{"assets/**"}, Exclude: []string{"benches/big/**"}, Line: line,
			Base: name, // no [matrix]: Base == Name
		}
	}
	test := common("test", "test", "clippy", 20)
	test.Profile = "dev"
	test.Env = map[string]string{"RUST_BACKTRACE": "1"} // replaces, not merges
	test.Features = []string{}                          // an empty list still replaces
	want := &Config{
		File: "smelt.toml",
		Steps: map[string]*Step{
			"deps":   common("deps", "deps", "", 12),
			"clippy": common("clippy", "clippy", "deps", 15),
			"test":   test,
			"crate":  common("crate", "package", "test", 27),
		},
		Order:   []string{"deps", "clippy", "test", "crate"},
		Default: "crate",
		Checks:  []string{"clippy", "test", "crate"},
	}
	if !reflect.DeepEqual(cfg, want) {
		for _, n := range want.Order {
			if !reflect.DeepEqual(cfg.Steps[n], want.Steps[n]) {
				t.Errorf("step %s:\n got %+v\nwant %+v", n, cfg.Steps[n], want.Steps[n])
			}
		}
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
	// The merge must copy: steps must not share the [common] env map.
	cfg.Steps["deps"].Env["X"] = "1"
	if _, ok := cfg.Steps["clippy"].Env["X"]; ok {
		t.Error("steps share one env map")
	}
}

func TestParseDefaultsWhenUnset(t *testing.T) {
	cfg, err := Parse("smelt.toml", []byte("[step.a]\nkind = \"clippy\"\n[step.b]\nkind = \"package\"\nartifacts = \"a\"\n[step.c]\nkind = \"package\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Steps["a"]
	if a.Profile != "release" || a.Env == nil || len(a.Env) != 0 || !reflect.DeepEqual(a.Args, DefaultArgs("clippy")) {
		t.Errorf("defaults not applied: %+v", a)
	}
	if cfg.Default != "b" {
		t.Errorf("Default = %q, want first package step b", cfg.Default)
	}
	if !reflect.DeepEqual(cfg.Checks, []string{"a", "b", "c"}) {
		t.Errorf("Checks = %v, want every step", cfg.Checks)
	}
	cfg, err = Parse("smelt.toml", []byte("[step.a]\nkind = \"test\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Default != "" || cfg.Steps["a"].Args != nil {
		t.Errorf("got Default %q Args %v, want none", cfg.Default, cfg.Steps["a"].Args)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		line int
		msg  []string // substrings of Msg
		fix  string   // substring of Fix
	}{
		{"syntax", "[step.a]\nkind = \"deps\"\nprofile = \n", 3, []string{"invalid TOML"}, ""},
		{"duplicate table", "[step.a]\nkind = \"deps\"\n[step.a]\n", 3, []string{"invalid TOML"}, ""},
		{"no steps", "[common]\nprofile = \"dev\"\n", 0, []string{"no steps"}, "add a [step.NAME] table or delete smelt.toml"},
		{"unknown table", "[step.a]\nkind = \"deps\"\n[output]\ndefault = \"a\"\n", 3, []string{"[output]"}, `did you mean [outputs]?`},
		{"unknown table far", "[step.a]\nkind = \"deps\"\n[zzzzzzz]\n", 3, []string{"[zzzzzzz]"}, "[common], [step.NAME] and [outputs]"},
		{"unknown top-level key", "name = 1\n[step.a]\nkind = \"deps\"\n", 1, []string{`"name"`}, "[common]"},
		{"unknown step key close", "[step.a]\nkind = \"deps\"\n\nprofle = \"dev\"\n", 4, []string{`"profle"`, "[step.a]"}, `did you mean "profile"?`},
		{"unknown step key far", "[step.a]\nkind = \"deps\"\nwhatever = 1\n", 3, []string{`"whatever"`}, "allowed keys: kind, artifacts, args, profile"},
		{"unknown common key", "[common]\nfeaturs = []\n[step.a]\nkind = \"deps\"\n", 2, []string{`"featurs"`, "[common]"}, `did you mean "features"?`},
		{"step-only key in common", "[common]\nkind = \"deps\"\n[step.a]\nkind = \"deps\"\n", 2, []string{`"kind"`}, "[step.NAME]"},
		{"unknown outputs key", "[step.a]\nkind = \"deps\"\n[outputs]\ndefaults = \"a\"\n", 4, []string{`"defaults"`}, `did you mean "default"?`},
		{"wrong type list", "[common]\n\nfeatures = \"serde\"\n[step.a]\nkind = \"deps\"\n", 3, []string{`"features"`, "list of strings", "a string"}, `features = ["serde"]`},
		{"wrong type bool", "[step.a]\nkind = \"deps\"\nall-features = \"yes\"\n", 3, []string{`"all-features"`, "[step.a]", "true or false"}, ""},
		{"wrong type env value", "[step.a]\nkind = \"deps\"\nenv = { A = 1 }\n", 3, []string{`"env"`}, ""},
		{"wrong type step", "step = 1\n", 1, []string{"step"}, ""},
		// go-toml stops at the first type error, yet an unknown key before it must win.
		{"unknown key before type error", "[step.a]\nkind = \"deps\"\nprofle = \"x\"\nfeatures = 1\n", 3, []string{`"profle"`}, ""},
		{"type error before unknown key", "[step.a]\nkind = \"deps\"\nfeatures = 1\nprofle = \"x\"\n", 3, []string{`"features"`}, ""},
		{"kind missing", "[step.a]\nkind = \"deps\"\n\n[step.b]\nartifacts = \"a\"\n", 4, []string{`"b"`, "no kind"}, "deps, clippy, test, fmt, doc, package"},
		{"kind unknown", "[step.a]\nkind = \"deps\"\n[step.b]\n\nkind = \"lint\"\n", 5, []string{`"b"`, `"lint"`}, "deps, clippy, test, fmt, doc, package"},
		{"kind close", "[step.a]\nkind = \"tset\"\n", 2, []string{`"tset"`}, `did you mean "test"?`},
		{"artifacts unknown", "[step.a]\nkind = \"deps\"\n[step.b]\nkind = \"test\"\nartifacts = \"zzz\"\n", 5, []string{`"b"`, `"zzz"`}, "existing steps: a, b"},
		{"artifacts typo", "[step.deps]\nkind = \"deps\"\n[step.b]\nkind = \"test\"\nartifacts = \"dep\"\n", 5, []string{`"dep"`}, `did you mean "deps"?`},
		{"artifacts self", "[step.a]\nkind = \"deps\"\n[step.b]\nkind = \"test\"\nartifacts = \"b\"\n", 5, []string{"itself", "b -> b"}, ""},
		{"artifacts cycle", "[step.a]\nkind = \"deps\"\nartifacts = \"c\"\n[step.b]\nkind = \"test\"\nartifacts = \"a\"\n[step.c]\nkind = \"test\"\nartifacts = \"b\"\n", 3, []string{"a -> c -> b -> a"}, ""},
		// go-toml matches field names case-insensitively; smelt.toml keys are exact.
		{"key case", "[step.a]\nkind = \"deps\"\n[outputs]\ncheckS = []\n", 4, []string{`"checkS"`}, `did you mean "checks"?`},
		{"key case in step", "[step.a]\nKind = \"deps\"\n", 2, []string{`"Kind"`}, `did you mean "kind"?`},
		{"table case", "[Common]\n[step.a]\nkind = \"deps\"\n", 1, []string{"[Common]"}, `did you mean [common]?`},
		{"outputs default names unknown", "[step.a]\nkind = \"deps\"\n[outputs]\ndefault = \"b\"\n", 4, []string{"default", `"b"`}, "existing steps: a"},
		{"outputs checks names unknown", "[step.a]\nkind = \"deps\"\n[outputs]\ndefault = \"a\"\nchecks = [\"a\", \"nope\"]\n", 5, []string{"checks", `"nope"`}, "existing steps: a"},
		{"outputs default names a member of a non-package step", "[step.a]\nkind = \"deps\"\n[outputs]\ndefault = \"a.app\"\n", 4, []string{"default", `"a.app"`}, "existing steps: a"},
		{"step name reserved", "[step.a]\nkind = \"deps\"\n[step.\"b@x\"]\nkind = \"test\"\n", 3, []string{`"b@x"`}, `"@" is reserved`},
		{"empty profile in step", "[step.a]\nkind = \"deps\"\nprofile = \"\"\n", 3, []string{"profile", `"a"`}, ""},
		{"empty profile in common", "[common]\nprofile = \"\"\n[step.a]\nkind = \"deps\"\n", 2, []string{"profile", "[common]"}, ""},
		// Settings that move cargo's target directory: a step would pass and store nothing.
		{"target dir in common env", "[common]\nenv = { CARGO_TARGET_DIR = \"/tmp/t\" }\n[step.a]\nkind = \"package\"\n", 2, []string{"CARGO_TARGET_DIR", "[common]"}, "remove it"},
		{"target dir in step env table", "[step.a]\nkind = \"package\"\n[step.a.env]\nRUSTFLAGS = \"\"\nCARGO_BUILD_TARGET_DIR = \"t\"\n", 5, []string{"CARGO_BUILD_TARGET_DIR", "[step.a]"}, "remove it"},
		{"target dir in cargo-args", "[step.a]\nkind = \"package\"\n\ncargo-args = [\"--target-dir\", \"/tmp/t\"]\n", 4, []string{"cargo-args", "--target-dir"}, "remove it"},
		{"target dir= in common cargo-args", "[common]\ncargo-args = [\"--target-dir=/tmp/t\"]\n[step.a]\nkind = \"package\"\n", 2, []string{"cargo-args", "[common]"}, "remove it"},
		{"target dir in args", "[step.a]\nkind = \"test\"\nargs = [\"--target-dir\", \"t\"]\n", 3, []string{"args", "--target-dir"}, "remove it"},
		{"target dir in a matrix row", "[matrix]\ntoolchain = [\"stable\"]\n[matrix.row.stable]\nenv = { CARGO_TARGET_DIR = \"t\" }\n[step.a]\nkind = \"package\"\n", 4, []string{"CARGO_TARGET_DIR", "[matrix.row.stable]"}, "remove it"},
		// Several problems: the first in the file is reported.
		{"first of many", "[step.a]\nkind = \"deps\"\nartifacts = \"nope\"\n[step.b]\nkind = \"lint\"\n[outputs]\ndefault = \"x\"\n", 3, []string{`"nope"`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("smelt.toml", []byte(tt.text))
			if err == nil {
				t.Fatalf("no error; got %+v", cfg)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			t.Log(err) // shows the rendered sentence under -v
			if e.Line != tt.line {
				t.Errorf("Line = %d, want %d (%v)", e.Line, tt.line, e)
			}
			for _, m := range tt.msg {
				if !strings.Contains(e.Msg, m) {
					t.Errorf("Msg %q does not contain %q", e.Msg, m)
				}
			}
			if !strings.Contains(e.Fix, tt.fix) {
				t.Errorf("Fix %q does not contain %q", e.Fix, tt.fix)
			}
			if e.File != "smelt.toml" {
				t.Errorf("File = %q", e.File)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{"smelt.toml", 3, "bad", "fix it"}, "smelt.toml:3: bad; fix it"},
		{Error{"smelt.toml", 0, "bad", "fix it"}, "smelt.toml: bad; fix it"},
		{Error{"smelt.toml", 3, "bad", ""}, "smelt.toml:3: bad"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// withoutPlace drops what legitimately differs between a parsed file and
// the built-in value.
func withoutPlace(c *Config) *Config {
	out := *c
	out.File = ""
	out.Steps = map[string]*Step{}
	for n, s := range c.Steps {
		s2 := *s
		s2.Line = 0
		out.Steps[n] = &s2
	}
	return &out
}

func TestDefaultTOMLMatchesDefault(t *testing.T) {
	cfg, err := Parse("smelt.toml", []byte(DefaultTOML()))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := withoutPlace(cfg), Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse(DefaultTOML()) = %+v\nDefault() = %+v", got, want)
	}
	if !strings.HasPrefix(DefaultTOML(), "#") || !strings.Contains(DefaultTOML(), "key by key") {
		t.Error("DefaultTOML lacks its explanatory header")
	}
}

func TestSequentialTOML(t *testing.T) {
	cfg, err := Parse("smelt.toml", []byte(SequentialTOML()))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"deps", "clippy", "test", "crate"}; !slices.Equal(cfg.Order, want) {
		t.Fatalf("Order = %v, want %v", cfg.Order, want)
	}
	for i, name := range cfg.Order {
		want := ""
		if i > 0 {
			want = cfg.Order[i-1]
		}
		if got := cfg.Steps[name].Inherits; got != want {
			t.Errorf("%s.Artifacts = %q, want %q", name, got, want)
		}
	}
	if k := cfg.Steps["crate"].Kind; k != "package" {
		t.Errorf("crate kind = %q", k)
	}
	if a := cfg.Steps["clippy"].Args; !slices.Equal(a, []string{"--all-targets", "--", "--deny", "warnings"}) {
		t.Errorf("clippy args = %v", a)
	}
	if cfg.Default != "crate" || !slices.Equal(cfg.Checks, []string{"clippy", "test", "crate"}) {
		t.Errorf("outputs = %q %v", cfg.Default, cfg.Checks)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "smelt.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	path := filepath.Join(dir, "smelt.toml")
	if err := os.WriteFile(path, []byte(SequentialTOML()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != path || cfg.Steps["deps"].Line == 0 {
		t.Errorf("File = %q, deps line = %d", cfg.File, cfg.Steps["deps"].Line)
	}
	// The sample project in the repository must stay valid.
	if _, err := os.Stat("../../testdata/sequential/smelt.toml"); err == nil {
		if _, err := Load("../../testdata/sequential/smelt.toml"); err != nil {
			t.Error(err)
		}
	}
}

// The key lists drive error fixes, so they must match the decoded fields.
func TestKeyListsMatchStructs(t *testing.T) {
	tags := func(v any) []string {
		var out []string
		var walk func(reflect.Type)
		walk = func(typ reflect.Type) {
			for f := range typ.Fields() {
				if f.Anonymous {
					walk(f.Type)
					continue
				}
				out = append(out, f.Tag.Get("toml"))
			}
		}
		walk(reflect.TypeOf(v))
		slices.Sort(out)
		return out
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	for _, c := range []struct {
		v    any
		keys []string
	}{
		{rawCommon{}, commonKeys}, {looseCommon{}, commonKeys},
		{rawStep{}, stepKeys}, {looseStep{}, stepKeys},
		{rawOutputs{}, outputsKeys}, {rawFile{}, topTables}, {looseFile{}, topTables},
		{rawRemote{}, remoteKeys},
	} {
		if got, want := tags(c.v), sorted(c.keys); !slices.Equal(got, want) {
			t.Errorf("%T tags %v, want %v", c.v, got, want)
		}
	}
	for _, k := range stepKeys {
		if keyTypes[k] == "" || keyExamples[k] == "" {
			t.Errorf("key %q lacks a type description or example", k)
		}
	}
}

func TestIndexText(t *testing.T) {
	text := "a = \"\"\"\n[step.fake]\n\"\"\"\n[step . \"q\"]  # c\nx.y = 1\n[step]\nz = { kind = \"deps\" }\n"
	ix := indexText([]byte(text))
	if !slices.Equal(ix.steps, []string{"q", "z"}) {
		t.Errorf("steps = %v", ix.steps)
	}
	for _, c := range []struct {
		path []string
		line int
	}{
		{[]string{"step", "q"}, 4}, {[]string{"step", "q", "x"}, 5}, {[]string{"step", "q", "nope"}, 4},
		{[]string{"step", "z", "kind"}, 7}, {[]string{"step", "fake"}, 4}, {[]string{"other"}, 0},
	} {
		if got := ix.line(c.path...); got != c.line {
			t.Errorf("line(%v) = %d, want %d", c.path, got, c.line)
		}
	}
}

// [outputs] may name a package step's build of one workspace member.
func TestOutputsMember(t *testing.T) {
	cfg, err := Parse("smelt.toml", []byte("[step.deps]\nkind = \"deps\"\n[step.pkg]\nkind = \"package\"\nartifacts = \"deps\"\n[outputs]\ndefault = \"pkg.app\"\nchecks = [\"pkg.app\", \"pkg.cli\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Default != "pkg.app" || len(cfg.Checks) != 2 {
		t.Errorf("default %q, checks %q", cfg.Default, cfg.Checks)
	}
}
