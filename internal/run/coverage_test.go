package run

import (
	"strings"
	"testing"

	"smelt/internal/store"
)

// The coverage kind over the fake cargo and LLVM tools: the instrumented
// tests' profiles are merged and reported (lcov, HTML, a summary line),
// the reports are the step's output, a rerun is cached, and a fall below
// fail-under fails the step with the figure and the minimum.
func TestEngineCoverage(t *testing.T) {
	w := newWS(t)
	cfg := parseConfig(t, `
[step.cov]
kind = "coverage"
fail-under = 90
`)
	rep := w.run(cfg, "cov")
	wantStatuses(t, rep, all("built", "cov"))
	if t.Failed() {
		t.FailNow()
	}
	res := rep.Step("cov").Result
	// greet has 5 non-empty lines, app 3, none marked UNCOVERED.
	if want := "lines 100.00% (8/8)"; !strings.HasPrefix(res.Summary, want) {
		t.Errorf("summary %q, want it to start with %q", res.Summary, want)
	}
	tree, err := w.st.Flatten(res.Output)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"lcov.info", "html/index.html", "summary.json"} {
		if e, ok := tree[p]; !ok || e.Type != store.TypeFile {
			t.Errorf("the step's output lacks %s (has %v)", p, keys(tree))
		}
	}
	calls := w.calls()
	var tested []string
	for _, c := range calls["cov"] {
		tested = append(tested, c.Tested...)
	}
	if strings.Join(tested, " ") != "app greet" {
		t.Errorf("the coverage step tested %v, want app and greet once", tested)
	}

	rep = w.run(cfg, "cov")
	wantStatuses(t, rep, all("cached", "cov"))
	if got := rep.Step("cov").Result.Summary; got != res.Summary {
		t.Errorf("cached summary %q, want %q", got, res.Summary)
	}
	if calls := w.calls(); len(calls["cov"]) != 0 {
		t.Errorf("a cached coverage step ran %v", calls["cov"])
	}

	// One line the tests miss: 8 of 9, under the minimum.
	w.replace("greet/src/lib.rs", "pub fn hi() {}", "pub fn hi() {}\npub fn never() {} // UNCOVERED")
	rep = w.run(cfg, "cov")
	wantStatuses(t, rep, map[string]string{"cov": "failed"})
	if err := rep.Step("cov").Err; err == nil || !strings.Contains(err.Error(), "line coverage 88.89% is under fail-under = 90") {
		t.Errorf("the step failed with %v, want the figure and the minimum", err)
	}
}

func keys(t store.Tree) []string {
	var out []string
	for p := range t {
		out = append(out, p)
	}
	return out
}
