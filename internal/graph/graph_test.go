package graph

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"smelt/internal/config"
	"smelt/internal/plan"
)

// fixture loads a project of testdata/ and its graph.
func fixture(t *testing.T, name string) (*config.Config, *plan.Graph) {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "..", "testdata", name, "smelt.toml"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := plan.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, g
}

// edges lists "parent -> step" for every step that inherits, sorted.
func edges(g *plan.Graph) []string {
	var out []string
	for name, n := range g.Nodes {
		if n.Parent != nil {
			out = append(out, n.Parent.Name()+" -> "+name)
		}
	}
	sort.Strings(out)
	return out
}

func needDot(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dot"); err != nil {
		if os.Getenv("SMELT_REQUIRE_TOOLS") != "" {
			t.Fatal("Graphviz's dot is not installed (SMELT_REQUIRE_TOOLS is set)")
		}
		t.Skip("Graphviz's dot is not installed")
	}
}

// plainFields splits a line of dot -Tplain output, whose names are quoted
// when they are not plain identifiers.
func plainFields(line string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`"((?:[^"\\]|\\.)*)"|(\S+)`).FindAllStringSubmatch(line, -1) {
		if m[2] != "" {
			out = append(out, m[2])
		} else {
			out = append(out, strings.ReplaceAll(m[1], `\"`, `"`))
		}
	}
	return out
}

// TestDOTRenders draws fixtures with Graphviz and reads back from dot's
// own layout which boxes and arrows it drew, and in which colours.
func TestDOTRenders(t *testing.T) {
	needDot(t)
	for _, fx := range []string{"seed", "checks", "matrix"} {
		t.Run(fx, func(t *testing.T) {
			cfg, g := fixture(t, fx)
			// Every state once, so the colours are checked too.
			status := map[string]Status{}
			states := []string{"cached", "run", "failed"}
			for i, name := range g.Order {
				status[name] = Status{State: states[i%3], Reason: "source changed: src/main.rs"}
			}
			var dot bytes.Buffer
			if err := DOT(&dot, Nodes(g, cfg, status)); err != nil {
				t.Fatal(err)
			}
			plain, err := Render(context.Background(), dot.Bytes(), "plain")
			if err != nil {
				t.Fatalf("%v\n%s", err, dot.String())
			}
			var nodes, drawn []string
			fills := map[string]string{}
			for _, line := range strings.Split(string(plain), "\n") {
				f := plainFields(line)
				switch {
				case len(f) > 0 && f[0] == "node":
					nodes = append(nodes, f[1])
					fills[f[1]] = f[len(f)-1]
				case len(f) > 0 && f[0] == "edge":
					drawn = append(drawn, f[1]+" -> "+f[2])
				}
			}
			sort.Strings(nodes)
			sort.Strings(drawn)
			want := slices.Clone(g.Order)
			sort.Strings(want)
			if !reflect.DeepEqual(nodes, want) {
				t.Errorf("dot drew boxes %v, want the steps %v", nodes, want)
			}
			if w := edges(g); !reflect.DeepEqual(drawn, w) {
				t.Errorf("dot drew arrows %v, want %v", drawn, w)
			}
			for name, s := range status {
				if fills[name] != fill[s.State] {
					t.Errorf("%s (%s) filled %q, want %q", name, s.State, fills[name], fill[s.State])
				}
			}
			svg, err := Render(context.Background(), dot.Bytes(), "svg")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(svg, []byte("<svg")) {
				t.Errorf("dot -Tsvg wrote no <svg>")
			}
		})
	}
}

var (
	reMermaidNode = regexp.MustCompile(`^\s*(n\d+)(\[\[|\[)"([^"]*)"(\]\]|\])$`)
	reMermaidEdge = regexp.MustCompile(`^\s*(n\d+) --> (n\d+)$`)
	reMermaidSub  = regexp.MustCompile(`^\s*subgraph row\d+\["[^"]*"\]$`)
	reMermaidDef  = regexp.MustCompile(`^\s*classDef (\w+) [\w:#-]+$`)
	reMermaidCls  = regexp.MustCompile(`^\s*class ((?:n\d+,)*n\d+) (\w+)$`)
)

// TestMermaidStructure reads the flowchart back line by line: every line is
// one Mermaid statement smelt writes, each step is declared once under its
// name, the arrows are the graph's, and checks and the default are marked.
func TestMermaidStructure(t *testing.T) {
	for _, fx := range []string{"seed", "checks", "matrix"} {
		t.Run(fx, func(t *testing.T) {
			cfg, g := fixture(t, fx)
			nodes := Nodes(g, cfg, nil)
			var out bytes.Buffer
			if err := Mermaid(&out, nodes); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if lines[0] != "flowchart LR" {
				t.Fatalf("first line %q, want flowchart LR", lines[0])
			}
			unescape := strings.NewReplacer("#35;", "#", "#quot;", `"`, "#lt;", "<", "#gt;", ">")
			name := map[string]string{}
			var drawn []string
			defaults := []string{}
			classes := map[string][]string{}
			depth := 0
			for _, l := range lines[1:] {
				if m := reMermaidNode.FindStringSubmatch(l); m != nil {
					if _, dup := name[m[1]]; dup {
						t.Errorf("%s declared twice", m[1])
					}
					name[m[1]] = unescape.Replace(strings.Split(m[3], "<br/>")[0])
					if m[2] == "[[" {
						defaults = append(defaults, name[m[1]])
					}
				} else if m := reMermaidEdge.FindStringSubmatch(l); m != nil {
					if name[m[1]] == "" || name[m[2]] == "" {
						t.Errorf("arrow %q before its boxes are declared", l)
					}
					drawn = append(drawn, name[m[1]]+" -> "+name[m[2]])
				} else if reMermaidSub.MatchString(l) {
					depth++
				} else if strings.TrimSpace(l) == "end" {
					depth--
				} else if reMermaidDef.MatchString(l) {
				} else if m := reMermaidCls.FindStringSubmatch(l); m != nil {
					for _, id := range strings.Split(m[1], ",") {
						classes[m[2]] = append(classes[m[2]], name[id])
					}
				} else {
					t.Errorf("line %q is none of the statements smelt writes", l)
				}
				if depth < 0 || depth > 1 {
					t.Errorf("subgraphs unbalanced at %q", l)
				}
			}
			if depth != 0 {
				t.Errorf("a subgraph is not closed")
			}
			var declared []string
			for _, n := range name {
				declared = append(declared, n)
			}
			sort.Strings(declared)
			sort.Strings(drawn)
			want := slices.Clone(g.Order)
			sort.Strings(want)
			if !reflect.DeepEqual(declared, want) {
				t.Errorf("boxes %v, want the steps %v", declared, want)
			}
			if w := edges(g); !reflect.DeepEqual(drawn, w) {
				t.Errorf("arrows %v, want %v", drawn, w)
			}
			var wantChecks, wantDefault []string
			for _, n := range nodes {
				if n.Check {
					wantChecks = append(wantChecks, n.Name)
				}
				if n.Default {
					wantDefault = append(wantDefault, n.Name)
				}
			}
			if !reflect.DeepEqual(classes["check"], wantChecks) {
				t.Errorf("marked as checks %v, want %v", classes["check"], wantChecks)
			}
			if !reflect.DeepEqual(defaults, wantDefault) && len(defaults)+len(wantDefault) > 0 {
				t.Errorf("double boxes %v, want the default %v", defaults, wantDefault)
			}
		})
	}
}

// TestNodesMarks checks which steps count as checks and as the default:
// a partition counts as its step, a matrix row as its base name.
func TestNodesMarks(t *testing.T) {
	for _, tc := range []struct {
		fixture       string
		checks, deflt []string
	}{
		{"seed", []string{"clippy", "coverage", "crate"}, []string{"crate"}},
		{"checks", []string{"deps", "coverage", "nextest#1", "nextest#2", "doctest", "gen", "report", "deny"}, nil},
		{"matrix", []string{"deps@stable", "clippy@stable", "test@stable", "deps@nightly", "clippy@nightly", "test@nightly"}, nil},
	} {
		cfg, g := fixture(t, tc.fixture)
		var checks, deflt []string
		for _, n := range Nodes(g, cfg, nil) {
			if n.Check {
				checks = append(checks, n.Name)
			}
			if n.Default {
				deflt = append(deflt, n.Name)
			}
		}
		if !reflect.DeepEqual(checks, tc.checks) || !reflect.DeepEqual(deflt, tc.deflt) {
			t.Errorf("%s: checks %v default %v, want %v and %v", tc.fixture, checks, deflt, tc.checks, tc.deflt)
		}
	}
}

// TestDocsPicture keeps docs/seed.dot what the tool draws for the seed
// fixture, and docs/seed.svg a drawing of it.
func TestDocsPicture(t *testing.T) {
	const regen = "go run ./cmd/smelt graph -C testdata/seed > docs/seed.dot && go run ./cmd/smelt graph -C testdata/seed --format svg > docs/seed.svg"
	cfg, g := fixture(t, "seed")
	var dot bytes.Buffer
	if err := DOT(&dot, Nodes(g, cfg, nil)); err != nil {
		t.Fatal(err)
	}
	docs := filepath.Join("..", "..", "docs")
	have, err := os.ReadFile(filepath.Join(docs, "seed.dot"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, dot.Bytes()) {
		t.Errorf("docs/seed.dot is not what smelt graph draws now: run %s\n got:\n%s\nwant:\n%s", regen, have, dot.String())
	}
	svg, err := os.ReadFile(filepath.Join(docs, "seed.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range g.Order {
		if !bytes.Contains(svg, []byte("<title>"+name+"</title>")) {
			t.Errorf("docs/seed.svg has no box for %s: run %s", name, regen)
		}
	}
}
