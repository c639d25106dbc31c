// Package graph draws the graph of steps: as Graphviz DOT, as a Mermaid
// flowchart, or as SVG through Graphviz's dot. An arrow A -> B means B
// starts from A's artifacts (its target/).
package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"

	"smelt/internal/config"
	"smelt/internal/plan"
)

// Status is a step's state in the store, as `smelt why` reports it.
type Status struct {
	State  string // "cached", "run" or "failed" (failed last time with the same inputs)
	Reason string // why it would run
	After  string // it would run because this step, which it inherits from, would
}

// Node is one step as drawn.
type Node struct {
	Name, Kind string
	Parent     string // the step it inherits from; "" for none
	Row        string // its matrix row; "" without a matrix
	Part, Of   int    // a nextest partition: part of Of
	Check      bool   // one of [outputs] checks
	Default    bool   // the [outputs] default
	Status     *Status
}

// Nodes lists the steps of g in its order, marking cfg's checks and default
// output and attaching the statuses given (by step name; nil for none).
func Nodes(g *plan.Graph, cfg *config.Config, status map[string]Status) []Node {
	var out []Node
	for _, name := range g.Order {
		n := g.Nodes[name]
		names := []string{name, n.Step.Base}
		if base, _, ok := strings.Cut(name, "#"); ok {
			names = append(names, base) // a partition counts as its step
		}
		d := Node{Name: name, Kind: n.Step.Kind, Row: n.Step.Row, Part: n.Part, Of: n.Of}
		if n.Parent != nil {
			d.Parent = n.Parent.Name()
		}
		for _, m := range names {
			if m == "" {
				continue
			}
			d.Check = d.Check || slices.Contains(cfg.Checks, m)
			d.Default = d.Default || cfg.Default == m
		}
		if s, ok := status[name]; ok {
			d.Status = &s
		}
		out = append(out, d)
	}
	return out
}

// fill is the colour of a state.
var fill = map[string]string{"cached": "#c8e6c9", "run": "#fff3c4", "failed": "#ffcdd2"}

// lines is the text of a node's box.
func (n Node) lines() []string {
	// The kind, unless the name says it already (deps, deps@stable).
	var what []string
	if base, _, _ := strings.Cut(strings.Split(n.Name, "#")[0], "@"); base != n.Kind {
		what = append(what, n.Kind)
	}
	if n.Of > 0 {
		what = append(what, fmt.Sprintf("partition %d/%d", n.Part, n.Of))
	}
	l := []string{n.Name}
	if len(what) > 0 {
		l = append(l, strings.Join(what, ", "))
	}
	if n.Status != nil {
		switch n.Status.State {
		case "cached":
			l = append(l, "cached")
		case "failed":
			l = append(l, "failed last time")
		default:
			if n.Status.After != "" {
				l = append(l, "would run after "+n.Status.After)
			} else {
				l = append(l, "would run: "+short(n.Status.Reason, 40))
			}
		}
	}
	return l
}

func short(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

const legend = "A → B: B starts from A's artifacts (target/); bold: a check; double border: the default output"

// rows lists the matrix rows in order of first appearance.
func rows(nodes []Node) []string {
	var out []string
	for _, n := range nodes {
		if n.Row != "" && !slices.Contains(out, n.Row) {
			out = append(out, n.Row)
		}
	}
	return out
}

// DOT writes the graph in Graphviz's language. Steps of one matrix row are
// drawn in a box of their own.
func DOT(w io.Writer, nodes []Node) error {
	var b strings.Builder
	b.WriteString("digraph smelt {\n")
	b.WriteString("  rankdir=LR;\n")
	fmt.Fprintf(&b, "  label=%s; labelloc=b; fontsize=10; fontname=\"Helvetica\";\n", dotQuote(legend))
	b.WriteString("  node [shape=box, style=\"rounded,filled\", fillcolor=\"white\", fontname=\"Helvetica\"];\n")
	b.WriteString("  edge [color=\"#555555\"];\n")
	node := func(indent string, n Node) {
		attrs := []string{"label=" + dotQuote(strings.Join(n.lines(), "\n"))}
		if n.Check {
			attrs = append(attrs, "penwidth=2.5")
		}
		if n.Default {
			attrs = append(attrs, "peripheries=2")
		}
		if n.Status != nil {
			attrs = append(attrs, "fillcolor="+dotQuote(fill[n.Status.State]))
			if n.Status.Reason != "" {
				attrs = append(attrs, "tooltip="+dotQuote(n.Status.Reason))
			}
		}
		fmt.Fprintf(&b, "%s%s [%s];\n", indent, dotQuote(n.Name), strings.Join(attrs, ", "))
	}
	for _, n := range nodes {
		if n.Row == "" {
			node("  ", n)
		}
	}
	for i, r := range rows(nodes) {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s; style=dashed; color=\"#999999\";\n", i, dotQuote("matrix row "+r))
		for _, n := range nodes {
			if n.Row == r {
				node("    ", n)
			}
		}
		b.WriteString("  }\n")
	}
	for _, n := range nodes {
		if n.Parent != "" {
			fmt.Fprintf(&b, "  %s -> %s;\n", dotQuote(n.Parent), dotQuote(n.Name))
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// Mermaid writes the graph as a Mermaid flowchart, which GitHub and GitLab
// render in Markdown. Node ids are n0, n1, … since step names may hold
// characters Mermaid ids cannot (clippy@stable, tests#2).
func Mermaid(w io.Writer, nodes []Node) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	id := map[string]string{}
	for i, n := range nodes {
		id[n.Name] = fmt.Sprintf("n%d", i)
	}
	node := func(indent string, n Node) {
		var esc []string
		for _, l := range n.lines() {
			esc = append(esc, mermaidEscape(l))
		}
		open, close := "[", "]"
		if n.Default {
			open, close = "[[", "]]" // a subroutine box: the double border
		}
		fmt.Fprintf(&b, "%s%s%s\"%s\"%s\n", indent, id[n.Name], open, strings.Join(esc, "<br/>"), close)
	}
	for _, n := range nodes {
		if n.Row == "" {
			node("  ", n)
		}
	}
	for i, r := range rows(nodes) {
		fmt.Fprintf(&b, "  subgraph row%d[\"%s\"]\n", i, mermaidEscape("matrix row "+r))
		for _, n := range nodes {
			if n.Row == r {
				node("    ", n)
			}
		}
		b.WriteString("  end\n")
	}
	for _, n := range nodes {
		if n.Parent != "" {
			fmt.Fprintf(&b, "  %s --> %s\n", id[n.Parent], id[n.Name])
		}
	}
	classes := map[string][]string{}
	for _, n := range nodes {
		if n.Check {
			classes["check"] = append(classes["check"], id[n.Name])
		}
		if n.Status != nil {
			classes[n.Status.State] = append(classes[n.Status.State], id[n.Name])
		}
	}
	for _, c := range []string{"check", "cached", "run", "failed"} {
		if len(classes[c]) == 0 {
			continue
		}
		style := "stroke-width:3px"
		if c != "check" {
			style = "fill:" + fill[c]
		}
		fmt.Fprintf(&b, "  classDef %s %s\n  class %s %s\n", c, style, strings.Join(classes[c], ","), c)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mermaidEscape writes the characters that end or change a quoted Mermaid
// label as entity codes.
func mermaidEscape(s string) string {
	return strings.NewReplacer(`#`, `#35;`, `"`, `#quot;`, `<`, `#lt;`, `>`, `#gt;`).Replace(s)
}

// ErrNoGraphviz is returned by SVG when Graphviz's dot is not on PATH.
var ErrNoGraphviz = errors.New("--format svg needs Graphviz's dot, which is not on PATH: install Graphviz (e.g. apt-get install graphviz), or write --format dot and render it elsewhere")

// Render runs Graphviz's dot on a DOT text, giving the output format named
// (svg, png, plain, …).
func Render(ctx context.Context, dot []byte, format string) ([]byte, error) {
	prog, err := exec.LookPath("dot")
	if err != nil {
		return nil, ErrNoGraphviz
	}
	cmd := exec.CommandContext(ctx, prog, "-T"+format)
	cmd.Stdin = bytes.NewReader(dot)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("graphviz's dot -T%s failed: %v: %s", format, err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}
