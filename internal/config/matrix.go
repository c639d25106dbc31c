package config

import (
	"fmt"
	"slices"
	"strings"
)

// row is one combination of the [matrix] dimensions. A nil dimension value
// means the dimension is absent, so the row leaves that key alone.
type row struct {
	label     string
	toolchain *string
	target    *string
	features  *[]string
	over      *rawCommon // [matrix.row."label"], or nil
}

// matrix validates [matrix] and returns its rows, the cartesian product
// toolchain × target × features (each list in file order), or nil when no
// dimension has a value (no expansion).
func (p *parser) matrix(m *rawMatrix) []row {
	if m == nil {
		return nil
	}
	rows := []row{{}}
	addDim := func(n int, set func(r *row, i int), part func(i int) string) {
		if n == 0 {
			return
		}
		var next []row
		for _, r := range rows {
			for i := range n {
				r2 := r
				set(&r2, i)
				if r2.label != "" {
					r2.label += ","
				}
				r2.label += part(i)
				next = append(next, r2)
			}
		}
		rows = next
	}
	strDim := func(key string, list *[]string) []string {
		if list == nil {
			return nil
		}
		for i, v := range *list {
			if v == "" {
				p.add(p.ix.line("matrix", key), fmt.Sprintf("remove the empty entry or name a %s", key),
					"%s in [matrix] has an empty entry", key)
			} else if slices.Contains((*list)[:i], v) {
				p.add(p.ix.line("matrix", key), "remove the duplicate", "%s in [matrix] lists %q twice", key, v)
			}
		}
		return *list
	}
	toolchains := strDim("toolchain", m.Toolchain)
	targets := strDim("target", m.Target)
	var features [][]string
	if m.Features != nil {
		features = *m.Features
		seen := map[string]bool{}
		for _, fs := range features {
			if slices.Contains(fs, "") {
				p.add(p.ix.line("matrix", "features"), "remove the empty feature name", "features in [matrix] holds an empty feature name")
			}
			l := featuresLabel(fs)
			if seen[l] {
				p.add(p.ix.line("matrix", "features"), "remove the duplicate", "features in [matrix] lists %s twice", featuresTOML(fs))
			}
			seen[l] = true
		}
	}
	addDim(len(toolchains), func(r *row, i int) { r.toolchain = &toolchains[i] }, func(i int) string { return toolchains[i] })
	addDim(len(targets), func(r *row, i int) { r.target = &targets[i] }, func(i int) string { return targets[i] })
	addDim(len(features), func(r *row, i int) { r.features = &features[i] }, func(i int) string { return featuresLabel(features[i]) })
	if rows[0].label == "" {
		rows = nil
	}

	var labels []string
	for _, r := range rows {
		labels = append(labels, r.label)
	}
	for label, over := range m.Row {
		i := slices.Index(labels, label)
		if i < 0 {
			fix := "the matrix has no rows: add toolchain, target or features lists to [matrix]"
			if len(labels) > 0 {
				fix = "the rows are: " + quoteList(labels)
				if near := nearest(label, labels); near != "" {
					fix = fmt.Sprintf("did you mean %q? (%s)", near, fix)
				}
			}
			p.add(p.ix.line("matrix", "row", label), fix, "[matrix.row.%q] names no row of the matrix", label)
			continue
		}
		if over == nil {
			continue
		}
		if over.Profile != nil && *over.Profile == "" {
			p.add(p.ix.line("matrix", "row", label, "profile"), `set a cargo profile such as "release" or "dev", or remove the key`,
				"profile in [matrix.row.%q] is empty", label)
		}
		rows[i].over = over
	}
	return rows
}

func featuresLabel(fs []string) string { return "features=" + strings.Join(fs, "+") }

func featuresTOML(fs []string) string {
	if len(fs) == 0 {
		return "[]"
	}
	return `["` + strings.Join(fs, `", "`) + `"]`
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// expand turns the validated base config into one step per base step and
// row, named BASE@LABEL. Order and Checks are row-major: every step of the
// first row, then the next row.
func (p *parser) expand(base *Config, raw rawFile, common *rawCommon, rows []row) *Config {
	cfg := &Config{File: base.File, Steps: map[string]*Step{}}
	// Problems were reported for the first row already; the other rows
	// repeat the same keys, so their reports are dropped.
	keep := len(p.errs)
	for i := range rows {
		r := &rows[i]
		for _, name := range base.Order {
			s := p.step(name, raw.Step[name], common, r)
			s.Name = name + "@" + r.label
			if s.Inherits != "" {
				s.Inherits += "@" + r.label
			}
			cfg.Steps[s.Name] = s
			cfg.Order = append(cfg.Order, s.Name)
		}
		for _, c := range base.Checks {
			cfg.Checks = append(cfg.Checks, c+"@"+r.label)
		}
	}
	p.errs = p.errs[:keep]
	if base.Default != "" {
		cfg.Default = base.Default + "@" + rows[0].label
	}
	return cfg
}

// Resolve maps a name given on the command line to steps: an exact step
// name (expanded or not) gives itself; the base name of a step expanded by
// a [matrix] gives all its rows' steps, in Order.
func (c *Config) Resolve(name string) ([]string, error) {
	if c.Steps[name] != nil {
		return []string{name}, nil
	}
	var out, bases []string
	for _, n := range c.Order {
		s := c.Steps[n]
		b := s.Base
		if b == "" {
			b = n
		}
		if b == name {
			out = append(out, n)
		}
		if !slices.Contains(bases, b) {
			bases = append(bases, b)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no step named %s (steps: %s)", name, strings.Join(bases, ", "))
	}
	return out, nil
}
