package cargo

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"smelt/internal/config"
)

func mkStep(kind string, edit func(*config.Step)) *config.Step {
	s := &config.Step{Name: kind, Kind: kind, Args: config.DefaultArgs(kind), Profile: "release", Env: map[string]string{}}
	if edit != nil {
		edit(s)
	}
	return s
}

func args(cmds []Command) []string {
	out := []string{}
	for _, c := range cmds {
		out = append(out, strings.Join(c.Args, " "))
	}
	return out
}

const base = "--offline --locked --config " + VendorConfig

func TestCommandsPerKind(t *testing.T) {
	tests := []struct {
		name string
		step *config.Step
		want []string
	}{
		{"clippy default args", mkStep("clippy", nil),
			[]string{"clippy " + base + " --profile release --workspace --all-targets -- --deny warnings"}},
		{"test", mkStep("test", nil),
			[]string{"test " + base + " --profile release --workspace"}},
		{"test dev profile", mkStep("test", func(s *config.Step) { s.Profile = "dev" }),
			[]string{"test " + base + " --profile dev --workspace"}},
		{"doc", mkStep("doc", nil),
			[]string{"doc --no-deps " + base + " --profile release --workspace"}},
		{"package", mkStep("package", nil),
			[]string{"build --message-format=json-render-diagnostics " + base + " --profile release --workspace"}},
		{"features", mkStep("test", func(s *config.Step) { s.Features = []string{"a", "b"} }),
			[]string{"test " + base + " --profile release --features a,b --workspace"}},
		{"all features", mkStep("test", func(s *config.Step) { s.AllFeatures = true }),
			[]string{"test " + base + " --profile release --all-features --workspace"}},
		{"no default features + target", mkStep("package", func(s *config.Step) {
			s.NoDefaultFeatures = true
			s.Target = "aarch64-unknown-linux-gnu"
		}), []string{"build --message-format=json-render-diagnostics " + base + " --profile release --no-default-features --target aarch64-unknown-linux-gnu --workspace"}},
		{"cargo-args after flags", mkStep("test", func(s *config.Step) { s.CargoArgs = []string{"-Zunstable-options"} }),
			[]string{"test " + base + " --profile release --workspace -Zunstable-options"}},
		{"-p selects packages", mkStep("test", func(s *config.Step) { s.Args = []string{"-p", "core"} }),
			[]string{"test " + base + " --profile release -p core"}},
		{"--package=x selects packages", mkStep("clippy", func(s *config.Step) { s.Args = []string{"--package=core", "--", "-D", "warnings"} }),
			[]string{"clippy " + base + " --profile release --package=core -- -D warnings"}},
		{"--package x selects packages", mkStep("doc", func(s *config.Step) { s.Args = []string{"--package", "core"} }),
			[]string{"doc --no-deps " + base + " --profile release --package core"}},
		{"--manifest-path selects", mkStep("test", func(s *config.Step) { s.Args = []string{"--manifest-path", "a/Cargo.toml"} }),
			[]string{"test " + base + " --profile release --manifest-path a/Cargo.toml"}},
		{"--workspace given once", mkStep("test", func(s *config.Step) { s.Args = []string{"--workspace"} }),
			[]string{"test " + base + " --profile release --workspace"}},
		{"-p in cargo-args", mkStep("test", func(s *config.Step) { s.CargoArgs = []string{"-p", "core"} }),
			[]string{"test " + base + " --profile release -p core"}},
		{"-p after -- is the tool's", mkStep("test", func(s *config.Step) { s.Args = []string{"--", "-p"} }),
			[]string{"test " + base + " --profile release --workspace -- -p"}},
		{"fmt has none of the build flags", mkStep("fmt", func(s *config.Step) {
			s.Profile, s.Features, s.Target, s.AllFeatures = "dev", []string{"x"}, "t", true
		}), []string{"fmt --all --check"}},
		{"fmt args", mkStep("fmt", func(s *config.Step) { s.Args = []string{"--", "--config", "x=y"} }),
			[]string{"fmt --all --check -- --config x=y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds := Commands(tt.step, nil, 0, 0)
			if got := args(cmds); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Commands args:\n got %q\nwant %q", got, tt.want)
			}
			for _, c := range cmds {
				if c.Program != "cargo" {
					t.Errorf("Program = %q", c.Program)
				}
			}
		})
	}
}

func TestCommandsUnknownKind(t *testing.T) {
	if c := Commands(mkStep("bogus", nil), nil, 0, 0); c != nil {
		t.Errorf("unknown kind gives %v", c)
	}
}

func TestPackageCommandReadsJSON(t *testing.T) {
	c := Commands(mkStep("package", nil), nil, 0, 0)
	if len(c) != 1 || !c[0].JSON {
		t.Errorf("package command should be marked JSON: %+v", c)
	}
}

// cargo test builds the examples too unless its arguments name targets,
// so the warm-up of a test step must, or the step compiles them itself.
func TestTestBuild(t *testing.T) {
	tests := []struct {
		kind string
		args []string
		want string
	}{
		{"test", nil, "build --tests --examples"},
		{"test", []string{"--", "--nocapture"}, "build --tests --examples"},
		{"test", []string{"--lib"}, "build --tests"},
		{"test", []string{"--test=cli"}, "build --tests"},
		{"test", []string{"--all-targets"}, "build --tests"},
		{"nextest", nil, "build --tests --examples"},
		{"coverage", nil, "build --tests --examples"},
		{"doctest", nil, "build --tests"},
	}
	for _, tt := range tests {
		h := mkStep(tt.kind, func(s *config.Step) { s.Args = tt.args })
		w := Commands(mkStep("deps", nil), []*config.Step{h}, 0, 0)
		if len(w) != 1 || !strings.HasPrefix(strings.Join(w[0].Args, " "), tt.want+" --keep-going ") {
			t.Errorf("%s %q: warm-ups %q, want one %q", tt.kind, tt.args, args(w), tt.want)
		}
	}
}

func TestDepsWarmups(t *testing.T) {
	deps := mkStep("deps", nil)
	clippy := mkStep("clippy", func(s *config.Step) { s.Features = []string{"f"} })
	test := mkStep("test", func(s *config.Step) { s.Profile = "dev"; s.Args = []string{"--lib", "--", "--nocapture"} })
	doc := mkStep("doc", nil)
	pkg := mkStep("package", nil)
	pkg2 := mkStep("package", nil)
	fmtS := mkStep("fmt", nil)
	got := args(Commands(deps, []*config.Step{clippy, test, fmtS, doc, pkg, pkg2}, 0, 0))
	want := []string{
		"check --keep-going " + base + " --profile release --features f --workspace --all-targets",
		"build --tests --keep-going " + base + " --profile dev --workspace --lib",
		"doc --no-deps --keep-going " + base + " --profile release --workspace",
		"build --keep-going " + base + " --profile release --workspace",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deps warm-ups:\n got %q\nwant %q", got, want)
	}
	// The heir's own command starts with the same flags, so cargo reuses
	// every dependency the warm-up built.
	for _, h := range []*config.Step{clippy, test, doc, pkg} {
		own := Commands(h, nil, 0, 0)[0].Args
		var warm []string
		for _, w := range Commands(deps, []*config.Step{h}, 0, 0) {
			warm = w.Args
		}
		if !slices.Equal(flagsOf(own), flagsOf(warm)) {
			t.Errorf("%s: flags differ between warm-up %q and own command %q", h.Kind, warm, own)
		}
	}
}

// flagsOf extracts the flags that decide how dependencies are compiled.
func flagsOf(a []string) []string {
	var out []string
	for i := 0; i < len(a); i++ {
		switch a[i] {
		case "--profile", "--features", "--target", "--config":
			out = append(out, a[i], a[i+1])
			i++
		case "--all-features", "--no-default-features", "--offline", "--locked", "--workspace":
			out = append(out, a[i])
		}
	}
	return out
}

func TestDepsWithoutHeirsUsesOwnSettings(t *testing.T) {
	deps := mkStep("deps", func(s *config.Step) { s.Profile = "dev"; s.Args = []string{"-v"} })
	got := args(Commands(deps, nil, 0, 0))
	want := []string{
		"check --keep-going " + base + " --profile dev --workspace --all-targets -v",
		"build --keep-going " + base + " --profile dev --workspace -v",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deps alone:\n got %q\nwant %q", got, want)
	}
}

// Commands must not share backing arrays with the step's slices, or
// appending the deps args to one command could change another.
func TestCommandsDoNotAlias(t *testing.T) {
	deps := mkStep("deps", func(s *config.Step) { s.Args = []string{"--jobs", "1"} })
	h1 := mkStep("package", nil)
	h2 := mkStep("package", func(s *config.Step) { s.Profile = "dev" })
	cmds := Commands(deps, []*config.Step{h1, h2}, 0, 0)
	before := args(cmds)
	cmds[0].Args[len(cmds[0].Args)-1] = "MUTATED"
	if after := args(cmds); after[1] != before[1] {
		t.Errorf("commands share memory: %q", after)
	}
	if slices.Contains(h1.Args, "MUTATED") || slices.Contains(deps.Args, "MUTATED") {
		t.Errorf("commands share memory with the steps")
	}
}

func TestExpand(t *testing.T) {
	c := Commands(mkStep("test", nil), nil, 0, 0)[0]
	e := c.Expand("/store/vendor/abc/config.toml", "/store/work/x")
	if slices.Contains(e.Args, VendorConfig) {
		t.Errorf("placeholder left in %q", e.Args)
	}
	i := slices.Index(e.Args, "--config")
	if i < 0 || e.Args[i+1] != "/store/vendor/abc/config.toml" {
		t.Errorf("Expand args = %q", e.Args)
	}
	if !slices.Contains(c.Args, VendorConfig) {
		t.Errorf("Expand modified the original command: %q", c.Args)
	}
	if len(e.Args) != len(c.Args) || e.Program != c.Program {
		t.Errorf("Expand changed the shape: %+v vs %+v", e, c)
	}
}

func TestOutDirDocDir(t *testing.T) {
	tests := []struct {
		profile, target, out, doc string
	}{
		{"release", "", "release", "doc"},
		{"dev", "", "debug", "doc"},
		{"test", "", "debug", "doc"},
		{"bench", "", "release", "doc"},
		{"custom", "", "custom", "doc"},
		{"dev", "x86_64-unknown-linux-musl", "x86_64-unknown-linux-musl/debug", "x86_64-unknown-linux-musl/doc"},
	}
	for _, tt := range tests {
		s := mkStep("package", func(s *config.Step) { s.Profile, s.Target = tt.profile, tt.target })
		if got := OutDir(s); got != tt.out {
			t.Errorf("OutDir(%s, %s) = %s, want %s", tt.profile, tt.target, got, tt.out)
		}
		if got := DocDir(s); got != tt.doc {
			t.Errorf("DocDir(%s) = %s, want %s", tt.target, got, tt.doc)
		}
	}
}

// cargo accepts the short flag with its value attached (`-pcore`); smelt
// does not see that as a package selection and adds --workspace, which makes
// cargo build every member instead of the one asked for.
func TestAttachedShortPackageFlag(t *testing.T) {
	got := args(Commands(mkStep("test", func(s *config.Step) { s.Args = []string{"-pcore"} }), nil, 0, 0))
	if strings.Contains(got[0], "--workspace") {
		t.Errorf("-pcore got --workspace too: %q", got[0])
	}
}

func TestReplaced(t *testing.T) {
	for p, want := range map[string]bool{
		"release/deps/libitoa-1234.rlib":                  true,
		"release/deps/libitoa-1234.rmeta":                 true,
		"release/deps/hello-abcd":                         true,
		"x86_64-unknown-linux-gnu/release/deps/libz.so":   true,
		"release/build/anyhow-12/build_script_build-12":   true,
		"release/deps/hello-abcd.d":                       false,
		"release/.fingerprint/itoa-1234/lib-itoa":         false,
		"release/build/anyhow-34/out/generated.rs":        false,
		"release/build/anyhow-34/output":                  false,
		"release/build/anyhow-34/root-output":             false,
		"debug/incremental/hello-1/s-abc/dep-graph.bin":   false,
		"release/hello":                                   false,
		"release/build/anyhow-12/build_script_build-12.d": false,
	} {
		if got := Replaced(p); got != want {
			t.Errorf("Replaced(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestUnitDir(t *testing.T) {
	for _, c := range []struct{ path, want string }{
		{"release/.fingerprint/greet-0a1b/lib-greet", "release/.fingerprint/greet-0a1b"},
		{"release/.fingerprint/greet-0a1b/lib-greet.json", "release/.fingerprint/greet-0a1b"},
		{"release/build/greet-0a1b/out/gen.rs", "release/build/greet-0a1b"},
		{"release/build/greet-0a1b/build_script_build-0a1b", "release/build/greet-0a1b"},
		{"x86_64-unknown-linux-gnu/debug/build/ring-99/output", "x86_64-unknown-linux-gnu/debug/build/ring-99"},
		{"release/.fingerprint/greet-0a1b", ""}, // the directory itself
		{"release/deps/libgreet-0a1b.rlib", ""},
		{"release/app", ""},
		{"CACHEDIR.TAG", ""},
	} {
		if got := UnitDir(c.path); got != c.want {
			t.Errorf("UnitDir(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}

func TestUnitPackage(t *testing.T) {
	for _, c := range []struct{ path, want string }{
		{"release/.fingerprint/fd-find-1a6372e0c7c3bfaa/bin-fd", "fd-find"},
		{"release/build/greet-5963789387c69155/output", "greet"},
		{"release/.fingerprint/greet-xyz/lib-greet", ""},
		{"release/deps/libgreet-5963789387c69155.rlib", ""},
	} {
		if got := UnitPackage(c.path); got != c.want {
			t.Errorf("UnitPackage(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}

func TestDropCoveredBuilds(t *testing.T) {
	deps := mkStep("deps", nil)
	rel := func(kind string) *config.Step { return mkStep(kind, nil) }
	dev := func(kind string) *config.Step { return mkStep(kind, func(s *config.Step) { s.Profile = "dev" }) }
	cov := mkStep("coverage", nil)
	tests := []struct {
		name        string
		heirs       []*config.Step
		wantDropped []string
	}{
		{"test covers package", []*config.Step{rel("clippy"), rel("test"), rel("package")},
			[]string{"build --keep-going " + base + " --profile release --workspace"}},
		{"other profile", []*config.Step{rel("test"), dev("package")}, nil},
		{"other environment (coverage)", []*config.Step{cov, rel("package")}, nil},
		{"no test heir", []*config.Step{rel("clippy"), rel("package")}, nil},
		{"other package selection", []*config.Step{rel("test"),
			mkStep("package", func(s *config.Step) { s.Args = []string{"--bins"} })}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := Commands(deps, tt.heirs, 0, 0)
			kept, dropped := DropCoveredBuilds(all, nil)
			if got := args(dropped); !slices.Equal(got, tt.wantDropped) {
				t.Errorf("dropped %q, want %q", got, tt.wantDropped)
			}
			if len(kept)+len(dropped) != len(all) || len(kept) == 0 {
				t.Errorf("kept %q of %q", args(kept), args(all))
			}
			for _, c := range kept {
				if c.Args[0] == "build" && !slices.Contains(c.Args, "--tests") && len(tt.wantDropped) > 0 {
					t.Errorf("kept a covered build: %q", c.Args)
				}
			}
		})
	}
}

// A build --tests run fused (on the heirs' source) covers a plain build on
// the skeleton; a warm-up run fused is never dropped itself, as there a
// plain build builds the heirs' own binaries too.
func TestDropCoveredBuildsAlsoRun(t *testing.T) {
	all := Commands(mkStep("deps", nil), []*config.Step{mkStep("test", nil), mkStep("package", nil)}, 0, 0)
	i := slices.IndexFunc(all, func(c Command) bool { return slices.Contains(c.Args, "--tests") })
	if len(all) != 2 || i < 0 {
		t.Fatalf("warm-ups %q: want a build --tests and a build", args(all))
	}
	tests, plain := all[i], all[1-i]
	if kept, dropped := DropCoveredBuilds([]Command{plain}, []Command{tests}); len(kept) != 0 || len(dropped) != 1 {
		t.Errorf("skeleton build under a fused build --tests: kept %q, dropped %q; want it dropped", args(kept), args(dropped))
	}
	if kept, dropped := DropCoveredBuilds(nil, all); len(kept)+len(dropped) != 0 {
		t.Errorf("nothing on the skeleton: kept %q, dropped %q", args(kept), args(dropped))
	}
}
