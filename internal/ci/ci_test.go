package ci

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v4"

	"smelt/internal/config"
	"smelt/internal/kind"
	"smelt/internal/plan"
)

// matrixPartitions is a [matrix] whose rows each split a nextest step.
const matrixPartitions = `
[matrix]
toolchain = ["stable", "nightly"]

[step.deps]
kind = "deps"

[step.clippy]
kind = "clippy"
artifacts = "deps"

[step.tests]
kind = "nextest"
artifacts = "deps"
partitions = 3

[step.fmt]
kind = "fmt"
`

type project struct {
	name string
	cfg  *config.Config
	g    *plan.Graph
	tc   *Toolchain
	o    Options
}

func projects(t *testing.T) []project {
	t.Helper()
	var out []project
	add := func(name string, cfg *config.Config, tc *Toolchain, o Options) {
		g, err := plan.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		o.Toolchain = tc
		out = append(out, project{name, cfg, g, tc, o})
	}
	for _, fx := range []string{"seed", "checks", "matrix"} {
		cfg, err := config.Load(filepath.Join("..", "..", "testdata", fx, "smelt.toml"))
		if err != nil {
			t.Fatal(err)
		}
		add(fx, cfg, nil, Options{})
	}
	cfg, err := config.Parse("smelt.toml", []byte(matrixPartitions))
	if err != nil {
		t.Fatal(err)
	}
	add("matrix+partitions", cfg, &Toolchain{File: "rust-toolchain.toml", Channel: "1.85.0", Components: []string{"rust-src"}, Targets: []string{"wasm32-unknown-unknown"}},
		Options{SmeltGit: "https://example.com/smelt.git", SmeltRef: "v1.2.3"})
	add("default pipeline", config.Default(), &Toolchain{File: "rust-toolchain", Channel: "nightly-2025-01-01"}, Options{})
	return out
}

func actionlintErrors(t *testing.T, workflow string) []string {
	t.Helper()
	opts := &actionlint.LinterOptions{}
	if p, err := exec.LookPath("shellcheck"); err == nil {
		opts.Shellcheck = p // the run: scripts too, where shellcheck is installed
	}
	l, err := actionlint.NewLinter(io.Discard, opts)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.Lint("<stdin>", []byte(workflow), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func gitlabSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "gitlab-ci.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("gitlab-ci.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("gitlab-ci.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// asJSON reads YAML into the values a JSON decoder gives, which is what
// the schema validator takes.
func asJSON(t *testing.T, text string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("the workflow is not YAML: %v\n%s", err, text)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// shellWords runs a job's command in sh with smelt replaced by a function
// printing its arguments, so the test sees the words sh passes to smelt.
func shellWords(t *testing.T, cmd string) []string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `smelt() { printf '%s\n' "$@"; }; `+cmd).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", cmd, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// wantNeeds is, for each step the checks need, the step it inherits from.
func wantNeeds(t *testing.T, p project) map[string]string {
	t.Helper()
	jobs, err := Jobs(p.g, p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, j := range jobs {
		want[j.Step] = ""
		if n := p.g.Nodes[j.Step]; n.Parent != nil {
			want[j.Step] = n.Parent.Name()
		}
	}
	return want
}

// checkGraph asserts that the jobs' needs follow the steps' artifacts, that
// partitions of one step run side by side, and that each job checks its own
// step. steps maps a job id to its step, needs to the jobs it needs, run to
// its last command.
func checkGraph(t *testing.T, p project, steps map[string]string, needs map[string][]string, run map[string]string) {
	t.Helper()
	want := wantNeeds(t, p)
	if len(steps) != len(want) {
		t.Errorf("%d step jobs, want one per step the checks need: %v", len(steps), want)
	}
	for id, step := range steps {
		parent, ok := want[step]
		if !ok {
			t.Errorf("job %s checks %s, which no check needs", id, step)
			continue
		}
		var got []string
		for _, n := range needs[id] {
			if n == "smelt" {
				continue
			}
			got = append(got, steps[n])
		}
		var w []string
		if parent != "" {
			w = []string{parent}
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("job %s (%s) needs the jobs of %v, want %v", id, step, got, w)
		}
		if !slices.Contains(needs[id], "smelt") {
			t.Errorf("job %s does not need the job that builds smelt", id)
		}
		if words := shellWords(t, run[id]); !reflect.DeepEqual(words, []string{"check", step}) {
			t.Errorf("job %s runs smelt %q, want smelt check %s", id, words, step)
		}
	}
	// Partitions: each needs only what the step inherits, never another
	// partition, so they run at once.
	for id, step := range steps {
		base, _, ok := strings.Cut(step, "#")
		if !ok {
			continue
		}
		for _, n := range needs[id] {
			if strings.HasPrefix(steps[n], base+"#") {
				t.Errorf("partition %s waits for partition %s", step, steps[n])
			}
		}
	}
}

func TestGitHub(t *testing.T) {
	for _, p := range projects(t) {
		t.Run(p.name, func(t *testing.T) {
			jobs, err := Jobs(p.g, p.cfg)
			if err != nil {
				t.Fatal(err)
			}
			text := GitHub(jobs, p.o)
			if errs := actionlintErrors(t, text); len(errs) > 0 {
				t.Fatalf("actionlint:\n%s\n\n%s", strings.Join(errs, "\n"), text)
			}
			var wf struct {
				Jobs map[string]struct {
					Name  string   `yaml:"name"`
					Needs []string `yaml:"needs"`
					Steps []struct {
						Uses string            `yaml:"uses"`
						Run  string            `yaml:"run"`
						With map[string]string `yaml:"with"`
					} `yaml:"steps"`
				} `yaml:"jobs"`
			}
			if err := yaml.Unmarshal([]byte(text), &wf); err != nil {
				t.Fatal(err)
			}
			steps, needs, run := map[string]string{}, map[string][]string{}, map[string]string{}
			for id, j := range wf.Jobs {
				if id == "smelt" {
					continue
				}
				steps[id], needs[id] = j.Name, j.Needs
				run[id] = j.Steps[len(j.Steps)-1].Run
				all := ""
				for _, s := range j.Steps {
					all += s.Run + "\n" + s.With["tool"] + "\n"
				}
				checkTools(t, p, j.Name, all)
			}
			checkGraph(t, p, steps, needs, run)
			checkPins(t, p, text)
		})
	}
}

func TestGitLab(t *testing.T) {
	schema := gitlabSchema(t)
	for _, p := range projects(t) {
		t.Run(p.name, func(t *testing.T) {
			jobs, err := Jobs(p.g, p.cfg)
			if err != nil {
				t.Fatal(err)
			}
			text := GitLab(jobs, p.o)
			if err := schema.Validate(asJSON(t, text)); err != nil {
				t.Fatalf("GitLab's schema: %v\n\n%s", err, text)
			}
			var top map[string]yaml.Node
			if err := yaml.Unmarshal([]byte(text), &top); err != nil {
				t.Fatal(err)
			}
			type job struct {
				Extends string `yaml:"extends"`
				Needs   []struct {
					Job       string `yaml:"job"`
					Artifacts bool   `yaml:"artifacts"`
				} `yaml:"needs"`
				Script []string `yaml:"script"`
			}
			doc := map[string]job{}
			for k, n := range top {
				var j job
				if n.Kind == yaml.MappingNode {
					if err := n.Decode(&j); err != nil {
						t.Fatalf("%s: %v", k, err)
					}
				}
				doc[k] = j
			}
			steps, needs, run := map[string]string{}, map[string][]string{}, map[string]string{}
			for id, j := range doc {
				if j.Extends != ".smelt-step" {
					continue
				}
				words := shellWords(t, j.Script[len(j.Script)-1])
				steps[id] = words[len(words)-1]
				run[id] = j.Script[len(j.Script)-1]
				for _, n := range j.Needs {
					needs[id] = append(needs[id], n.Job)
					if n.Artifacts != (n.Job == "smelt") {
						t.Errorf("job %s takes the artifacts of %s: %v (only smelt's binary is wanted)", id, n.Job, n.Artifacts)
					}
				}
				checkTools(t, p, steps[id], strings.Join(j.Script, "\n"))
			}
			checkGraph(t, p, steps, needs, run)
			checkPins(t, p, text)
		})
	}
}

// checkTools asserts that a job installs what its step and the steps it
// inherits from run.
func checkTools(t *testing.T, p project, step, script string) {
	t.Helper()
	for n := p.g.Nodes[step]; n != nil; n = n.Parent {
		k := kind.Get(n.Step.Kind)
		wants := []string{k.Component, n.Step.Toolchain}
		for _, tool := range k.Tools {
			wants = append(wants, tool.Name)
		}
		for _, w := range wants {
			if w != "" && !strings.Contains(script, w) {
				t.Errorf("job of %s does not install %s, which %s needs", step, w, n.Name())
			}
		}
	}
	if p.tc != nil {
		wants := append(slices.Clone(p.tc.Components), p.tc.Targets...)
		for n := p.g.Nodes[step]; n != nil; n = n.Parent {
			if n.Step.Toolchain == "" { // the project's own toolchain
				wants = append(wants, p.tc.Channel)
			}
		}
		for _, w := range wants {
			if !strings.Contains(script, w) {
				t.Errorf("job of %s does not install %s from %s", step, w, p.tc.File)
			}
		}
	}
}

// checkPins asserts that the workflow builds smelt from the repository and
// ref given, and shares the remote cache as the remote flags read it.
func checkPins(t *testing.T, p project, text string) {
	t.Helper()
	for _, w := range []string{p.o.SmeltGit, p.o.SmeltRef, "SMELT_PUSH", "SMELT_SIGNING_KEY"} {
		if w != "" && !strings.Contains(text, w) {
			t.Errorf("the workflow does not mention %s", w)
		}
	}
}

// TestValidatorsCatchErrors shows that the validators the tests above use
// reject a broken workflow, so their passing means something.
func TestValidatorsCatchErrors(t *testing.T) {
	p := projects(t)[0]
	jobs, err := Jobs(p.g, p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	gh := GitHub(jobs, p.o)
	for _, broken := range []string{
		strings.Replace(gh, "needs: [smelt, deps]", "needs: [smelt, depz]", 1),
		strings.Replace(gh, "runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1),
		strings.Replace(gh, "if: env.SMELT_PUSH == '1'", "if: ${{ env.SMELT_PUSH == '1' }} && true", 1),
	} {
		if broken == gh {
			t.Fatal("the replacement did not apply")
		}
		if errs := actionlintErrors(t, broken); len(errs) == 0 {
			t.Errorf("actionlint passed a broken workflow:\n%s", broken)
		}
	}
	gl := GitLab(jobs, p.o)
	schema := gitlabSchema(t)
	for i, broken := range []string{
		strings.Replace(gl, "  extends: .smelt-step\n", "  extends: .smelt-step\n  when: sometimes\n", 1),
		strings.Replace(gl, "    - job: smelt\n      artifacts: true\n", "    - job: smelt\n      artifacts: yes please\n", 1),
		gl + "\nclippy2:\n  scripts: [true]\n",
	} {
		if broken == gl {
			t.Fatal("the replacement did not apply")
		}
		if err := schema.Validate(asJSON(t, broken)); err == nil {
			t.Errorf("the schema passed broken .gitlab-ci.yml %d:\n%s", i, broken)
		}
	}
}

func TestReadToolchain(t *testing.T) {
	for _, tc := range []struct {
		file, text string
		want       *Toolchain
	}{
		{"rust-toolchain.toml", "[toolchain]\nchannel = \"1.85.0\"\ncomponents = [\"clippy\"]\ntargets = [\"wasm32-unknown-unknown\"]\n",
			&Toolchain{File: "rust-toolchain.toml", Channel: "1.85.0", Components: []string{"clippy"}, Targets: []string{"wasm32-unknown-unknown"}}},
		{"rust-toolchain", "nightly-2025-01-01\n", &Toolchain{File: "rust-toolchain", Channel: "nightly-2025-01-01"}},
		{"rust-toolchain", "[toolchain]\nchannel = \"beta\"\n", &Toolchain{File: "rust-toolchain", Channel: "beta"}},
		{"", "", nil},
	} {
		dir := t.TempDir()
		if tc.file != "" {
			if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := ReadToolchain(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %q: got %+v, want %+v", tc.file, tc.text, got, tc.want)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rust-toolchain.toml"), []byte("[toolchain\n"), 0o644)
	if _, err := ReadToolchain(dir); err == nil || !strings.Contains(err.Error(), "rust-toolchain.toml") {
		t.Errorf("a broken rust-toolchain.toml gave %v, want an error naming it", err)
	}
}

// TestREADMEExample lints the hand-written workflow the README shows.
func TestREADMEExample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "### CI: a job per step")
	if !ok {
		t.Fatal("README.md has no section \"CI: a job per step\"")
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatal("the README's CI section has no yaml block")
	}
	if errs := actionlintErrors(t, block); len(errs) > 0 {
		t.Errorf("actionlint on the README's example:\n%s", strings.Join(errs, "\n"))
	}
	for _, step := range []string{"deps", "clippy", "coverage", "crate"} {
		if !strings.Contains(block, "run: smelt check "+step+"}") {
			t.Errorf("the README's example has no job checking %s", step)
		}
	}
}
