package config

// Rendering problems in smelt.toml as one sentence with a fix: the Error
// type, go-toml's errors in smelt's terms, and suggestions for typos.

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Error is a problem in smelt.toml. Error() renders as one sentence:
//
//	"<file>:<line>: <msg>; <fix>"
//
// (":<line>" omitted when Line is 0, "; <fix>" omitted when Fix is "").
type Error struct {
	File string
	Line int
	Msg  string
	Fix  string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Msg)
	if e.Fix != "" {
		b.WriteString("; " + e.Fix)
	}
	return b.String()
}

// kindList names kinds in a message: kind "a", kinds "a" and "b",
// kinds "a", "b" and "c".
func kindList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	switch len(q) {
	case 0:
		return "no kind"
	case 1:
		return "kind " + q[0]
	}
	return "kinds " + strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// tomlTypeName names the TOML type of a value go-toml decoded into any.
func tomlTypeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	default:
		return "date or time"
	}
}

// stepFix suggests a close step name, or lists them all.
func (p *parser) stepFix(bad string, order []string) string {
	list := "existing steps: " + strings.Join(order, ", ")
	if near := nearest(bad, order); near != "" {
		return fmt.Sprintf("did you mean %q? (%s)", near, list)
	}
	return list
}

// decode runs a strict go-toml decode into v and turns its errors into
// *Error with a line and a fix.
func (p *parser) decode(data []byte, v any) *Error {
	d := toml.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var all []*Error
		for i := range strict.Errors {
			line, _ := strict.Errors[i].Position()
			all = append(all, p.unknownKey(line, strict.Errors[i].Key()))
		}
		if e := earliest(all...); e != nil {
			return e
		}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		return p.badValue(de)
	}
	return &Error{File: p.file, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

func (p *parser) unknownKey(line int, key []string) *Error {
	e := &Error{File: p.file, Line: line}
	switch {
	case len(key) == 1:
		if strings.HasPrefix(strings.TrimSpace(p.ix.text(line)), "[") {
			e.Msg = fmt.Sprintf("unknown table [%s]", key[0])
			e.Fix = "the tables are [common], [step.NAME] and [outputs], and optional [matrix] and [remote]"
			if near := nearest(key[0], topTables); near == "step" {
				e.Fix = "did you mean [step.NAME]?"
			} else if near != "" {
				e.Fix = fmt.Sprintf("did you mean [%s]?", near)
			}
		} else {
			e.Msg = fmt.Sprintf("unknown top-level key %q", key[0])
			e.Fix = "settings go in [common] or a [step.NAME] table"
		}
	case key[0] == "common":
		e.Msg = fmt.Sprintf("unknown key %q in [common]", key[1])
		if slices.Contains(stepOnly, key[1]) {
			e.Fix = fmt.Sprintf("%q can only be set in a [step.NAME] table", key[1])
		} else {
			e.Fix = keyFix(key[1], commonKeys)
		}
	case key[0] == "step" && len(key) >= 3:
		e.Msg = fmt.Sprintf("unknown key %q in [step.%s]", key[2], key[1])
		e.Fix = keyFix(key[2], stepKeys)
	case key[0] == "outputs":
		e.Msg = fmt.Sprintf("unknown key %q in [outputs]", key[1])
		e.Fix = keyFix(key[1], outputsKeys)
	case key[0] == "remote":
		e.Msg = fmt.Sprintf("unknown key %q in [remote]", key[1])
		e.Fix = keyFix(key[1], remoteKeys)
	case key[0] == "matrix" && len(key) == 2:
		e.Msg = fmt.Sprintf("unknown key %q in [matrix]", key[1])
		e.Fix = keyFix(key[1], matrixKeys)
		if key[1] != "row" && slices.Contains(commonKeys, key[1]) {
			e.Fix = fmt.Sprintf("%q is not a matrix dimension; set it for one row in a [matrix.row.\"LABEL\"] table", key[1])
		}
	case key[0] == "matrix" && key[1] == "row" && len(key) >= 4:
		e.Msg = fmt.Sprintf("unknown key %q in [matrix.row.%q]", key[3], key[2])
		if slices.Contains(stepOnly, key[3]) {
			e.Fix = fmt.Sprintf("%q can only be set in a [step.NAME] table", key[3])
		} else {
			e.Fix = keyFix(key[3], commonKeys)
		}
	default:
		e.Msg = fmt.Sprintf("unknown key %q", strings.Join(key, "."))
	}
	return e
}

// caseError finds a key that differs from a known key only in case. go-toml
// matches struct fields case-insensitively, so strict decoding accepts
// `Kind` or `[Common]`; smelt.toml is case-sensitive like Cargo.toml.
func (p *parser) caseError() *Error {
	for _, at := range p.ix.paths {
		var known []string
		for i, k := range at.path {
			switch {
			case i == 0:
				known = topTables
			case i == 1 && at.path[0] == "common":
				known = commonKeys
			case i == 1 && at.path[0] == "outputs":
				known = outputsKeys
			case i == 1 && at.path[0] == "remote":
				known = remoteKeys
			case i == 2 && at.path[0] == "step":
				known = stepKeys
			case i == 1 && at.path[0] == "matrix":
				known = matrixKeys
			case i == 3 && at.path[0] == "matrix" && at.path[1] == "row":
				known = commonKeys
			default:
				continue
			}
			if slices.Contains(known, k) {
				continue
			}
			for _, want := range known {
				if strings.EqualFold(k, want) {
					return p.unknownKey(at.line, at.path[:i+1])
				}
			}
		}
	}
	return nil
}

func keyFix(bad string, allowed []string) string {
	if near := nearest(bad, allowed); near != "" {
		return fmt.Sprintf("did you mean %q?", near)
	}
	return "allowed keys: " + strings.Join(allowed, ", ")
}

// Examples of each key, used as the fix for a value of the wrong type.
var keyExamples = map[string]string{
	"profile":             `profile = "release"`,
	"features":            `features = ["serde"]`,
	"all-features":        `all-features = true`,
	"no-default-features": `no-default-features = true`,
	"target":              `target = "x86_64-unknown-linux-gnu"`,
	"toolchain":           `toolchain = "nightly"`,
	"cargo-args":          `cargo-args = ["--locked"]`,
	"env":                 `env = { RUSTFLAGS = "-C target-cpu=native" }`,
	"include":             `include = ["assets/**"]`,
	"exclude":             `exclude = ["benches/big/**"]`,
	"kind":                `kind = "test"`,
	"artifacts":           `artifacts = "deps"`,
	"args":                `args = ["--all-targets"]`,
	"fail-under":          `fail-under = 80`,
	"partitions":          `partitions = 4`,
	"run":                 `run = "make assets"`,
	"outputs":             `outputs = ["assets/out/**"]`,
	"default":             `default = "package"`,
	"checks":              `checks = ["clippy", "test"]`,
}

var keyTypes = map[string]string{
	"profile": "a string", "target": "a string", "kind": "a string", "artifacts": "a string", "default": "a string",
	"features": "a list of strings", "cargo-args": "a list of strings", "include": "a list of strings",
	"exclude": "a list of strings", "args": "a list of strings", "checks": "a list of strings",
	"all-features": "true or false", "no-default-features": "true or false",
	"env": "a table of strings", "toolchain": "a string",
	"fail-under": "a number", "partitions": "an integer", "run": "a string or a list of strings",
	"outputs": "a list of strings",
}

// The [matrix] keys share names with common keys but take lists.
var (
	matrixTypes = map[string]string{
		"toolchain": "a list of strings", "target": "a list of strings", "features": "a list of feature lists",
		"row": `a table of [matrix.row."LABEL"] tables`,
	}
	matrixExamples = map[string]string{
		"toolchain": `toolchain = ["stable", "nightly"]`,
		"target":    `target = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]`,
		"features":  `features = [["serde"], []]`,
		"row":       `[matrix.row."nightly"] with profile = "dev"`,
	}
)

// badValue explains a type mismatch in smelt's terms (go-toml's message
// names Go types), or passes a syntax error through with its line.
func (p *parser) badValue(de *toml.DecodeError) *Error {
	line, _ := de.Position()
	key := de.Key()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	e := &Error{File: p.file, Line: line}
	got, ok := strings.CutPrefix(msg, "cannot decode TOML ")
	if !ok || len(key) == 0 {
		e.Msg = "invalid TOML: " + msg
		return e
	}
	got, _, _ = strings.Cut(got, " into")
	got = article(got)
	var where, leaf string
	switch {
	case len(key) == 1 && key[0] == "step":
		e.Msg = fmt.Sprintf("step must hold [step.NAME] tables, got %s", got)
		return e
	case len(key) == 1:
		e.Msg = fmt.Sprintf("[%s] must be a table, got %s", key[0], got)
		return e
	case key[0] == "step" && len(key) == 2:
		e.Msg = fmt.Sprintf("[step.%s] must be a table, got %s", key[1], got)
		return e
	case key[0] == "step":
		where, leaf = "[step."+key[1]+"]", key[2]
	case key[0] == "matrix" && key[1] == "row" && len(key) == 3:
		e.Msg = fmt.Sprintf("[matrix.row.%q] must be a table, got %s", key[2], got)
		e.Fix = "write it like " + matrixExamples["row"]
		return e
	case key[0] == "matrix" && key[1] == "row" && len(key) >= 4:
		where, leaf = fmt.Sprintf("[matrix.row.%q]", key[2]), key[3]
	case key[0] == "matrix":
		e.Msg = fmt.Sprintf("%q in [matrix] must be %s, got %s", key[1], matrixTypes[key[1]], got)
		e.Fix = "write it like " + matrixExamples[key[1]]
		return e
	default:
		where, leaf = "["+key[0]+"]", key[1]
	}
	want := keyTypes[leaf]
	if want == "" {
		e.Msg = "invalid TOML: " + msg
		return e
	}
	e.Msg = fmt.Sprintf("%q in %s must be %s, got %s", leaf, where, want, got)
	if ex := keyExamples[leaf]; ex != "" {
		e.Fix = "write it like " + ex
	}
	return e
}

func article(tomlType string) string {
	if strings.ContainsAny(tomlType[:1], "aeiou") {
		return "an " + tomlType
	}
	return "a " + tomlType
}

// earliest returns the error that comes first in the file; unplaced errors
// (line 0) sort last, and ties keep argument order.
func earliest(errs ...*Error) *Error {
	var best *Error
	for _, e := range errs {
		if e == nil {
			continue
		}
		if best == nil || (e.Line > 0 && (best.Line == 0 || e.Line < best.Line)) {
			best = e
		}
	}
	return best
}

// Nearest returns the closest candidate to s within a typo's distance, or
// "": the suggestion behind every "did you mean" of smelt.
func Nearest(s string, candidates []string) string { return nearest(s, candidates) }

// nearest returns the closest candidate within edit distance 2 of s, or "".
// The distance must also be below len(s): rewriting all of a one- or
// two-letter name is no typo.
func nearest(s string, candidates []string) string {
	best, bestD := "", min(3, len(s))
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
