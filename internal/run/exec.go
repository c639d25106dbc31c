package run

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"smelt/internal/cargo"
	"smelt/internal/plan"
	"smelt/internal/source"
	"smelt/internal/store"
)

// execute runs a step that has no stored result and stores its result.
func (e *engine) execute(ctx context.Context, n *plan.Node, src source.Tree, in plan.Inputs, key string, parent *store.Result, r *StepReport) (*store.Result, error) {
	st, s := e.p.st, n.Step
	start := time.Now()
	dir, unlock, err := e.workDir(n.Name())
	if err != nil {
		return nil, err
	}
	defer unlock()
	logDir := filepath.Join(st.Dir, "logs", e.p.id)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	r.Log = filepath.Join(logDir, n.Name()+".log")
	logf, err := os.Create(r.Log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "# smelt step %s (kind %s), key %s\n# why: %s\n", n.Name(), s.Kind, key[:16], r.Reason)

	// The artifacts it inherits, and the source that produced them.
	var (
		parentTree  store.Tree
		parentLayer string
		prevSource  []store.SourceFile
		newest      int64
	)
	if parent != nil && parent.Artifacts != "" {
		parentTree, err = st.Flatten(parent.Artifacts)
		if err != nil {
			return nil, err
		}
		parentLayer, prevSource, newest = parent.Artifacts, parent.Source, parent.MaxMTime
	}
	srcDir := filepath.Join(dir, "src")
	targetDir := filepath.Join(srcDir, "target")
	times := source.MTimes(src, prevSource, newest, timeNow())
	if err := source.Layout(srcDir, src, times); err != nil {
		return nil, err
	}
	keeps := plan.KeepsArtifacts(s.Kind)
	if keeps {
		// Always restore, even to nothing: a step must never see a target/
		// left over from some other state of its working directory.
		if err := st.Restore(targetDir, parentTree); err != nil {
			return nil, err
		}
	}
	vendorConfig := ""
	if plan.UsesDependencies(s.Kind) {
		v, err := e.p.vendor(ctx, logf)
		if err != nil {
			return nil, err
		}
		vendorConfig = v.Config
	}

	env := append(BaseEnv(),
		"CARGO_TARGET_DIR="+targetDir,
		"CARGO_TERM_COLOR=never",
		"CARGO_NET_OFFLINE=true",
	)
	envKeys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		envKeys = append(envKeys, k)
	}
	sort.Strings(envKeys)
	for _, k := range envKeys {
		env = append(env, k+"="+s.Env[k])
	}

	bins := map[string]string{}
	binPaths := map[string]string{}
	for _, c := range n.Commands {
		args := c.Expand(vendorConfig)
		fmt.Fprintf(logf, "\n$ cargo %s\n", strings.Join(args, " "))
		var stdout io.Writer = logf
		var jsonOut bytes.Buffer
		if s.Kind == "package" {
			stdout = &jsonOut
		}
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "cargo", args...)
		cmd.Dir, cmd.Env = srcDir, env
		cmd.Stdout, cmd.Stderr = stdout, io.MultiWriter(logf, &stderr)
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 10 * time.Second
		err := cmd.Run()
		if s.Kind == "package" {
			collectBins(jsonOut.Bytes(), targetDir, bins, binPaths, logf)
		}
		if err != nil {
			r.Tail = tail(r.Log, 25)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if msg := cargo.Explain(stderr.String()); msg != "" {
				return nil, fmt.Errorf("%w: %s", errStepFailed, msg)
			}
			return nil, fmt.Errorf("%w: `cargo %s` exited with %v", errStepFailed, c[0], exitCode(err))
		}
	}

	res := &store.Result{
		Key: key, Step: n.Name(), Kind: s.Kind, Inputs: in, Source: times,
		Created: time.Now().UTC(),
	}
	var tree store.Tree
	if keeps {
		id, t, err := st.Snapshot(targetDir, parentLayer, parentTree)
		if err != nil {
			return nil, err
		}
		tree = t
		res.Artifacts, res.ArtifactsID, res.MaxMTime = id, t.ContentID(), t.MaxMTime()
	}
	out := &store.Layer{Entries: []store.Entry{}}
	switch s.Kind {
	case "package":
		res.Bins = bins
		names := make([]string, 0, len(binPaths))
		for name := range binPaths {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			ent, ok := tree[binPaths[name]]
			if !ok {
				return nil, fmt.Errorf("cargo reported binary %s at target/%s, but it is not there", name, binPaths[name])
			}
			ent.Path = "bin/" + name
			out.Entries = append(out.Entries, ent)
		}
		res.Summary = fmt.Sprintf("%d binaries", len(names))
	case "doc":
		prefix := cargo.DocDir(s) + "/"
		for _, ent := range tree.Sorted() {
			if rest, ok := strings.CutPrefix(ent.Path, prefix); ok {
				ent.Path = path.Join("doc", rest)
				out.Entries = append(out.Entries, ent)
			}
		}
	case "test":
		res.Summary = testSummary(r.Log)
	}
	if len(out.Entries) > 0 {
		if res.Output, err = st.PutLayer(out); err != nil {
			return nil, err
		}
	}
	logf.Sync()
	if data, err := os.ReadFile(r.Log); err == nil {
		if res.Log, err = st.PutBytes(data); err != nil {
			return nil, err
		}
	}
	res.Seconds = time.Since(start).Seconds()
	if err := st.SaveResult(res); err != nil {
		return nil, err
	}
	return res, nil
}

func exitCode(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return "status " + strconv.Itoa(ee.ExitCode())
	}
	return err.Error()
}

// collectBins reads cargo's JSON messages for the executables it built, and
// logs the rest as cargo would have printed it.
func collectBins(out []byte, targetDir string, bins, paths map[string]string, log io.Writer) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var m struct {
			Reason     string `json:"reason"`
			PackageID  string `json:"package_id"`
			Executable string `json:"executable"`
			Target     struct {
				Kind []string `json:"kind"`
				Name string   `json:"name"`
			} `json:"target"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			fmt.Fprintln(log, sc.Text())
			continue
		}
		if m.Reason != "compiler-artifact" || m.Executable == "" || !contains(m.Target.Kind, "bin") {
			continue
		}
		rel, err := filepath.Rel(targetDir, m.Executable)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		bins[m.Target.Name] = packageName(m.PackageID)
		paths[m.Target.Name] = filepath.ToSlash(rel)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// packageName extracts the name from a cargo package id, either
// "path+file:///ws/app#0.3.0" or "path+file:///ws/x#app@0.3.0".
func packageName(id string) string {
	url, frag, _ := strings.Cut(id, "#")
	if name, _, ok := strings.Cut(frag, "@"); ok {
		return name
	}
	url = strings.TrimRight(url, "/")
	return url[strings.LastIndex(url, "/")+1:]
}

var reTestResult = regexp.MustCompile(`test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored`)

// testSummary adds up the test harness's result lines in the log.
func testSummary(logPath string) string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return ""
	}
	var passed, failed, ignored int
	for _, m := range reTestResult.FindAllSubmatch(data, -1) {
		p, _ := strconv.Atoi(string(m[1]))
		f, _ := strconv.Atoi(string(m[2]))
		i, _ := strconv.Atoi(string(m[3]))
		passed, failed, ignored = passed+p, failed+f, ignored+i
	}
	s := fmt.Sprintf("%d tests passed", passed)
	if ignored > 0 {
		s += fmt.Sprintf(", %d ignored", ignored)
	}
	if failed > 0 {
		s += fmt.Sprintf(", %d failed", failed)
	}
	return s
}
