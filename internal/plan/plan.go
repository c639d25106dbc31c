// Package plan turns a configuration into a graph of steps, computes each
// step's key from its inputs, and explains why a key changed.
package plan

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"smelt/internal/cargo"
	"smelt/internal/config"
	"smelt/internal/key"
	"smelt/internal/kind"
	"smelt/internal/store"
)

// Node is one step of the graph.
type Node struct {
	Step     *config.Step
	Parent   *Node           // the step whose artifacts it inherits
	Children []*Node         // steps that inherit from it
	Commands []cargo.Command // what it runs
	Part, Of int             // a nextest partition: part of Of (Of is 0 otherwise)
}

// Name is the step's name.
func (n *Node) Name() string { return n.Step.Name }

// Graph holds every step of a configuration.
type Graph struct {
	Nodes   map[string]*Node
	Order   []string            // topological: a step comes after the step it inherits from
	aliases map[string][]string // a partitioned step's name → its partitions
}

// New builds the graph of every step in cfg. Commands are worked out over the
// whole configuration, never a selection of it, so the deps step's key is the
// same whichever output is asked for.
func New(cfg *config.Config) (*Graph, error) {
	g := &Graph{Nodes: map[string]*Node{}, aliases: map[string][]string{}}
	var order []string
	for _, name := range cfg.Order {
		s := cfg.Steps[name]
		if kind.Get(s.Kind).Partitioned && s.Partitions > 1 {
			// Each partition is a step of its own, cached on its own.
			for i := 1; i <= s.Partitions; i++ {
				ps := *s
				ps.Name = fmt.Sprintf("%s#%d", name, i)
				g.Nodes[ps.Name] = &Node{Step: &ps, Part: i, Of: s.Partitions}
				g.aliases[name] = append(g.aliases[name], ps.Name)
				order = append(order, ps.Name)
			}
			continue
		}
		g.Nodes[name] = &Node{Step: s}
		order = append(order, name)
	}
	for _, name := range order {
		n := g.Nodes[name]
		if a := n.Step.Inherits; a != "" {
			p, ok := g.Nodes[a]
			if !ok {
				return nil, fmt.Errorf("step %s inherits from unknown step %s", name, a)
			}
			n.Parent = p
			p.Children = append(p.Children, n)
		}
	}
	seen := map[string]bool{}
	var visit func(n *Node)
	visit = func(n *Node) {
		if seen[n.Name()] {
			return
		}
		seen[n.Name()] = true
		g.Order = append(g.Order, n.Name())
		for _, c := range n.Children {
			visit(c)
		}
	}
	for _, name := range order {
		if g.Nodes[name].Parent == nil {
			visit(g.Nodes[name])
		}
	}
	if len(g.Order) != len(order) {
		return nil, fmt.Errorf("the steps' artifacts form a cycle")
	}
	for _, n := range g.Nodes {
		var heirs []*config.Step
		for _, h := range n.Descendants() {
			heirs = append(heirs, h.Step)
		}
		n.Commands = kind.Commands(n.Step, heirs, n.Part, n.Of)
	}
	return g, nil
}

// Descendants lists the steps that inherit from n, directly or not, in a
// stable order.
func (n *Node) Descendants() []*Node {
	var out []*Node
	var walk func(*Node)
	walk = func(m *Node) {
		for _, c := range m.Children {
			out = append(out, c)
			walk(c)
		}
	}
	walk(n)
	return out
}

// Select returns the named steps and every step they inherit from, in
// graph order.
func (g *Graph) Select(names []string) ([]*Node, error) {
	want := map[string]bool{}
	var expanded []string
	for _, name := range names {
		if parts, ok := g.aliases[name]; ok {
			expanded = append(expanded, parts...)
		} else {
			expanded = append(expanded, name)
		}
	}
	for _, name := range expanded {
		n, ok := g.Node(name)
		if !ok {
			return nil, g.Unknown(name)
		}
		for ; n != nil; n = n.Parent {
			want[n.Name()] = true
		}
	}
	var out []*Node
	for _, name := range g.Order {
		if want[name] {
			out = append(out, g.Nodes[name])
		}
	}
	return out, nil
}

// MemberSep joins a package step's name and a workspace member's in the
// name of the step that builds that member alone (MemberStep). Neither a
// package name nor a matrix row or partition name holds it.
const MemberSep = config.MemberSep

// MemberStep names the step that builds the binaries of one workspace
// member (`cargo build -p MEMBER`) with the settings of package step step.
func MemberStep(step, member string) string { return step + MemberSep + member }

// Node returns the named step. A name STEP.MEMBER, STEP being a package
// step, is a step of its own added on first use: STEP's settings and
// parent, with `-p MEMBER`, so it has a key of its own. It is nobody's
// heir: a deps step's commands, and so its key, stay what the
// configuration makes them whichever member is built.
func (g *Graph) Node(name string) (*Node, bool) {
	if n, ok := g.Nodes[name]; ok {
		return n, true
	}
	base, member, ok := config.SplitMember(name)
	b := g.Nodes[base]
	if !ok || b == nil || !kind.Get(b.Step.Kind).Members {
		return nil, false
	}
	s := *b.Step
	s.Name = name
	// -p and --workspace together would build the whole workspace.
	s.Args = append(slices.DeleteFunc(slices.Clone(s.Args), func(a string) bool { return a == "--workspace" || a == "--all" }), "-p", member)
	n := &Node{Step: &s, Parent: b.Parent}
	n.Commands = kind.Commands(&s, nil, 0, 0)
	g.Nodes[name] = n
	g.Order = append(g.Order, name)
	return n, true
}

// Unknown is the error for a step name the graph does not hold: the names
// it does hold, and the nearest one when the name looks like a typo.
func (g *Graph) Unknown(name string) error {
	var bases []string
	for _, n := range g.Order {
		b := g.Nodes[n].Step.Base
		if b == "" {
			b = n
		}
		if !slices.Contains(bases, b) {
			bases = append(bases, b)
		}
	}
	list := "steps: " + strings.Join(bases, ", ")
	near := config.Nearest(name, bases)
	if near == "" {
		near = config.Nearest(name, g.Order) // a row (clippy@stable) or a partition (tests#2)
	}
	if near != "" {
		return fmt.Errorf("no step named %s; did you mean %s? (%s)", name, near, list)
	}
	return fmt.Errorf("no step named %s (%s)", name, list)
}

// Inputs are the named parts of a step's key (see package key).
type Inputs = key.Inputs

// StepValues returns the inputs that come from the step's own definition.
func StepValues(n *Node) key.Values {
	// Every setting of the step enters the key, so a field added to
	// config.Step later cannot be forgotten here. Only the names are left
	// out: renaming a step, or the step it inherits from, changes no result
	// (what it inherits enters the key by content).
	s := *n.Step
	s.Name, s.Base, s.Row, s.Inherits, s.Line = "", "", "", "", 0
	def, _ := json.Marshal(s)
	cmds, _ := json.Marshal(n.Commands)
	return key.Values{
		Smelt:    store.FormatVersion,
		Step:     store.HashBytes(def),
		Commands: store.HashBytes(cmds),
	}
}

// Explain says why inputs now differ from old (the last successful run's),
// naming changed source files when both file lists are given.
func Explain(old, now Inputs, oldFiles, nowFiles map[string]string) string {
	if old == nil {
		return "first run"
	}
	var reasons []string
	names := make([]string, 0, len(now))
	for k := range now {
		names = append(names, k)
	}
	for k := range old {
		if _, ok := now[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		if old[k] == now[k] {
			continue
		}
		r := key.Words[k]
		if r == "" {
			r = k + " changed"
		}
		if k == key.Source && oldFiles != nil && nowFiles != nil {
			if d := DiffFiles(oldFiles, nowFiles); d != "" {
				r += ": " + d
			}
		}
		reasons = append(reasons, r)
	}
	if len(reasons) == 0 {
		return "its earlier result is not in the store"
	}
	return strings.Join(reasons, "; ")
}

// DiffFiles names the files that differ, at most three of them.
func DiffFiles(old, now map[string]string) string {
	var changed []string
	for p, h := range now {
		if o, ok := old[p]; !ok {
			changed = append(changed, "+"+p)
		} else if o != h {
			changed = append(changed, p)
		}
	}
	for p := range old {
		if _, ok := now[p]; !ok {
			changed = append(changed, "-"+p)
		}
	}
	sort.Slice(changed, func(i, j int) bool {
		return strings.TrimLeft(changed[i], "+-") < strings.TrimLeft(changed[j], "+-")
	})
	if len(changed) > 3 {
		return fmt.Sprintf("%s and %d more", strings.Join(changed[:3], ", "), len(changed)-3)
	}
	return strings.Join(changed, ", ")
}
