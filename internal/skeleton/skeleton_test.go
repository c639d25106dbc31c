package skeleton

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// fs builds a file map from alternating path/content strings.
func fs(kv ...string) map[string][]byte {
	m := map[string][]byte{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = []byte(kv[i+1])
	}
	return m
}

func mustMake(t *testing.T, files map[string][]byte) map[string][]byte {
	t.Helper()
	out, err := Make(files)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	return out
}

// lookup walks a dotted key path ("package.version") through a decoded manifest.
func lookup(t *testing.T, manifest []byte, keys ...string) (any, bool) {
	t.Helper()
	var m any
	if err := toml.Unmarshal(manifest, &m); err != nil {
		t.Fatalf("output is not valid TOML: %v\n%s", err, manifest)
	}
	for _, k := range keys {
		table, ok := m.(map[string]any)
		if !ok {
			return nil, false
		}
		if m, ok = table[k]; !ok {
			return nil, false
		}
	}
	return m, true
}

const rootManifest = `[workspace]
members = ["a", "b"]
resolver = "2"

[workspace.package]
version = "1.2.3"
edition = "2021"

[workspace.dependencies]
b = { path = "b", version = "1.2" }
serde = { version = "1.0.100", features = ["derive"] }

[profile.release]
lto = true
`

const aManifest = `[package]
name = "a"
version = "0.4.2"
edition = "2021"

[features]
default = ["fast"]
fast = []

[dependencies]
b = { path = "../b", version = "^1.2", features = ["x"] }
serde.workspace = true
itoa = "1.0.10"
anyhow = { version = "1", default-features = false }

[build-dependencies]
b = { path = "../b", version = "1" }

[dev-dependencies]
b = { path = "../b", version = "1.2.0" }

[target.'cfg(unix)'.dependencies]
b = { path = "../b", version = "1.2.3", optional = true }
libc = { version = "0.2.150" }

[target.x86_64-pc-windows-msvc.build-dependencies]
b = { path = "../b", version = "1" }
`

const bManifest = `[package]
name = "b"
version.workspace = true
edition.workspace = true

[features]
x = []
`

func TestManifestRewrite(t *testing.T) {
	out := mustMake(t, fs(
		"Cargo.toml", rootManifest,
		"a/Cargo.toml", aManifest,
		"b/Cargo.toml", bManifest,
	))
	tests := []struct {
		file string
		key  string
		want any // nil: key must be absent
	}{
		{"a/Cargo.toml", "package.version", "0.0.0"},
		{"a/Cargo.toml", "package.name", "a"},
		{"b/Cargo.toml", "package.version.workspace", true},
		{"Cargo.toml", "workspace.package.version", "0.0.0"},
		{"Cargo.toml", "workspace.package.edition", "2021"},
		{"Cargo.toml", "workspace.dependencies.b.version", nil},
		{"Cargo.toml", "workspace.dependencies.b.path", "b"},
		{"Cargo.toml", "workspace.dependencies.serde.version", "1.0.100"},
		{"Cargo.toml", "profile.release.lto", true},
		{"a/Cargo.toml", "dependencies.b.version", nil},
		{"a/Cargo.toml", "dependencies.b.path", "../b"},
		{"a/Cargo.toml", "dependencies.b.features", []any{"x"}},
		{"a/Cargo.toml", "dependencies.itoa", "1.0.10"},
		{"a/Cargo.toml", "dependencies.anyhow.version", "1"},
		{"a/Cargo.toml", "dependencies.serde.workspace", true},
		{"a/Cargo.toml", "build-dependencies.b.version", nil},
		{"a/Cargo.toml", "dev-dependencies.b.version", nil},
		{"a/Cargo.toml", "target.cfg(unix).dependencies.b.version", nil},
		{"a/Cargo.toml", "target.cfg(unix).dependencies.b.optional", true},
		{"a/Cargo.toml", "target.cfg(unix).dependencies.libc.version", "0.2.150"},
		{"a/Cargo.toml", "target.x86_64-pc-windows-msvc.build-dependencies.b.version", nil},
		{"a/Cargo.toml", "features.default", []any{"fast"}},
	}
	for _, tt := range tests {
		t.Run(tt.file+":"+tt.key, func(t *testing.T) {
			got, ok := lookup(t, out[tt.file], splitKey(tt.key)...)
			if tt.want == nil {
				if ok {
					t.Fatalf("%s = %v, want absent", tt.key, got)
				}
				return
			}
			if !ok || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("%s = %#v (present %v), want %#v", tt.key, got, ok, tt.want)
			}
		})
	}
}

func splitKey(k string) []string {
	// Keep "x86_64-pc-windows-msvc" and "cfg(unix)" intact: split on dots
	// outside parentheses only.
	var keys []string
	depth, start := 0, 0
	for i, r := range k {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case '.':
			if depth == 0 {
				keys = append(keys, k[start:i])
				start = i + 1
			}
		}
	}
	return append(keys, k[start:])
}

func TestPatchedPackageKeepsVersion(t *testing.T) {
	// A local crate that replaces a registry crate via [patch] must keep its
	// version, or it would no longer satisfy the requirements it patches.
	out := mustMake(t, fs(
		"Cargo.toml", `[workspace]
members = ["app"]
[patch.crates-io]
itoa = { path = "vendor/itoa" }
`,
		"app/Cargo.toml", "[package]\nname = \"app\"\nversion = \"0.1.0\"\n[dependencies]\nitoa = \"1\"\n",
		"vendor/itoa/Cargo.toml", "[package]\nname = \"itoa\"\nversion = \"1.0.19\"\n",
		"Cargo.lock", `version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = [
 "itoa",
]

[[package]]
name = "itoa"
version = "1.0.19"
`,
	))
	if v, _ := lookup(t, out["vendor/itoa/Cargo.toml"], "package", "version"); v != "1.0.19" {
		t.Errorf("patched package version = %v, want 1.0.19", v)
	}
	if v, _ := lookup(t, out["app/Cargo.toml"], "package", "version"); v != "0.0.0" {
		t.Errorf("app version = %v, want 0.0.0", v)
	}
	lock := string(out["Cargo.lock"])
	if !strings.Contains(lock, "name = \"itoa\"\nversion = \"1.0.19\"\n") || !strings.Contains(lock, "name = \"app\"\nversion = \"0.0.0\"\n") {
		t.Errorf("lock:\n%s", lock)
	}
}

func TestLockRewrite(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "local versions and references masked, registry kept",
			in: `# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "a"
version = "0.4.2"
dependencies = [
 "b",
 "itoa",
]

[[package]]
name = "b"
version = "1.2.3"
dependencies = [
 "itoa 0.4.8",
 "itoa 1.0.19",
]

[[package]]
name = "itoa"
version = "0.4.8"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "b71991ff56294aa922b450139ee08b3bfc70982c6b2c7562771375cf73542dd4"

[[package]]
name = "itoa"
version = "1.0.19"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "4a5f13b858c8d314ee3e8f639011f7ccefe71f97f96e50151fb991f267928e2c"
`,
			want: `# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "a"
version = "0.0.0"
dependencies = [
 "b",
 "itoa",
]

[[package]]
name = "b"
version = "0.0.0"
dependencies = [
 "itoa 0.4.8",
 "itoa 1.0.19",
]

[[package]]
name = "itoa"
version = "0.4.8"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "b71991ff56294aa922b450139ee08b3bfc70982c6b2c7562771375cf73542dd4"

[[package]]
name = "itoa"
version = "1.0.19"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "4a5f13b858c8d314ee3e8f639011f7ccefe71f97f96e50151fb991f267928e2c"
`,
		},
		{
			// A local "b" shares its name with a registry "b": references carry
			// versions, and masking reorders both the entries and the references.
			name: "NAME VERSION references and cargo ordering",
			in: `version = 3

[[package]]
name = "a"
version = "0.4.2"
dependencies = [
 "b 0.5.0 (registry+https://github.com/rust-lang/crates.io-index)",
 "b 1.2.3",
]

[[package]]
name = "b"
version = "0.5.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "0000000000000000000000000000000000000000000000000000000000000000"

[[package]]
name = "b"
version = "1.2.3"
`,
			want: `version = 3

[[package]]
name = "a"
version = "0.0.0"
dependencies = [
 "b 0.0.0",
 "b 0.5.0 (registry+https://github.com/rust-lang/crates.io-index)",
]

[[package]]
name = "b"
version = "0.0.0"

[[package]]
name = "b"
version = "0.5.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "0000000000000000000000000000000000000000000000000000000000000000"
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustMake(t, fs(
				"Cargo.toml", "[workspace]\nmembers = [\"a\", \"b\"]\n",
				"a/Cargo.toml", "[package]\nname = \"a\"\nversion = \"0.4.2\"\n",
				"b/Cargo.toml", "[package]\nname = \"b\"\nversion = \"1.2.3\"\n",
				"Cargo.lock", tt.in,
			))
			if got := string(out["Cargo.lock"]); got != tt.want {
				t.Errorf("lock mismatch\ngot:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestCompareSemver(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"0.0.0", "0.5.0", -1},
		{"1.10.0", "1.9.0", 1},
		{"1.0.0-alpha", "1.0.0", -1},
		{"1.0.0-alpha.2", "1.0.0-alpha.10", -1},
		{"1.0.0-1", "1.0.0-a", -1},
		{"1.0.0", "1.0.0", 0},
		{"1.0.0", "1.0.0+build", -1},
	}
	for _, tt := range tests {
		if got := compareSemver(tt.a, tt.b); got != tt.want {
			t.Errorf("compareSemver(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestTargets(t *testing.T) {
	const main = mainStub
	tests := []struct {
		name  string
		files map[string][]byte
		want  map[string]string // every non-manifest output file
	}{
		{
			name: "auto-discovered roots of a root package",
			files: fs(
				"Cargo.toml", "[package]\nname = \"p\"\nversion = \"1.0.0\"\n",
				"src/lib.rs", "pub mod m;",
				"src/m.rs", "pub fn f() {}",
				"src/main.rs", "fn main() { p::m::f() }",
				"src/bin/tool.rs", "fn main() {}",
				"src/bin/multi/main.rs", "mod helper; fn main() {}",
				"src/bin/multi/helper.rs", "",
				"examples/ex.rs", "fn main() {}",
				"examples/big/main.rs", "fn main() {}",
				"tests/it.rs", "#[test] fn t() {}",
				"tests/common/mod.rs", "",
				"tests/suite/main.rs", "",
				"benches/b.rs", "",
				"build.rs", "fn main() { println!(\"x\") }",
				"README.md", "# p",
				"assets/logo.png", "\x89PNG",
				"rust-toolchain.toml", "[toolchain]\nchannel = \"1.95\"\n",
				".cargo/config.toml", "[build]\nrustflags = []\n",
			),
			want: map[string]string{
				"src/lib.rs":            libStub,
				"src/main.rs":           main,
				"src/bin/tool.rs":       main,
				"src/bin/multi/main.rs": main,
				"examples/ex.rs":        main,
				"examples/big/main.rs":  main,
				"tests/it.rs":           main,
				"tests/suite/main.rs":   main,
				"benches/b.rs":          main,
				"build.rs":              buildStub,
				"rust-toolchain.toml":   "[toolchain]\nchannel = \"1.95\"\n",
				".cargo/config.toml":    "[build]\nrustflags = []\n",
			},
		},
		{
			name: "explicit paths, present or absent; undeclared absent files get nothing",
			files: fs(
				"Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\n",
				"crates/x/Cargo.toml", `[package]
name = "x"
version = "0.1.0"
build = "tools/gen.rs"

[lib]
path = "lib/x.rs"

[[bin]]
name = "xcli"
path = "cli/main.rs"

[[bin]]
name = "auto"

[[example]]
name = "demo"
path = "demo.rs"

[[test]]
name = "integ"
path = "integ/run.rs"

[[bench]]
name = "speed"
path = "speed.rs"
harness = false
`,
				"crates/x/lib/x.rs", "pub fn x() {}",
				"crates/x/lib/inner.rs", "",
				"crates/x/src/bin/auto.rs", "fn main() {}",
				"crates/y/Cargo.toml", "[package]\nname = \"y\"\nversion = \"0.1.0\"\nbuild = false\n",
				"crates/y/src/main.rs", "fn main() {}",
				"crates/y/build.rs", "fn main() {}",
				"stray.rs", "fn main() {}",
			),
			want: map[string]string{
				"crates/x/lib/x.rs":        libStub,
				"crates/x/cli/main.rs":     main,
				"crates/x/src/bin/auto.rs": main,
				"crates/x/demo.rs":         main,
				"crates/x/integ/run.rs":    main,
				"crates/x/speed.rs":        main,
				"crates/x/tools/gen.rs":    buildStub,
				"crates/y/src/main.rs":     main,
				// Present and auto-discoverable; cargo ignores it under build = false.
				"crates/y/build.rs": buildStub,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustMake(t, tt.files)
			got := map[string]string{}
			for p, b := range out {
				if filepath.Base(p) != "Cargo.toml" {
					got[p] = string(b)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got files %q\nwant %q", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tt.want)))
				for p, w := range tt.want {
					if g, ok := got[p]; ok && g != w {
						t.Errorf("%s = %q, want %q", p, g, w)
					}
				}
			}
		})
	}
}

func TestExplicitPathOutsideWorkspace(t *testing.T) {
	_, err := Make(fs("a/Cargo.toml", "[package]\nname = \"a\"\nversion = \"1.0.0\"\n[lib]\npath = \"../../x.rs\"\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "a/Cargo.toml: ") {
		t.Fatalf("err = %v, want error naming a/Cargo.toml", err)
	}
}

func TestErrorsNameFile(t *testing.T) {
	for _, p := range []string{"crates/bad/Cargo.toml", "Cargo.lock"} {
		files := fs("Cargo.toml", "[workspace]\n", p, "[[package]\nname = ")
		_, err := Make(files)
		if err == nil || !strings.HasPrefix(err.Error(), p+":1:10: ") {
			t.Errorf("%s: err = %v, want error prefixed with the path, line and column", p, err)
		}
	}
}

// workspace returns a small workspace; mutate tweaks its files.
func workspace(mutate func(map[string][]byte)) map[string][]byte {
	files := fs(
		"Cargo.toml", rootManifest,
		"a/Cargo.toml", aManifest,
		"a/src/lib.rs", "pub fn a() -> u32 { 1 }\n",
		"a/src/main.rs", "fn main() { println!(\"{}\", a::a()); }\n",
		"b/Cargo.toml", bManifest,
		"b/src/lib.rs", "pub fn b() {}\n",
		"Cargo.lock", `version = 4

[[package]]
name = "a"
version = "0.4.2"
dependencies = [
 "b",
 "itoa",
]

[[package]]
name = "b"
version = "1.2.3"

[[package]]
name = "itoa"
version = "1.0.19"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "4a5f13b858c8d314ee3e8f639011f7ccefe71f97f96e50151fb991f267928e2c"
`,
	)
	if mutate != nil {
		mutate(files)
	}
	return files
}

func replaceIn(files map[string][]byte, p, old, new string) {
	if !bytes.Contains(files[p], []byte(old)) {
		panic("fixture does not contain " + old)
	}
	files[p] = bytes.ReplaceAll(files[p], []byte(old), []byte(new))
}

func TestSkeletonStability(t *testing.T) {
	ref := mustMake(t, workspace(nil))
	tests := []struct {
		name    string
		mutate  func(map[string][]byte)
		changed bool
	}{
		{"unchanged input", func(map[string][]byte) {}, false},
		{"body-only change", func(f map[string][]byte) {
			replaceIn(f, "a/src/lib.rs", "{ 1 }", "{ 2 + 40 }")
			f["a/src/extra.rs"] = []byte("pub fn new_module() {}\n")
		}, false},
		{"version bump of a package and of workspace.package", func(f map[string][]byte) {
			replaceIn(f, "a/Cargo.toml", `version = "0.4.2"`, `version = "0.5.0"`)
			replaceIn(f, "Cargo.toml", `version = "1.2.3"`, `version = "1.3.0"`)
			replaceIn(f, "a/Cargo.toml", `version = "^1.2"`, `version = "^1.3"`)
			replaceIn(f, "Cargo.lock", `version = "0.4.2"`, `version = "0.5.0"`)
			replaceIn(f, "Cargo.lock", `version = "1.2.3"`, `version = "1.3.0"`)
		}, false},
		{"docs change", func(f map[string][]byte) { f["README.md"] = []byte("new") }, false},
		{"registry dependency added", func(f map[string][]byte) {
			replaceIn(f, "a/Cargo.toml", "[build-dependencies]\n", "[build-dependencies]\ncc = \"1.0\"\n")
		}, true},
		{"registry dependency version changed", func(f map[string][]byte) {
			replaceIn(f, "a/Cargo.toml", `itoa = "1.0.10"`, `itoa = "1.0.11"`)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustMake(t, workspace(tt.mutate))
			same := maps.EqualFunc(got, ref, bytes.Equal)
			if same == tt.changed {
				t.Errorf("skeleton changed = %v, want %v", !same, tt.changed)
			}
		})
	}
}

// TestCargoCheck builds a skeleton with the real cargo: the rewritten
// manifests, stubs and lock must be accepted as is (--locked).
func TestCargoCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cargo")
	}
	cargo, err := exec.LookPath("cargo")
	if err != nil {
		t.Skip("cargo not on PATH")
	}
	src := fs(
		"Cargo.toml", `[workspace]
members = ["crates/core", "crates/app"]
resolver = "2"

[workspace.package]
version = "2.0.1"
edition = "2021"
`,
		"crates/core/Cargo.toml", `[package]
name = "smelt-core"
version = "0.1.4"
edition.workspace = true
links = "smeltcore"
`,
		"crates/core/build.rs", "fn main() { println!(\"cargo:rustc-cfg=built\"); }\n",
		"crates/core/src/lib.rs", "mod util;\npub fn answer() -> u32 { util::forty() + 2 }\n",
		"crates/core/src/util.rs", "pub fn forty() -> u32 { 40 }\n",
		"crates/app/Cargo.toml", `[package]
name = "app"
version.workspace = true
edition.workspace = true

[dependencies]
smelt-core = { path = "../core", version = "0.1" }

[[bin]]
name = "app-extra"
path = "extra/main.rs"
`,
		"crates/app/src/main.rs", "fn main() { println!(\"{}\", smelt_core::answer()); }\n",
		"crates/app/extra/main.rs", "fn main() {}\n",
		"crates/app/tests/it.rs", "#[test]\nfn works() { assert_eq!(smelt_core::answer(), 42); }\n",
	)
	orig := t.TempDir()
	writeTree(t, orig, src)
	runCargo(t, cargo, orig, "generate-lockfile", "--offline")
	lock, err := os.ReadFile(filepath.Join(orig, "Cargo.lock"))
	if err != nil {
		t.Fatal(err)
	}
	src["Cargo.lock"] = lock

	skel, err := Make(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeTree(t, dir, skel)
	// Every stub fails (none is ever linked); everything else must build.
	cmd := exec.Command(cargo, "check", "--offline", "--locked", "--workspace", "--all-targets", "--keep-going")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CARGO_TARGET_DIR="+filepath.Join(dir, "target"), "CARGO_BUILD_JOBS=1", "CARGO_TERM_COLOR=never")
	out, err := cmd.CombinedOutput()
	if err == nil || !OnlyStubsFailed(string(out), []string{"smelt-core", "app"}) {
		t.Fatalf("cargo check on the skeleton: %v, and not only the stubs failed:\n%s", err, out)
	}
	if OnlyStubsFailed(string(out), []string{"app"}) {
		t.Error("OnlyStubsFailed accepts a failure of a package it was not told is local")
	}
}

func writeTree(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runCargo(t *testing.T, cargo, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(cargo, args...)
	cmd.Dir = dir
	// Keep build output inside the test's temp dir and the build small.
	cmd.Env = append(os.Environ(), "CARGO_TARGET_DIR="+filepath.Join(dir, "target"), "CARGO_BUILD_JOBS=1", "CARGO_TERM_COLOR=never")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cargo %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
}

func TestPackages(t *testing.T) {
	files := map[string][]byte{
		"Cargo.toml": []byte(`[workspace]
members = ["app", "zero", "inherit", "fork"]
[workspace.package]
version = "1.2.0"
[patch.crates-io]
fork = { path = "fork" }
`),
		"app/Cargo.toml":     []byte("[package]\nname = \"app\"\nversion = \"0.3.0\"\n"),
		"zero/Cargo.toml":    []byte("[package]\nname = \"zero\"\nversion = \"0.0.0\"\n"),
		"inherit/Cargo.toml": []byte("[package]\nname = \"inherit\"\nversion.workspace = true\n"),
		"fork/Cargo.toml":    []byte("[package]\nname = \"fork\"\nversion = \"2.0.0\"\n"),
	}
	names, got, err := Packages(files)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"app", "fork", "inherit", "zero"}; !slices.Equal(names, want) {
		t.Errorf("Packages names = %v, want %v", names, want)
	}
	// zero keeps 0.0.0 (the mask itself) and fork its real version (patched):
	// their skeleton build scripts are the real build's units.
	want := map[string]bool{"app": true, "inherit": true}
	if !maps.Equal(got, want) {
		t.Errorf("Packages distinct = %v, want %v", got, want)
	}
}

func TestHasDevDependencies(t *testing.T) {
	const ws = "[workspace]\nmembers = [\"a\"]\n"
	tests := []struct {
		name  string
		files map[string][]byte
		want  bool
	}{
		{"none", fs("Cargo.toml", ws, "a/Cargo.toml", "[package]\nname = \"a\"\n[dependencies]\nitoa = \"1\"\n"), false},
		{"empty table", fs("Cargo.toml", ws, "a/Cargo.toml", "[package]\nname = \"a\"\n[dev-dependencies]\n"), false},
		{"member", fs("Cargo.toml", ws, "a/Cargo.toml", "[package]\nname = \"a\"\n[dev-dependencies]\nitoa = \"1\"\n"), true},
		{"legacy spelling", fs("Cargo.toml", "[package]\nname = \"r\"\n[dev_dependencies]\nitoa = \"1\"\n"), true},
		{"target table", fs("Cargo.toml", ws, "a/Cargo.toml", "[package]\nname = \"a\"\n[target.'cfg(unix)'.dev-dependencies]\nitoa = \"1\"\n"), true},
		{"root package", fs("Cargo.toml", "[package]\nname = \"r\"\n[dev-dependencies]\na = { path = \"a\" }\n"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := HasDevDependencies(tt.files)
			if err != nil || got != tt.want {
				t.Errorf("HasDevDependencies = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := HasDevDependencies(fs("a/Cargo.toml", "[package\n")); err == nil || !strings.Contains(err.Error(), "a/Cargo.toml") {
		t.Errorf("broken manifest: err = %v, want one naming a/Cargo.toml", err)
	}
}

func TestOnlyOwnFailed(t *testing.T) {
	locals := []string{"app", "greet"}
	for _, c := range []struct {
		name, stderr string
		want         bool
	}{
		{"own crate", "error[E0425]: cannot find value `x`\nerror: could not compile `app` (bin \"app\") due to 1 previous error\n", true},
		{"own build script ran and failed", "error: failed to run custom build command for `greet v0.1.0 (/w/greet)`\n", true},
		{"a dependency", "error: could not compile `itoa` (lib) due to 1 previous error\nerror: could not compile `app` (bin \"app\")\n", false},
		{"a dependency's build script", "error: failed to run custom build command for `anyhow v1.0.86`\n", false},
		{"nothing named", "error: failed to load manifest for workspace member `/w/app`\n", false},
	} {
		if got := OnlyOwnFailed(c.stderr, locals); got != c.want {
			t.Errorf("%s: OnlyOwnFailed = %v, want %v", c.name, got, c.want)
		}
	}
}
