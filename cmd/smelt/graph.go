package main

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"smelt/internal/graph"
	"smelt/internal/plan"
	"smelt/internal/run"
)

// graphCmd draws the steps (all of them, or the named ones and what they
// inherit) on stdout.
func graphCmd(ctx context.Context, o options, names []string) error {
	if o.format != "dot" && o.format != "mermaid" && o.format != "svg" {
		return fmt.Errorf("--format %s: graph draws dot, mermaid or svg", o.format)
	}
	root, cfg, st, err := setup(o)
	if err != nil {
		return err
	}
	g, err := plan.New(cfg)
	if err != nil {
		return err
	}
	selected := g.Order
	if len(names) > 0 {
		nodes, err := g.Select(resolve(cfg, names))
		if err != nil {
			return err
		}
		selected = nil
		for _, n := range nodes {
			selected = append(selected, n.Name())
		}
	}
	var status map[string]graph.Status
	if o.status {
		outlooks, err := run.Outlooks(ctx, root, cfg, selected, st)
		if err != nil {
			return err
		}
		status = map[string]graph.Status{}
		for _, s := range outlooks {
			status[s.Name] = graph.Status{State: string(s.Outlook), Reason: s.Reason, After: s.After}
		}
	}
	var nodes []graph.Node
	for _, n := range graph.Nodes(g, cfg, status) {
		if contains(selected, n.Name) {
			nodes = append(nodes, n)
		}
	}
	var out bytes.Buffer
	if o.format == "mermaid" {
		err = graph.Mermaid(&out, nodes)
	} else {
		err = graph.DOT(&out, nodes)
	}
	if err != nil {
		return err
	}
	if o.format == "svg" {
		svg, err := graph.Render(ctx, out.Bytes(), "svg")
		if err != nil {
			return err
		}
		out.Reset()
		out.Write(svg)
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
