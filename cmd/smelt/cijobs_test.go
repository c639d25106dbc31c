package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"smelt/internal/testsrv"
)

// The GitHub workflow as far as this test reads it.
type ghWorkflow struct {
	Env  map[string]string `yaml:"env"`
	Jobs map[string]ghJob  `yaml:"jobs"`
}

type ghJob struct {
	Name  string            `yaml:"name"`
	Needs []string          `yaml:"needs"`
	Env   map[string]string `yaml:"env"`
	Steps []ghStep          `yaml:"steps"`
}

type ghStep struct {
	Name string            `yaml:"name"`
	Uses string            `yaml:"uses"`
	If   string            `yaml:"if"`
	Run  string            `yaml:"run"`
	Env  map[string]string `yaml:"env"`
	With map[string]any    `yaml:"with"`
}

// matrixPartitionsTOML runs on the checks fixture: two toolchains, each
// row's tests split in two nextest partitions, and a package step.
const matrixPartitionsTOML = `[matrix]
toolchain = ["stable", "nightly"]

[step.deps]
kind = "deps"

[step.tests]
kind = "nextest"
artifacts = "deps"
partitions = 2

[step.crate]
kind = "package"
artifacts = "deps"
`

// TestCIJobs runs the jobs of the workflow `smelt ci github` writes as
// GitHub's runners would, against one S3 remote (versitygw): jobs in the
// order of their needs (those whose needs have passed side by side), each
// on its own copy of the project with its own empty store, its steps'
// expressions evaluated, its run: scripts run by bash with GITHUB_ENV and
// GITHUB_PATH, and its check the exact `smelt check STEP` of the file. As
// a push to the default branch, each job builds its own step, pulls every
// step it inherits and pushes; then, as a pull request, every job of the
// same workflow pulls everything and builds nothing.
func TestCIJobs(t *testing.T) {
	needCargo(t)
	type tcase struct {
		name, fixture, config string
		bin, binOut           string // the package's binary and what it prints ("": not run)
		needs                 []string
	}
	// The seed's chain (tarpaulin) and the sequential fixture's (the same
	// shape, tests instead of tarpaulin), and a matrix whose rows split
	// their tests in nextest partitions.
	cases := []tcase{
		{name: "seed", fixture: "seed", bin: "seed", binOut: "double: 42", needs: []string{"cargo-tarpaulin"}},
		{name: "sequential", fixture: "sequential", bin: "seq", binOut: "double: 42"},
		{name: "matrix+partitions", fixture: "checks", config: matrixPartitionsTOML, needs: []string{"cargo-nextest"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, tool := range c.needs {
				if _, err := exec.LookPath(tool); err != nil {
					testsrv.Missing(t, tool, "cargo install "+tool)
				}
			}
			ciJobs(t, c.fixture, c.config, c.bin, c.binOut)
		})
	}
}

func ciJobs(t *testing.T, fixtureName, config, bin, binOut string) {
	start := time.Now()
	testsrv.S3(t)
	testsrv.MakeBucket(t, "team")
	readOnly := testsrv.S3ReadOnly(t, "team")
	endpoint := os.Getenv("AWS_ENDPOINT_URL_S3")
	keyFile, pub := teamKey(t, "ci-1")
	key := strings.TrimSpace(readAbs(t, keyFile)) // as pasted into the secret

	src := fixture(t, fixtureName)
	if config != "" {
		if err := os.WriteFile(filepath.Join(src, "smelt.toml"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, text, errOut := runBin(t, os.Environ(), "ci", "github", "-o", "-", "-C", src, "--store", filepath.Join(t.TempDir(), "store"))
	if code != 0 {
		t.Fatalf("smelt ci github: exit %d: %s", code, errOut)
	}
	var wf ghWorkflow
	if err := yaml.Unmarshal([]byte(text), &wf); err != nil {
		t.Fatalf("the workflow is not YAML: %v\n%s", err, text)
	}
	levels, builder := jobLevels(t, wf)

	// The secrets and variables of the repository's settings, as the
	// workflow's header asks for them; AWS_REGION is left unset, as for
	// an S3-compatible server.
	settings := map[string]string{
		"vars.SMELT_REMOTE":             "s3://team/smelt",
		"vars.SMELT_TRUST":              pub,
		"secrets.SMELT_SIGNING_KEY":     key,
		"vars.AWS_ENDPOINT_URL_S3":      endpoint,
		"secrets.AWS_ACCESS_KEY_ID":     "smeltkey",
		"secrets.AWS_SECRET_ACCESS_KEY": "smeltsecret",
	}
	push := map[string]string{"github.event_name": "push", "github.ref_name": "main", "github.event.repository.default_branch": "main"}
	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	runAll := func(phase string, ctx map[string]string) map[string]ghResult {
		t.Helper()
		results := map[string]ghResult{}
		for _, level := range levels {
			var wg sync.WaitGroup
			var mu sync.Mutex
			for _, id := range level {
				r := ghRunner{wf: wf, id: id, builder: builder, ctx: ctx, dir: copyTree(t, src), tmp: t.TempDir()}
				wg.Add(1)
				go func() {
					defer wg.Done()
					res := r.run()
					mu.Lock()
					results[id] = res
					mu.Unlock()
				}()
			}
			wg.Wait()
			for _, id := range level {
				r := results[id]
				if r.err != nil {
					t.Fatalf("%s: job %s: %v", phase, id, r.err)
				}
				t.Logf("%s: job %s (smelt check %s) took %s", phase, id, r.step, r.took.Round(time.Millisecond))
			}
		}
		return results
	}

	// A push to the default branch: each job builds its own step, pulls
	// what it inherits, signs and pushes.
	results := runAll("push", merge(settings, push))
	for _, id := range slices.Concat(levels...) {
		r := results[id]
		o := r.o
		noSandbox(t, o)
		if o.code != 0 {
			t.Errorf("push: job %s: smelt check exited %d\n%s", id, o.code, o.output)
			continue
		}
		if r.env["SMELT_PUSH"] != "1" || r.env["SMELT_SIGNING_KEY"] == "" {
			t.Errorf("push: job %s ran with SMELT_PUSH=%q SMELT_SIGNING_KEY=%q, want 1 and the key's file", id, r.env["SMELT_PUSH"], r.env["SMELT_SIGNING_KEY"])
		}
		want := map[string]string{r.step: "built"}
		for _, a := range ancestors(wf, id, builder) {
			want[a] = "pulled"
		}
		if !maps.Equal(o.status, want) {
			t.Errorf("push: job %s: steps %v, want %v (its own built, what it inherits pulled)\n%s", id, o.status, want, o.output)
		}
		for _, ev := range o.events {
			if ev["event"] == "start" && ev["step"] != r.step {
				t.Errorf("push: job %s started step %v, which it inherits", id, ev["step"])
			}
		}
		if w := warnings(o); len(w) > 0 {
			t.Errorf("push: job %s warned: %q", id, w)
		}
		if ev := remoteEvent(t, o); ev["pushed"] == nil || ev["pushed"].(float64) < 1 {
			t.Errorf("push: job %s pushed nothing: %v", id, ev)
		}
	}
	if t.Failed() {
		return
	}

	// A pull request: the same workflow, read-only (SMELT_PUSH empty, no
	// signing key; credentials that may only read the bucket), fresh
	// stores: every job pulls its step and all it inherits.
	pr := merge(settings, map[string]string{
		"github.event_name": "pull_request", "github.ref_name": "7/merge", "github.event.repository.default_branch": "main",
		"secrets.AWS_ACCESS_KEY_ID": strings.TrimPrefix(readOnly[0], "AWS_ACCESS_KEY_ID="), "secrets.AWS_SECRET_ACCESS_KEY": strings.TrimPrefix(readOnly[1], "AWS_SECRET_ACCESS_KEY="),
	})
	results = runAll("pull request", pr)
	for _, id := range slices.Concat(levels...) {
		r := results[id]
		o := r.o
		if o.code != 0 {
			t.Errorf("pull request: job %s: smelt check exited %d\n%s", id, o.code, o.output)
			continue
		}
		if r.env["SMELT_PUSH"] != "" || r.env["SMELT_SIGNING_KEY"] != "" {
			t.Errorf("pull request: job %s ran with SMELT_PUSH=%q SMELT_SIGNING_KEY=%q, want neither", id, r.env["SMELT_PUSH"], r.env["SMELT_SIGNING_KEY"])
		}
		want := map[string]string{r.step: "pulled"}
		for _, a := range ancestors(wf, id, builder) {
			want[a] = "pulled"
		}
		if !maps.Equal(o.status, want) {
			t.Errorf("pull request: job %s: steps %v, want all pulled %v\n%s", id, o.status, want, o.output)
		}
		for _, ev := range o.events {
			if ev["event"] == "start" {
				t.Errorf("pull request: job %s started step %v", id, ev["step"])
			}
		}
		if w := warnings(o); len(w) > 0 {
			t.Errorf("pull request: job %s warned: %q", id, w)
		}
		if ev := remoteEvent(t, o); ev["pushed"] != nil || ev["uploaded"].(float64) != 0 {
			t.Errorf("pull request: job %s wrote to the remote: %v", id, ev)
		}
	}

	// What the jobs pushed is whole: a developer's empty store builds the
	// package from the remote alone, and its binary runs.
	if bin != "" {
		p := &project{t: t, dir: copyTree(t, src), store: filepath.Join(t.TempDir(), "store"),
			env: append(os.Environ(), "SMELT_REMOTE=s3://team/smelt", "SMELT_TRUST="+pub)}
		o := p.mustSmelt("build")
		for step, s := range o.status {
			if s != "pulled" {
				t.Errorf("smelt build after CI: step %s %s, want pulled\n%s", step, s, o.output)
			}
		}
		if got := p.runResult(bin); got != binOut {
			t.Errorf("result/bin/%s printed %q, want %q", bin, got, binOut)
		}
	}
	t.Logf("%d jobs, run twice, in %s", len(slices.Concat(levels...)), time.Since(start).Round(time.Millisecond))
}

// copyTree copies a directory (the project, as a runner's checkout).
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

// jobLevels orders the jobs by needs: level 0 needs only the job that
// builds smelt, level n needs a job of level n-1. It returns that
// builder's id too: the job that uploads the artifact "smelt".
func jobLevels(t *testing.T, wf ghWorkflow) ([][]string, string) {
	t.Helper()
	builder := ""
	for id, j := range wf.Jobs {
		for _, s := range j.Steps {
			if strings.HasPrefix(s.Uses, "actions/upload-artifact@") && s.With["name"] == "smelt" {
				builder = id
			}
		}
	}
	if builder == "" {
		t.Fatalf("no job uploads smelt: %v", wf.Jobs)
	}
	level := map[string]int{}
	var visit func(id string, seen []string) int
	visit = func(id string, seen []string) int {
		if l, ok := level[id]; ok {
			return l
		}
		if slices.Contains(seen, id) {
			t.Fatalf("the jobs' needs form a cycle: %v", append(seen, id))
		}
		j, ok := wf.Jobs[id]
		if !ok {
			t.Fatalf("job %s needs job %s, which the workflow lacks", seen[len(seen)-1], id)
		}
		if !slices.Contains(j.Needs, builder) {
			t.Fatalf("job %s does not need %s, which builds smelt", id, builder)
		}
		l := 0
		for _, n := range j.Needs {
			if n != builder {
				l = max(l, visit(n, append(seen, id))+1)
			}
		}
		level[id] = l
		return l
	}
	var levels [][]string
	for id := range wf.Jobs {
		if id == builder {
			continue
		}
		l := visit(id, nil)
		for len(levels) <= l {
			levels = append(levels, nil)
		}
		levels[l] = append(levels[l], id)
	}
	for _, l := range levels {
		sort.Strings(l)
	}
	return levels, builder
}

// ancestors are the names of the jobs a job needs, transitively, besides
// the builder: the steps it inherits.
func ancestors(wf ghWorkflow, id, builder string) []string {
	var out []string
	for _, n := range wf.Jobs[id].Needs {
		if n != builder {
			out = append(append(out, wf.Jobs[n].Name), ancestors(wf, n, builder)...)
		}
	}
	return out
}

// ghRunner runs one job as a GitHub runner would. The checkout is dir;
// the artifact smelt is the binary under test, with --json added so that
// the test reads each step's status; the store is empty (SMELT_STORE, as
// a fresh runner's default store). Install steps run without their
// rustup lines: the toolchains are installed here, and rustup would
// update them over the network.
type ghRunner struct {
	wf          ghWorkflow
	id, builder string
	ctx         map[string]string // github.*, vars.*, secrets.*
	dir, tmp    string
}

type ghResult struct {
	step string            // the job's name: the step it checks
	o    outcome           // the check's output
	env  map[string]string // the job's env when the check ran
	took time.Duration
	err  error // the job could not run as the workflow says
}

func (r ghRunner) run() (res ghResult) {
	start := time.Now()
	job := r.wf.Jobs[r.id]
	res.step = job.Name
	defer func() { res.took = time.Since(start) }()
	fail := func(format string, a ...any) ghResult {
		res.err = fmt.Errorf(format, a...)
		return res
	}
	temp := filepath.Join(r.tmp, "runner")
	ghEnv, ghPath := filepath.Join(r.tmp, "github_env"), filepath.Join(r.tmp, "github_path")
	for _, f := range []string{ghEnv, ghPath} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			return fail("%v", err)
		}
	}
	if err := os.MkdirAll(temp, 0o755); err != nil {
		return fail("%v", err)
	}
	// The runner's environment: this machine's tools, none of its smelt
	// or AWS settings (a runner has no AWS files either).
	var base []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if (strings.HasPrefix(k, "SMELT_") || strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "GITHUB_")) && k != "AWS_CONFIG_FILE" && k != "AWS_SHARED_CREDENTIALS_FILE" {
			continue
		}
		base = append(base, kv)
	}
	base = append(base, "CI=true", "GITHUB_ACTIONS=true", "RUNNER_TEMP="+temp, "GITHUB_ENV="+ghEnv, "GITHUB_PATH="+ghPath,
		"SMELT_STORE="+filepath.Join(r.tmp, "store"))
	ctx := map[string]string{"runner.temp": temp}
	for k, v := range r.ctx {
		ctx[k] = v
	}
	env := map[string]string{}
	for _, layer := range []map[string]string{r.wf.Env, job.Env} {
		for k, v := range layer {
			s, err := ghSubst(v, ctx)
			if err != nil {
				return fail("env %s: %v", k, err)
			}
			env[k] = s
			ctx["env."+k] = s
		}
	}
	workdir, checks := "", 0
	for i, st := range job.Steps {
		cond := st.If
		if cond == "" {
			cond = "success()"
		}
		ok, err := ghTrue(cond, ctx)
		if err != nil {
			return fail("step %d (%s): if: %v", i, st.Name, err)
		}
		if !ok {
			continue
		}
		with := map[string]string{}
		for k, v := range st.With {
			s, err := ghSubst(fmt.Sprint(v), ctx)
			if err != nil {
				return fail("step %d: with %s: %v", i, k, err)
			}
			with[k] = s
		}
		action, _, _ := strings.Cut(st.Uses, "@")
		switch {
		case action == "actions/checkout":
			workdir = r.dir
		case action == "actions/download-artifact":
			if with["name"] != "smelt" {
				return fail("step %d downloads artifact %q, which no job uploads", i, with["name"])
			}
			// An artifact loses its mode bits: the job must chmod it.
			wrapper := fmt.Sprintf("#!/bin/sh\nexec '%s' \"$@\" --json\n", smeltBin)
			if err := os.MkdirAll(with["path"], 0o755); err != nil {
				return fail("%v", err)
			}
			if err := os.WriteFile(filepath.Join(with["path"], "smelt"), []byte(wrapper), 0o644); err != nil {
				return fail("%v", err)
			}
		case action == "taiki-e/install-action":
			for _, tool := range strings.Split(with["tool"], ",") {
				if _, err := exec.LookPath(strings.TrimSpace(tool)); err != nil {
					return fail("step %d installs %s, which is not installed here", i, tool)
				}
			}
		case st.Uses != "":
			return fail("step %d uses %s, which this test does not know", i, st.Uses)
		case st.Run != "":
			if workdir == "" {
				return fail("step %d runs before the checkout", i)
			}
			script, err := ghSubst(st.Run, ctx)
			if err != nil {
				return fail("step %d: run: %v", i, err)
			}
			var lines []string
			for _, l := range strings.Split(script, "\n") {
				if !strings.HasPrefix(strings.TrimSpace(l), "rustup ") {
					lines = append(lines, l)
				}
			}
			file := filepath.Join(r.tmp, fmt.Sprintf("step-%d.sh", i))
			if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				return fail("%v", err)
			}
			cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", file)
			cmd.Dir = workdir
			cmd.Env = slices.Clone(base)
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			for k, v := range st.Env {
				s, err := ghSubst(v, ctx)
				if err != nil {
					return fail("step %d: env %s: %v", i, k, err)
				}
				cmd.Env = append(cmd.Env, k+"="+s)
			}
			paths := strings.Fields(readAbsOr(ghPath))
			slices.Reverse(paths) // the last added comes first
			cmd.Env = append(cmd.Env, "PATH="+strings.Join(append(paths, os.Getenv("PATH")), string(os.PathListSeparator)))
			out, err := cmd.CombinedOutput()
			if strings.HasPrefix(strings.TrimSpace(st.Run), "smelt check ") {
				checks++
				res.o = parseOutcome(string(out))
				if ee, ok := err.(*exec.ExitError); ok {
					res.o.code = ee.ExitCode()
				} else if err != nil {
					return fail("step %d: %v", i, err)
				}
				res.env = maps.Clone(env)
			} else if err != nil {
				return fail("step %d (%s): %v\n%s", i, st.Name, err, out)
			}
			for _, l := range strings.Split(readAbsOr(ghEnv), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok {
					env[k] = v
					ctx["env."+k] = v
				}
			}
		}
	}
	if checks != 1 {
		return fail("job %s runs smelt check %d times, want once", r.id, checks)
	}
	return res
}

func readAbsOr(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

var ghExprRE = regexp.MustCompile(`\$\{\{(.*?)\}\}`)

// ghSubst replaces each ${{ EXPR }} in s by its value.
func ghSubst(s string, ctx map[string]string) (string, error) {
	var failed error
	out := ghExprRE.ReplaceAllStringFunc(s, func(m string) string {
		v, err := ghEval(ghExprRE.FindStringSubmatch(m)[1], ctx)
		if err != nil && failed == nil {
			failed = err
		}
		return ghString(v)
	})
	return out, failed
}

// ghTrue evaluates an if: condition (with or without ${{ }}).
func ghTrue(cond string, ctx map[string]string) (bool, error) {
	cond = strings.TrimSpace(cond)
	if m := ghExprRE.FindStringSubmatch(cond); m != nil && m[0] == cond {
		cond = m[1]
	}
	v, err := ghEval(cond, ctx)
	return ghTruthy(v), err
}

var ghTokenRE = regexp.MustCompile(`^\s*('(?:[^']|'')*'|==|!=|&&|\|\||[!()]|[A-Za-z_][A-Za-z0-9_.-]*(?:\(\))?)`)

// ghEval evaluates the part of GitHub's expression language the
// generated workflows use: string literals, contexts (vars and secrets
// that are not set are empty, as on GitHub; any other unknown name is an
// error), ==, !=, !, &&, ||, parentheses, success() and always().
func ghEval(expr string, ctx map[string]string) (any, error) {
	var toks []string
	for rest := expr; strings.TrimSpace(rest) != ""; {
		m := ghTokenRE.FindStringSubmatch(rest)
		if m == nil {
			return nil, fmt.Errorf("cannot read %q in %q", rest, expr)
		}
		toks = append(toks, m[1])
		rest = rest[len(m[0]):]
	}
	pos := 0
	peek := func() string {
		if pos < len(toks) {
			return toks[pos]
		}
		return ""
	}
	var or func() (any, error)
	var unary func() (any, error)
	unary = func() (any, error) {
		tok := peek()
		pos++
		switch {
		case tok == "!":
			v, err := unary()
			return !ghTruthy(v), err
		case tok == "(":
			v, err := or()
			if peek() != ")" {
				return nil, fmt.Errorf("missing ) in %q", expr)
			}
			pos++
			return v, err
		case strings.HasPrefix(tok, "'"):
			return strings.ReplaceAll(tok[1:len(tok)-1], "''", "'"), nil
		case tok == "success()" || tok == "always()" || tok == "true":
			return true, nil
		case tok == "false":
			return false, nil
		case tok == "":
			return nil, fmt.Errorf("%q ends too soon", expr)
		}
		if v, ok := ctx[tok]; ok {
			return v, nil
		}
		root, _, _ := strings.Cut(tok, ".")
		if root == "vars" || root == "secrets" || root == "env" {
			return "", nil
		}
		return nil, fmt.Errorf("unknown name %s in %q", tok, expr)
	}
	eq := func() (any, error) {
		a, err := unary()
		if err != nil || (peek() != "==" && peek() != "!=") {
			return a, err
		}
		op := peek()
		pos++
		b, err := unary()
		same := strings.EqualFold(ghString(a), ghString(b))
		return same == (op == "=="), err
	}
	and := func() (any, error) {
		a, err := eq()
		for err == nil && peek() == "&&" {
			pos++
			var b any
			b, err = eq()
			if ghTruthy(a) {
				a = b
			}
		}
		return a, err
	}
	or = func() (any, error) {
		a, err := and()
		for err == nil && peek() == "||" {
			pos++
			var b any
			b, err = and()
			if !ghTruthy(a) {
				a = b
			}
		}
		return a, err
	}
	v, err := or()
	if err == nil && pos != len(toks) {
		err = fmt.Errorf("cannot read %q after %q", toks[pos:], toks[:pos])
	}
	return v, err
}

func ghTruthy(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return v != ""
	}
	return false
}

func ghString(v any) string {
	if b, ok := v.(bool); ok {
		return fmt.Sprint(b)
	}
	s, _ := v.(string)
	return s
}
