package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	cfg, err := Parse("smelt.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestNewStepKeys(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		check func(*Step) bool
	}{
		{"toolchain in common", "[common]\ntoolchain = \"nightly\"\n[step.a]\nkind = \"test\"\n",
			func(s *Step) bool { return s.Toolchain == "nightly" }},
		{"toolchain in step wins", "[common]\ntoolchain = \"nightly\"\n[step.a]\nkind = \"test\"\ntoolchain = \"1.80\"\n",
			func(s *Step) bool { return s.Toolchain == "1.80" }},
		{"toolchain unset", "[step.a]\nkind = \"test\"\n",
			func(s *Step) bool {
				return s.Toolchain == "" && s.FailUnder == 0 && s.Partitions == 0 && s.Run == nil && s.Outputs == nil
			}},
		{"fail-under integer", "[step.a]\nkind = \"coverage\"\nfail-under = 80\n",
			func(s *Step) bool { return s.FailUnder == 80 }},
		{"fail-under float", "[step.a]\nkind = \"tarpaulin\"\nfail-under = 72.5\n",
			func(s *Step) bool { return s.FailUnder == 72.5 }},
		{"fail-under bounds", "[step.a]\nkind = \"coverage\"\nfail-under = 100\n",
			func(s *Step) bool { return s.FailUnder == 100 }},
		{"partitions", "[step.a]\nkind = \"nextest\"\npartitions = 4\n",
			func(s *Step) bool { return s.Partitions == 4 }},
		{"partitions one", "[step.a]\nkind = \"nextest\"\npartitions = 1\n",
			func(s *Step) bool { return s.Partitions == 1 }},
		{"run string", "[step.a]\nkind = \"command\"\nrun = \"make assets && ls\"\n",
			func(s *Step) bool { return slices.Equal(s.Run, []string{"sh", "-c", "make assets && ls"}) }},
		{"run list", "[step.a]\nkind = \"command\"\nrun = [\"make\", \"assets\"]\noutputs = [\"assets/out/**\"]\n",
			func(s *Step) bool {
				return slices.Equal(s.Run, []string{"make", "assets"}) && slices.Equal(s.Outputs, []string{"assets/out/**"})
			}},
		{"new kinds", "[step.a]\nkind = \"doctest\"\n[step.b]\nkind = \"deny\"\n",
			func(s *Step) bool { return s.Kind == "doctest" && s.Base == "a" && s.Row == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, tt.text)
			if s := cfg.Steps["a"]; !tt.check(s) {
				t.Errorf("got %+v", s)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	const row2 = "[matrix]\ntoolchain = [\"stable\", \"nightly\"]\n"
	tests := []struct {
		name string
		text string
		line int
		msg  []string
		fix  string
	}{
		{"fail-under wrong kind", "[step.a]\nkind = \"test\"\nfail-under = 80\n", 3, []string{`"a"`, `"test"`, "fail-under"}, `"coverage" and "tarpaulin"`},
		{"fail-under too high", "[step.a]\nkind = \"coverage\"\n\nfail-under = 100.5\n", 4, []string{"100.5", "0 to 100"}, "fail-under = 80"},
		{"fail-under negative", "[step.a]\nkind = \"tarpaulin\"\nfail-under = -1\n", 3, []string{"-1", "0 to 100"}, ""},
		{"fail-under type", "[step.a]\nkind = \"coverage\"\nfail-under = \"80\"\n", 3, []string{`"fail-under"`, "a number", "a string"}, "fail-under = 80"},
		{"partitions wrong kind", "[step.a]\nkind = \"test\"\npartitions = 2\n", 3, []string{`"a"`, "partitions"}, `"nextest"`},
		{"partitions zero", "[step.a]\nkind = \"nextest\"\npartitions = 0\n", 3, []string{"0", "at least 1"}, ""},
		{"partitions float", "[step.a]\nkind = \"nextest\"\npartitions = 2.5\n", 3, []string{`"partitions"`, "an integer", "a float"}, "partitions = 4"},
		{"command without run", "[step.a]\nkind = \"deps\"\n[step.b]\nkind = \"command\"\n", 3, []string{`"b"`, "no run"}, `run = "make assets"`},
		{"run empty string", "[step.a]\nkind = \"command\"\nrun = \" \"\n", 3, []string{`"run"`, "empty string"}, ""},
		{"run empty list", "[step.a]\nkind = \"command\"\nrun = []\n", 3, []string{`"run"`, "empty list"}, ""},
		{"run not strings", "[step.a]\nkind = \"command\"\nrun = [\"make\", 1]\n", 3, []string{`"run"`, "an integer"}, ""},
		{"run wrong type", "[step.a]\nkind = \"command\"\nrun = true\n", 3, []string{`"run"`, "a boolean"}, ""},
		{"run wrong kind", "[step.a]\nkind = \"test\"\nrun = \"make\"\n", 3, []string{`"a"`, "run"}, `"command"`},
		{"outputs wrong kind", "[step.a]\nkind = \"test\"\noutputs = [\"x\"]\n", 3, []string{`"a"`, "outputs"}, `"command"`},
		{"outputs type", "[step.a]\nkind = \"command\"\nrun = \"x\"\noutputs = \"x\"\n", 4, []string{`"outputs"`, "list of strings"}, ""},
		{"toolchain type", "[common]\ntoolchain = 1\n[step.a]\nkind = \"test\"\n", 2, []string{`"toolchain"`, "a string"}, `toolchain = "nightly"`},
		{"step-only key in common", "[common]\npartitions = 2\n[step.a]\nkind = \"test\"\n", 2, []string{`"partitions"`}, "[step.NAME]"},
		{"artifacts from partitioned nextest", "[step.n]\nkind = \"nextest\"\npartitions = 3\n[step.b]\nkind = \"test\"\nartifacts = \"n\"\n", 6,
			[]string{`"b"`, `"n"`, "3 partitions"}, "remove partitions"},
		{"unknown matrix key", "[matrix]\ntoolchains = [\"x\"]\n[step.a]\nkind = \"test\"\n", 2, []string{`"toolchains"`, "[matrix]"}, `did you mean "toolchain"?`},
		{"common key in matrix", "[matrix]\nprofile = [\"dev\"]\n[step.a]\nkind = \"test\"\n", 2, []string{`"profile"`}, `[matrix.row."LABEL"]`},
		{"matrix key case", "[matrix]\nToolchain = [\"x\"]\n[step.a]\nkind = \"test\"\n", 2, []string{`"Toolchain"`}, `did you mean "toolchain"?`},
		{"matrix toolchain type", "[matrix]\ntoolchain = \"nightly\"\n[step.a]\nkind = \"test\"\n", 2, []string{`"toolchain"`, "[matrix]", "a list of strings"}, `["stable", "nightly"]`},
		{"matrix features flat", "[matrix]\nfeatures = [\"serde\"]\n[step.a]\nkind = \"test\"\n", 2, []string{`"features"`, "feature lists"}, `[["serde"], []]`},
		{"matrix empty toolchain", "[matrix]\ntoolchain = [\"\"]\n[step.a]\nkind = \"test\"\n", 2, []string{"empty"}, ""},
		{"matrix duplicate", "[matrix]\ntoolchain = [\"stable\", \"stable\"]\n[step.a]\nkind = \"test\"\n", 2, []string{`"stable" twice`}, ""},
		{"matrix duplicate features", "[matrix]\nfeatures = [[], []]\n[step.a]\nkind = \"test\"\n", 2, []string{"[] twice"}, ""},
		{"row not in matrix", row2 + "[matrix.row.\"nightyl\"]\nprofile = \"dev\"\n[step.a]\nkind = \"test\"\n", 3,
			[]string{`"nightyl"`, "no row"}, `did you mean "nightly"? (the rows are: "stable", "nightly")`},
		{"row without matrix", "[matrix.row.\"x\"]\nprofile = \"dev\"\n[step.a]\nkind = \"test\"\n", 1, []string{`"x"`}, "no rows"},
		{"unknown row key", row2 + "[matrix.row.nightly]\nprofle = \"dev\"\n[step.a]\nkind = \"test\"\n", 4,
			[]string{`"profle"`, `[matrix.row."nightly"]`}, `did you mean "profile"?`},
		{"step key in row", row2 + "[matrix.row.nightly]\nkind = \"test\"\n[step.a]\nkind = \"test\"\n", 4, []string{`"kind"`}, "[step.NAME]"},
		{"row key type", row2 + "[matrix.row.nightly]\nfeatures = \"x\"\n[step.a]\nkind = \"test\"\n", 4,
			[]string{`"features"`, `[matrix.row."nightly"]`, "list of strings"}, `features = ["serde"]`},
		{"row empty profile", row2 + "[matrix.row.nightly]\nprofile = \"\"\n[step.a]\nkind = \"test\"\n", 4, []string{"profile", `"nightly"`}, ""},
		{"matrix errors reported once", row2 + "[step.a]\nkind = \"test\"\npartitions = 2\n", 5, []string{"partitions"}, ""},
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
			t.Log(err)
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
		})
	}
}

const pipeline = `
[step.deps]
kind = "deps"

[step.clippy]
kind = "clippy"
artifacts = "deps"

[step.pkg]
kind = "package"
artifacts = "deps"
`

func TestMatrixToolchain(t *testing.T) {
	cfg := mustParse(t, "[matrix]\ntoolchain = [\"stable\", \"nightly\"]\n"+pipeline+"[outputs]\ndefault = \"pkg\"\nchecks = [\"clippy\", \"pkg\"]\n")
	wantOrder := []string{"deps@stable", "clippy@stable", "pkg@stable", "deps@nightly", "clippy@nightly", "pkg@nightly"}
	if !slices.Equal(cfg.Order, wantOrder) {
		t.Errorf("Order = %v, want %v", cfg.Order, wantOrder)
	}
	if len(cfg.Steps) != len(wantOrder) {
		t.Errorf("%d steps, want %d", len(cfg.Steps), len(wantOrder))
	}
	for _, c := range []struct{ name, base, row, artifacts, toolchain string }{
		{"deps@stable", "deps", "stable", "", "stable"},
		{"clippy@stable", "clippy", "stable", "deps@stable", "stable"},
		{"clippy@nightly", "clippy", "nightly", "deps@nightly", "nightly"},
		{"pkg@nightly", "pkg", "nightly", "deps@nightly", "nightly"},
	} {
		s := cfg.Steps[c.name]
		if s == nil {
			t.Fatalf("no step %s", c.name)
		}
		if s.Name != c.name || s.Base != c.base || s.Row != c.row || s.Inherits != c.artifacts || s.Toolchain != c.toolchain {
			t.Errorf("%s = %+v", c.name, s)
		}
		if s.Line == 0 || s.Profile != "release" || s.Env == nil {
			t.Errorf("%s lacks defaults: %+v", c.name, s)
		}
	}
	if want := []string{"clippy@stable", "pkg@stable", "clippy@nightly", "pkg@nightly"}; !slices.Equal(cfg.Checks, want) {
		t.Errorf("Checks = %v, want %v", cfg.Checks, want)
	}
	if cfg.Default != "pkg@stable" {
		t.Errorf("Default = %q", cfg.Default)
	}
	// Rows must not share lists or maps.
	cfg.Steps["deps@stable"].Env["X"] = "1"
	if _, ok := cfg.Steps["deps@nightly"].Env["X"]; ok {
		t.Error("rows share one env map")
	}

	// Without [outputs]: every step is a check, the first package step of
	// the first row is the default.
	cfg = mustParse(t, "[matrix]\ntoolchain = [\"stable\", \"nightly\"]\n"+pipeline)
	if !slices.Equal(cfg.Checks, cfg.Order) || cfg.Default != "pkg@stable" {
		t.Errorf("Checks = %v, Default = %q", cfg.Checks, cfg.Default)
	}
}

func TestMatrixLabels(t *testing.T) {
	tests := []struct {
		name   string
		matrix string
		rows   []string
	}{
		{"features", `features = [["serde"], [], ["a", "b"]]`, []string{"features=serde", "features=", "features=a+b"}},
		{"two dimensions", "toolchain = [\"stable\", \"nightly\"]\nfeatures = [[\"serde\"], []]",
			[]string{"stable,features=serde", "stable,features=", "nightly,features=serde", "nightly,features="}},
		{"three dimensions", "features = [[]]\ntarget = [\"t1\", \"t2\"]\ntoolchain = [\"nightly\"]",
			[]string{"nightly,t1,features=", "nightly,t2,features="}},
		{"empty dimensions", "toolchain = []\nfeatures = []", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, "[matrix]\n"+tt.matrix+"\n[step.a]\nkind = \"test\"\nfeatures = [\"x\"]\n[step.b]\nkind = \"test\"\n")
			var want []string
			for _, r := range tt.rows {
				want = append(want, "a@"+r, "b@"+r)
			}
			if tt.rows == nil {
				want = []string{"a", "b"}
			}
			if !slices.Equal(cfg.Order, want) {
				t.Fatalf("Order = %v, want %v", cfg.Order, want)
			}
			for _, n := range cfg.Order {
				s := cfg.Steps[n]
				if tt.rows == nil {
					if s.Base != n || s.Row != "" || !slices.Equal(s.Features, map[string][]string{"a": {"x"}}[n]) {
						t.Errorf("%s = %+v", n, s)
					}
					continue
				}
				if s.Base+"@"+s.Row != n {
					t.Errorf("%s: Base %q Row %q", n, s.Base, s.Row)
				}
			}
		})
	}
	// The features dimension replaces a step's own features.
	cfg := mustParse(t, "[matrix]\nfeatures = [[\"serde\"], []]\n[step.a]\nkind = \"test\"\nfeatures = [\"x\"]\n")
	if f := cfg.Steps["a@features=serde"].Features; !slices.Equal(f, []string{"serde"}) {
		t.Errorf("features=serde row: %v", f)
	}
	if f := cfg.Steps["a@features="].Features; f == nil || len(f) != 0 {
		t.Errorf("features= row: %#v, want empty non-nil", f)
	}
	cfg = mustParse(t, "[matrix]\ntarget = [\"t1\"]\n[step.a]\nkind = \"test\"\ntarget = \"mine\"\n")
	if s := cfg.Steps["a@t1"]; s.Target != "t1" {
		t.Errorf("target = %q, want the row's", s.Target)
	}
}

func TestMatrixRowOverride(t *testing.T) {
	text := `[common]
profile = "release"
cargo-args = ["--locked"]
env = { A = "common" }
toolchain = "1.80"

[matrix]
toolchain = ["stable", "nightly"]

[matrix.row.nightly]
profile = "dev"
cargo-args = ["-Zunstable-options"]
env = { A = "row" }
toolchain = "ignored"          # the row's dimension value wins
include = ["nightly/**"]

[step.a]
kind = "test"
env = { A = "step" }           # the step's own key beats the row override

[step.b]
kind = "clippy"
`
	cfg := mustParse(t, text)
	for _, c := range []struct {
		name, profile, toolchain string
		cargoArgs, include       []string
		env                      string
	}{
		{"a@stable", "release", "stable", []string{"--locked"}, nil, "step"},
		{"b@stable", "release", "stable", []string{"--locked"}, nil, "common"},
		{"a@nightly", "dev", "nightly", []string{"-Zunstable-options"}, []string{"nightly/**"}, "step"},
		{"b@nightly", "dev", "nightly", []string{"-Zunstable-options"}, []string{"nightly/**"}, "row"},
	} {
		s := cfg.Steps[c.name]
		if s == nil {
			t.Fatalf("no step %s", c.name)
		}
		if s.Profile != c.profile || s.Toolchain != c.toolchain || !slices.Equal(s.CargoArgs, c.cargoArgs) ||
			!slices.Equal(s.Include, c.include) || !reflect.DeepEqual(s.Env, map[string]string{"A": c.env}) {
			t.Errorf("%s = %+v", c.name, s)
		}
	}
}

func TestResolve(t *testing.T) {
	cfg := mustParse(t, "[matrix]\ntoolchain = [\"stable\", \"nightly\"]\n"+pipeline)
	plain := mustParse(t, pipeline)
	tests := []struct {
		cfg  *Config
		name string
		want []string
		err  string
	}{
		{cfg, "clippy", []string{"clippy@stable", "clippy@nightly"}, ""},
		{cfg, "clippy@nightly", []string{"clippy@nightly"}, ""},
		{cfg, "clippy@beta", nil, "no step named clippy@beta (steps: deps, clippy, pkg)"},
		{cfg, "nope", nil, "no step named nope (steps: deps, clippy, pkg)"},
		{plain, "pkg", []string{"pkg"}, ""},
		{plain, "pkg@stable", nil, "no step named pkg@stable (steps: deps, clippy, pkg)"},
		{Default(), "doc", []string{"doc"}, ""},
	}
	for _, tt := range tests {
		got, err := tt.cfg.Resolve(tt.name)
		if tt.err != "" {
			var e *Error
			if err == nil || err.Error() != tt.err || errors.As(err, &e) {
				t.Errorf("Resolve(%q) err = %v, want plain error %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Resolve(%q) = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestMatrixKeyLists(t *testing.T) {
	for _, v := range []any{rawMatrix{}, looseMatrix{}} {
		var got []string
		typ := reflect.TypeOf(v)
		for f := range typ.Fields() {
			got = append(got, f.Tag.Get("toml"))
		}
		if !slices.Equal(got, matrixKeys) {
			t.Errorf("%T tags %v, want %v", v, got, matrixKeys)
		}
	}
	for _, k := range matrixKeys {
		if matrixTypes[k] == "" || matrixExamples[k] == "" {
			t.Errorf("matrix key %q lacks a type description or example", k)
		}
	}
	if !strings.Contains(DefaultTOML(), "[matrix]") || !strings.Contains(DefaultTOML(), "nextest") {
		t.Error("DefaultTOML header does not mention the matrix and the extra kinds")
	}
}
