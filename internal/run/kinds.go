package run

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/bmatcuk/doublestar/v4"

	"smelt/internal/config"
	"smelt/internal/depsrc"
	"smelt/internal/kind"
	"smelt/internal/store"
	"smelt/internal/toolchain"
)

// tools finds the external programs a step's kind needs; their versions
// enter the key, so upgrading one reruns the steps that use it.
// They are looked up once per run for each kind and toolchain: the key and
// the step's execution both need them.
func (e *engine) tools(ctx context.Context, s *config.Step) (map[string]string, error) {
	k := s.Kind + "\x00" + s.Toolchain
	e.toolsMu.Lock()
	defer e.toolsMu.Unlock()
	if t, ok := e.toolsCache[k]; ok {
		return t, nil
	}
	t, err := e.findTools(ctx, s)
	if err != nil {
		return nil, err
	}
	if e.toolsCache == nil {
		e.toolsCache = map[string]map[string]string{}
	}
	e.toolsCache[k] = t
	return t, nil
}

func (e *engine) findTools(ctx context.Context, s *config.Step) (map[string]string, error) {
	env := stepEnv(s.Toolchain)
	find := func(name string, args ...string) (*toolchain.Tool, error) {
		return toolchain.FindTool(ctx, e.p.st, env, name, args...)
	}
	out := map[string]string{}
	var versions []string
	add := func(name string, t *toolchain.Tool) {
		out[name] = t.Path
		versions = append(versions, name+"="+t.Version)
	}
	k := kind.Get(s.Kind)
	for _, tool := range k.Tools {
		t, err := find(tool.Name, tool.VersionArgs...)
		if err != nil {
			return nil, err
		}
		add(tool.Name, t)
	}
	if k.LLVMTools {
		tc, err := e.p.toolchain(ctx, s.Toolchain)
		if err != nil {
			return nil, err
		}
		pd, cov, err := toolchain.LLVMTools(ctx, e.p.st, env, tc, func() string { return e.sysroot(ctx, s.Toolchain) })
		if err != nil {
			return nil, err
		}
		add("llvm-profdata", pd)
		add("llvm-cov", cov)
	}
	if len(versions) > 0 {
		sort.Strings(versions)
		out[""] = store.HashBytes([]byte(strings.Join(versions, "\n")))
	}
	return out, nil
}

// sysroot is rustc's sysroot (where rustup's llvm-tools live). Asked only
// when Debian's LLVM tools are not there.
func (e *engine) sysroot(ctx context.Context, tc string) string {
	cmd := exec.CommandContext(ctx, "rustc", "--print", "sysroot")
	cmd.Env, cmd.Dir = stepEnv(tc), e.p.root
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

var (
	netOffOnce sync.Once
	netOffArgs []string
)

// netOff is the prefix that runs a command without network: a new network
// namespace (only loopback, down), as root or through a user namespace.
func netOff() []string {
	netOffOnce.Do(func() {
		for _, args := range [][]string{{"unshare", "-n", "--"}, {"unshare", "-rn", "--"}} {
			if exec.Command(args[0], append(args[1:], "true")...).Run() == nil {
				netOffArgs = args
				return
			}
		}
	})
	return netOffArgs
}

// underMinimum fails a coverage step whose line coverage is below fail-under.
func underMinimum(s *config.Step, lines float64) error {
	if s.FailUnder > 0 && lines < s.FailUnder {
		return failed("line coverage %.2f%% is under fail-under = %g", lines, s.FailUnder)
	}
	return nil
}

// snapshotOutput stores dir as the step's output.
func (sr *stepRun) snapshotOutput(res *Result, dir string) error {
	id, _, err := sr.e.p.st.Snapshot(dir, store.SnapshotOptions{})
	if err != nil {
		return err
	}
	res.Output = id
	return nil
}

// coverage merges the raw profiles the instrumented tests wrote, and reports
// them with llvm-cov: lcov.info, HTML, and a summary.
func (sr *stepRun) coverage(ctx context.Context, res *Result) error {
	profraw, _ := filepath.Glob(filepath.Join(sr.scratch, "profraw", "*.profraw"))
	if len(profraw) == 0 {
		return failed("the tests wrote no coverage profiles (did any test run?)")
	}
	if len(sr.testExes) == 0 {
		return failed("cargo reported no test executables to read coverage from")
	}
	outDir := filepath.Join(sr.scratch, "coverage")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	profdata := filepath.Join(sr.scratch, "coverage.profdata")
	run := func(stdout string, prog string, args ...string) error {
		fmt.Fprintf(sr.logf, "\n$ %s %s\n", prog, strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, prog, args...)
		cmd.Dir, cmd.Env = sr.srcDir, sr.env
		cmd.Stderr = sr.logf
		var out bytes.Buffer
		cmd.Stdout = &out
		supervise(cmd, sr.procs)
		if err := runSupervised(cmd); err != nil {
			sr.r.Tail = tail(sr.r.Log, 25)
			return failed("`%s` failed: %v", filepath.Base(prog), err)
		}
		if stdout != "" {
			return os.WriteFile(stdout, out.Bytes(), 0o644)
		}
		return nil
	}
	if err := run("", sr.tools["llvm-profdata"], append([]string{"merge", "-sparse", "-o", profdata}, profraw...)...); err != nil {
		return err
	}
	sort.Strings(sr.testExes)
	objects := []string{sr.testExes[0]}
	for _, exe := range sr.testExes[1:] {
		objects = append(objects, "--object", exe)
	}
	// Only the workspace's own code: not the vendored dependencies, not std.
	vendored := regexp.QuoteMeta(depsrc.Dir(sr.e.p.st))
	if sr.view.vendor != "" {
		vendored += "|" + regexp.QuoteMeta(sr.view.vendor)
	}
	common := []string{"-instr-profile", profdata, "--ignore-filename-regex", vendored + "|/rustc/|/\\.cargo/registry/"}
	if err := run(filepath.Join(outDir, "lcov.info"), sr.tools["llvm-cov"], append(append([]string{"export", "-format=lcov"}, common...), objects...)...); err != nil {
		return err
	}
	summaryPath := filepath.Join(outDir, "summary.json")
	if err := run(summaryPath, sr.tools["llvm-cov"], append(append([]string{"export", "-summary-only"}, common...), objects...)...); err != nil {
		return err
	}
	if err := run("", sr.tools["llvm-cov"], append(append([]string{"show", "-format=html", "-output-dir", filepath.Join(outDir, "html"),
		"-path-equivalence", sr.view.src + ",."}, common...), objects...)...); err != nil {
		return err
	}
	var sum struct {
		Data []struct {
			Totals map[string]struct {
				Count   int     `json:"count"`
				Covered int     `json:"covered"`
				Percent float64 `json:"percent"`
			} `json:"totals"`
		} `json:"data"`
	}
	data, err := os.ReadFile(summaryPath)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &sum); err != nil || len(sum.Data) == 0 {
		return failed("cannot read llvm-cov's summary: %v", err)
	}
	t := sum.Data[0].Totals
	res.Summary = fmt.Sprintf("lines %.2f%% (%d/%d), functions %.2f%% (%d/%d), regions %.2f%% (%d/%d)",
		t["lines"].Percent, t["lines"].Covered, t["lines"].Count,
		t["functions"].Percent, t["functions"].Covered, t["functions"].Count,
		t["regions"].Percent, t["regions"].Covered, t["regions"].Count)
	fmt.Fprintf(sr.logf, "\ncoverage: %s\n", res.Summary)
	if err := underMinimum(sr.n.Step, t["lines"].Percent); err != nil {
		return err
	}
	return sr.snapshotOutput(res, outDir)
}

var reTarpaulin = regexp.MustCompile(`([\d.]+)% coverage, (\d+)/(\d+) lines covered`)

// tarpaulin keeps cargo-tarpaulin's reports and its coverage figure.
func (sr *stepRun) tarpaulin(res *Result) error {
	data, _ := os.ReadFile(sr.r.Log)
	m := reTarpaulin.FindAllSubmatch(data, -1)
	if len(m) == 0 {
		return failed("cargo tarpaulin printed no coverage figure")
	}
	last := m[len(m)-1]
	pct, _ := strconv.ParseFloat(string(last[1]), 64)
	res.Summary = fmt.Sprintf("lines %.2f%% (%s/%s)", pct, last[2], last[3])
	if err := underMinimum(sr.n.Step, pct); err != nil {
		return err
	}
	return sr.snapshotOutput(res, filepath.Join(sr.scratch, "tarpaulin"))
}

// commandOutputs stores the files a command step declared, by glob,
// relative to the workspace root. A declared output that is missing fails
// the step: a later step would otherwise miss it silently.
func (sr *stepRun) commandOutputs(res *Result, tree store.Tree) error {
	st, s := sr.e.p.st, sr.n.Step
	layer := &store.Layer{Entries: []store.Entry{}}
	seen := map[string]bool{}
	for _, g := range s.Outputs {
		matches, err := doublestar.Glob(os.DirFS(sr.srcDir), g, doublestar.WithFilesOnly())
		if err != nil {
			return failed("outputs glob %q: %v", g, err)
		}
		if len(matches) == 0 {
			return failed("the command produced nothing matching its declared output %q", g)
		}
		for _, rel := range matches {
			if seen[rel] {
				continue
			}
			seen[rel] = true
			e, err := st.PutEntry(filepath.Join(sr.srcDir, filepath.FromSlash(rel)), rel)
			if err != nil {
				return err
			}
			layer.Entries = append(layer.Entries, e)
		}
	}
	res.Summary = fmt.Sprintf("%d output files", len(layer.Entries))
	if len(layer.Entries) > 0 {
		id, err := st.PutLayer(layer)
		if err != nil {
			return err
		}
		res.Output = id
		// Heirs see the outputs, so they are part of what they inherit.
		out := store.Tree{}
		for _, e := range layer.Entries {
			out[e.Path] = e
		}
		res.ArtifactsID = store.ContentID(store.HashBytes([]byte(artifactsID(tree) + out.ContentID())))
	}
	return nil
}
