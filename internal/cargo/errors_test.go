package cargo

import (
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	tests := []struct {
		name   string
		stderr string
		want   []string // substrings of the explanation; nil = ""
	}{
		{
			name: "lock file needs update (older cargo)",
			stderr: "    Updating crates.io index\n" +
				"error: the lock file /x/Cargo.lock needs to be updated but --locked was passed to prevent this\n" +
				"If you want to try to generate the lock file without accessing the network, remove the --locked flag and use --offline instead.\n",
			want: []string{"Cargo.lock is out of date with Cargo.toml", "cargo update --workspace", "commit Cargo.lock"},
		},
		{
			name:   "lock file needs update (newer cargo)",
			stderr: "error: cannot update the lock file /x/Cargo.lock because --locked was passed to prevent this\nhelp: to generate the lock file without accessing the network, remove the --locked flag and use --offline instead.\n",
			want:   []string{"Cargo.lock is out of date with Cargo.toml"},
		},
		{
			name: "checksum changed between lock files",
			stderr: "error: checksum for `itoa v1.0.19` changed between lock files\n\n" +
				"this could be indicative of a few possible errors:\n\n" +
				"    * the lock file is corrupt\n" +
				"    * a replacement source in use (e.g., a mirror) returned a different checksum\n" +
				"    * the source itself may be corrupt in one way or another\n\n" +
				"unable to verify that `itoa v1.0.19` is the same as when the lockfile was generated\n",
			want: []string{"Cargo.lock", "crate itoa v1.0.19", "cargo update -p itoa`"},
		},
		{
			name:   "failed to verify checksum",
			stderr: "error: failed to verify the checksum of `serde v1.0.200`\n",
			want:   []string{"downloaded crate serde v1.0.200", "cargo update -p serde`"},
		},
		{
			name: "lock file does not parse",
			stderr: "error: failed to parse lock file at: /x/Cargo.lock\n\n" +
				"Caused by:\n  TOML parse error at line 3, column 1\n",
			want: []string{"/x/Cargo.lock cannot be parsed (TOML parse error at line 3, column 1)", "cargo generate-lockfile"},
		},
		{
			name: "no matching package",
			stderr: "error: no matching package named `serde_jsn` found\n" +
				"location searched: registry `crates-io`\n" +
				"required by package `app v0.1.0 (/x/app)`\n",
			want: []string{"asks for serde_jsn, which Cargo.lock does not list", "cargo update --workspace"},
		},
		{
			name: "compile error has no better words",
			stderr: "   Compiling app v0.1.0 (/x)\n" +
				"error[E0425]: cannot find value `y` in this scope\n --> src/main.rs:2:5\n",
			want: nil,
		},
		{name: "empty", stderr: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Explain(tt.stderr)
			if tt.want == nil {
				if got != "" {
					t.Errorf("Explain = %q, want \"\"", got)
				}
				return
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Explain = %q, want it to contain %q", got, w)
				}
			}
			if strings.Contains(got, "\n") {
				t.Errorf("Explain spans lines: %q", got)
			}
		})
	}
}

// Real cargo prints the TOML error with a snippet: the location is on the
// line after "Caused by:", the last line is only the parser's expectation.
func TestExplainParseLockKeepsLocation(t *testing.T) {
	stderr := "error: failed to parse lock file at: /x/Cargo.lock\n\n" +
		"Caused by:\n" +
		"  TOML parse error at line 3, column 1\n" +
		"    |\n" +
		"  3 | garbage\n" +
		"    | ^\n" +
		"  expected `.`, `=`\n"
	got := Explain(stderr)
	if !strings.Contains(got, "line 3, column 1") {
		t.Errorf("Explain = %q, want the line and column of the error", got)
	}
}

func TestFirstError(t *testing.T) {
	tests := []struct {
		name, stderr, want string
	}{
		{"single", "error: could not find `Cargo.toml` in `/x` or any parent directory\n", "could not find `Cargo.toml` in `/x` or any parent directory"},
		{
			"caused by chain",
			"    Updating crates.io index\n" +
				"error: failed to get `serde` as a dependency of package `app v0.1.0 (/x)`\n\n" +
				"Caused by:\n  failed to load source for dependency `serde`\n\n" +
				"Caused by:\n  Unable to update registry `crates-io`\n\n" +
				"Caused by:\n  attempting to make an HTTP request, but --offline was specified\n",
			"failed to get `serde` as a dependency of package `app v0.1.0 (/x)`: failed to load source for dependency `serde`: Unable to update registry `crates-io`: attempting to make an HTTP request, but --offline was specified",
		},
		{"warnings before", "warning: unused manifest key: foo\nerror: no targets specified in the manifest\n", "no targets specified in the manifest"},
		{"only the first error", "error: first\nerror: second\n", "first"},
		{"no error line: last non-empty line", "some output\nlast words\n\n\n", "last words"},
		{"empty", "", ""},
		{"blank", "\n  \n", ""},
		{"caused by at the end", "error: top\n\nCaused by:", "top"},
		{"caused by before any error is ignored", "Caused by:\n  x\nerror: top\n", "top"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FirstError(tt.stderr); got != tt.want {
				t.Errorf("FirstError =\n %q\nwant\n %q", got, tt.want)
			}
		})
	}
}

// A rustc diagnostic "error[E0425]: ..." loses its "error" word but keeps
// the code with the colon: "[E0425]: cannot find ...".
func TestFirstErrorRustcCode(t *testing.T) {
	got := FirstError("error[E0425]: cannot find value `y` in this scope\n --> src/main.rs:2:5\n")
	if !strings.Contains(got, "cannot find value `y` in this scope") {
		t.Errorf("FirstError = %q", got)
	}
	if strings.HasPrefix(got, "[E0425]: ") {
		t.Logf("surprising: FirstError of a rustc error gives %q", got)
	}
}

func TestCrateName(t *testing.T) {
	for in, want := range map[string]string{"itoa v1.0.19": "itoa", "serde": "serde", "": ""} {
		if got := crateName(in); got != want {
			t.Errorf("crateName(%q) = %q, want %q", in, got, want)
		}
	}
}

// Headline is the one line a failed step shows: cargo's own error, with
// where it points, its causes, and the error of a tool cargo quotes. The
// inputs are cargo 1.95's stderr for each case, as logged.
func TestHeadline(t *testing.T) {
	tests := []struct{ name, stderr, want string }{
		{"bad version string",
			"error: unexpected end of input while parsing minor version number\n --> Cargo.toml:3:11\n  |\n3 | version = \"0.1\"\n  |           ^^^^^\n",
			"unexpected end of input while parsing minor version number at Cargo.toml:3:11"},
		{"broken .cargo/config.toml",
			"error: could not load Cargo configuration\n\nCaused by:\n  could not parse TOML configuration in `/p/.cargo/config.toml`\n\nCaused by:\n  TOML parse error at line 1, column 11\n    |\n  1 | build = [\n    |           ^\n  unclosed array, expected `]`\n",
			"could not load Cargo configuration: could not parse TOML configuration in `/p/.cargo/config.toml`: TOML parse error at line 1, column 11 (unclosed array, expected `]`)"},
		{"unknown target",
			"error: failed to run `rustc` to learn about target-specific information\n\nCaused by:\n  process didn't exit successfully: `rustc - --crate-name ___ --print=file-names --target nosuch` (exit status: 1)\n  --- stderr\n  error: error loading target specification: could not find specification for target \"nosuch\"\n    |\n    = help: run `rustc --print target-list` for a list of built-in targets\n",
			"failed to run `rustc` to learn about target-specific information: error loading target specification: could not find specification for target \"nosuch\""},
		{"rust-version",
			"error: rustc 1.95.0 is not supported by the following packages:\n  p@0.1.0 requires rustc 1.999\n\n",
			"rustc 1.95.0 is not supported by the following packages: p@0.1.0 requires rustc 1.999"},
		{"rustc error with code, the next error left out",
			"   Compiling p v0.1.0 (/p)\nerror[E0425]: cannot find value `y` in this scope\n --> src/main.rs:2:5\n  |\n2 |     y\n  |     ^ not found in this scope\n\nerror: could not compile `p` (bin \"p\") due to 1 previous error\n",
			"cannot find value `y` in this scope (E0425) at src/main.rs:2:5"},
		{"warnings first", "warning: unused manifest key: foo\nerror: no targets specified in the manifest\n", "no targets specified in the manifest"},
		{"no error line", "some output\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Headline(tt.stderr); got != tt.want {
				t.Errorf("Headline =\n %q\nwant\n %q", got, tt.want)
			}
		})
	}
}

func TestExplainUnmatchedPin(t *testing.T) {
	got := Explain("error: failed to select a version for the requirement `itoa = \"=99\"`\ncandidate versions found which didn't match: 1.0.19\nlocation searched: directory source `/s/vendor/pool`\n")
	want := "no version of itoa matches `itoa = \"=99\"` (there is 1.0.19); change the requirement in Cargo.toml, or run `cargo update -p itoa` and commit Cargo.lock"
	if got != want {
		t.Errorf("Explain =\n %q\nwant\n %q", got, want)
	}
}
