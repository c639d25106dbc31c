package run

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"smelt/internal/cargo"
	"smelt/internal/config"
	"smelt/internal/plan"
)

func TestWithMessages(t *testing.T) {
	for _, tc := range []struct {
		kind string
		in   []string
		want []string // nil: unchanged
	}{
		{"deps", []string{"build", "--tests", "--keep-going"}, []string{"build", "--message-format=json-render-diagnostics", "--tests", "--keep-going"}},
		{"clippy", []string{"clippy", "--workspace", "--", "--deny", "warnings"}, []string{"clippy", "--message-format=json-render-diagnostics", "--workspace", "--", "--deny", "warnings"}},
		{"test", []string{"test", "--", "--message-format=x"}, []string{"test", "--message-format=json-render-diagnostics", "--", "--message-format=x"}},
		{"package", []string{"build", "--message-format=json-render-diagnostics"}, nil},
		{"clippy", []string{"clippy", "--message-format=short"}, nil},
		{"fmt", []string{"fmt", "--all", "--check"}, nil},
		{"nextest", []string{"nextest", "run"}, nil},
		{"command", []string{"build"}, nil}, // a user's command is left as written
	} {
		c := cargo.Command{Program: "cargo", Args: tc.in}
		got := withMessages(tc.kind, c)
		want := tc.want
		if want == nil {
			want = tc.in
		}
		if !slices.Equal(got.Args, want) || got.JSON != (tc.want != nil) {
			t.Errorf("%s %q: got %q (JSON %v), want %q", tc.kind, tc.in, got.Args, got.JSON, want)
		}
	}
}

// observed records what an observer hears.
type observed struct {
	progress []Progress
	output   []string
}

func (o *observed) Started(name, kind, reason string) {}
func (o *observed) Finished(r *StepReport)            {}
func (o *observed) Progress(name string, p Progress)  { o.progress = append(o.progress, p) }
func (o *observed) Output(name, line string)          { o.output = append(o.output, name+": "+line) }
func (o *observed) last() Progress                    { return o.progress[len(o.progress)-1] }

// A command's output read as it comes: cargo's JSON messages counted as
// units (and not logged), cargo's status lines naming the crate, tests
// passed, every other line logged and passed on, a last line without a
// newline too, however the writes split the lines.
func TestStreams(t *testing.T) {
	obs := &observed{}
	e := &engine{opt: Options{Observer: obs}}
	logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	n := &plan.Node{Step: &config.Step{Name: "test", Kind: "test"}}
	sr := &stepRun{e: e, n: n, logf: logf, bins: map[string]string{}, binPaths: map[string]string{}, targetDir: "/w/target", view: view{target: "/w/target"}}
	sr.prog = &tracker{e: e, name: "test"}
	stdout, stderr, flush := sr.streams(true)
	stderr.Write([]byte("   Compiling itoa v1.0.19\n   Compi"))
	stderr.Write([]byte("ling greet v0.3.0 (/w/greet)\n"))
	stdout.Write([]byte(`{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#itoa@1.0.19","target":{"kind":["lib"],"name":"itoa"},"executable":null}` + "\n"))
	stdout.Write([]byte(`{"reason":"compiler-artifact","package_id":"path+file:///w/app#0.3.0","target":{"kind":["bin"],"name":"app"},"executable":"/w/target/release/app","profile":{"test":false}}` + "\n"))
	stdout.Write([]byte(`{"reason":"build-finished","success":true}` + "\n"))
	stdout.Write([]byte("running 2 tests\ntest tests::a ... ok\ntest tests::b ... FAILED\n{not json}\n"))
	stderr.Write([]byte("        PASS [   0.004s] greet tests::c"))
	flush()
	p := obs.last()
	if p.Units != 2 || p.Crate != "greet" || p.Tests != 2 {
		t.Errorf("progress %+v, want 2 units, crate greet, 2 tests passed", p)
	}
	if sr.binPaths["app"] != "release/app" || sr.bins["app"] != "app" {
		t.Errorf("binaries %v %v", sr.bins, sr.binPaths)
	}
	data, _ := os.ReadFile(logf.Name())
	log := string(data)
	for _, want := range []string{"   Compiling greet v0.3.0 (/w/greet)\n", "test tests::b ... FAILED\n", "{not json}\n", "PASS [   0.004s] greet tests::c\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "reason") {
		t.Errorf("the log holds JSON messages:\n%s", log)
	}
	if len(obs.output) != 7 || obs.output[0] != "test:    Compiling itoa v1.0.19" {
		t.Errorf("the observer heard %q", obs.output)
	}
}
