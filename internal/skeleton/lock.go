package skeleton

import (
	"regexp"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// The lock is rewritten line by line rather than re-encoded: cargo compares
// the lock it would write with the one on disk (--locked), so the header,
// ordering, quoting and checksums have to stay exactly in cargo's format.

var quoted = regexp.MustCompile(`"[^"\\]*"`)

// lockSection is one `[...]` / `[[...]]` section of a lock file (or the
// preamble before the first one). Trailing blank lines are kept apart so
// that reordering package sections keeps the blank-line layout.
type lockSection struct {
	body     []string // lines including their terminators
	trailing []string // blank lines after the body
	// Only set for [[package]] sections.
	isPackage bool
	name      string
	version   string
	source    string
	masked    bool
}

// rewriteLock masks the versions of the source-less (local) packages named
// in masked, and every "NAME VERSION" dependency reference to them.
func rewriteLock(data []byte, masked map[string]bool) ([]byte, error) {
	var probe map[string]any
	if err := toml.Unmarshal(data, &probe); err != nil {
		return nil, err
	}

	secs := splitLock(string(data))

	// Pass 1: which (name, version) pairs are local and get masked.
	localRefs := map[string]bool{}
	for _, s := range secs {
		if s.isPackage && s.source == "" && masked[s.name] {
			s.masked = true
			localRefs[s.name+" "+s.version] = true
			s.version = maskedVersion // what the package is sorted by from now on
		}
	}

	// Pass 2: rewrite versions and dependency references.
	for _, s := range secs {
		if !s.isPackage {
			continue
		}
		inDeps := false
		var depLines []int
		for i, line := range s.body {
			content, eol := splitEOL(line)
			switch {
			case inDeps:
				if strings.TrimSpace(content) == "]" {
					inDeps = false
					sortDepRuns(s.body, depLines)
					depLines = nil
					continue
				}
				s.body[i] = rewriteRefs(content, localRefs) + eol
				depLines = append(depLines, i)
			case strings.HasPrefix(content, "dependencies = ["):
				s.body[i] = rewriteRefs(content, localRefs) + eol
				inDeps = !strings.HasSuffix(strings.TrimSpace(content), "]")
			case s.masked && strings.HasPrefix(content, "version = "):
				s.body[i] = `version = "` + maskedVersion + `"` + eol
			}
		}
	}

	sortPackageRuns(secs)

	var b strings.Builder
	b.Grow(len(data))
	for _, s := range secs {
		for _, l := range s.body {
			b.WriteString(l)
		}
		for _, l := range s.trailing {
			b.WriteString(l)
		}
	}
	return []byte(b.String()), nil
}

func splitLock(text string) []*lockSection {
	lines := strings.SplitAfter(text, "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	cur := &lockSection{}
	secs := []*lockSection{cur}
	for _, line := range lines {
		content, _ := splitEOL(line)
		if strings.HasPrefix(content, "[") {
			cur = &lockSection{isPackage: strings.TrimSpace(content) == "[[package]]"}
			secs = append(secs, cur)
		}
		if strings.TrimSpace(content) == "" {
			cur.trailing = append(cur.trailing, line)
			continue
		}
		// A non-blank line after blank ones: the blanks were inner lines.
		cur.body = append(cur.body, cur.trailing...)
		cur.trailing = nil
		cur.body = append(cur.body, line)
		if cur.isPackage {
			if v, ok := stringField(content, "name"); ok {
				cur.name = v
			} else if v, ok := stringField(content, "version"); ok {
				cur.version = v
			} else if v, ok := stringField(content, "source"); ok {
				cur.source = v
			}
		}
	}
	return secs
}

func splitEOL(line string) (content, eol string) {
	content = strings.TrimRight(line, "\r\n")
	return content, line[len(content):]
}

// stringField parses a top-level `key = "value"` line.
func stringField(line, key string) (string, bool) {
	rest, ok := strings.CutPrefix(line, key+" = \"")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, `"`)
}

// rewriteRefs rewrites every "NAME VERSION" string on a line that refers to
// a masked local package. References with a "(source)" are never local.
func rewriteRefs(line string, localRefs map[string]bool) string {
	return quoted.ReplaceAllStringFunc(line, func(q string) string {
		f := strings.Fields(q[1 : len(q)-1])
		if len(f) == 2 && localRefs[f[0]+" "+f[1]] {
			return `"` + f[0] + " " + maskedVersion + `"`
		}
		return q
	})
}

// depRef is a parsed dependency reference "NAME [VERSION] [(SOURCE)]".
type depRef struct{ name, version, source string }

func parseRef(line string) depRef {
	q := quoted.FindString(line)
	if q == "" {
		return depRef{}
	}
	f := strings.SplitN(q[1:len(q)-1], " ", 3)
	var r depRef
	r.name = f[0]
	if len(f) > 1 {
		r.version = f[1]
	}
	if len(f) > 2 {
		r.source = f[2]
	}
	return r
}

// sortDepRuns restores cargo's order (name, version string, source) among
// references to same-named packages, which masking a version can break.
// Only runs of equal names are touched, so everything else keeps its place.
func sortDepRuns(body []string, idx []int) {
	for start := 0; start < len(idx); {
		name := parseRef(body[idx[start]]).name
		end := start + 1
		for end < len(idx) && parseRef(body[idx[end]]).name == name {
			end++
		}
		if end-start > 1 {
			run := make([]string, 0, end-start)
			for _, i := range idx[start:end] {
				run = append(run, body[i])
			}
			slices.SortStableFunc(run, func(a, b string) int {
				ra, rb := parseRef(a), parseRef(b)
				if c := strings.Compare(ra.version, rb.version); c != 0 {
					return c
				}
				return strings.Compare(ra.source, rb.source)
			})
			for k, i := range idx[start:end] {
				body[i] = run[k]
			}
		}
		start = end
	}
}

// sortPackageRuns restores cargo's package order (name, semver, local
// before remote) among consecutive same-named [[package]] sections when one
// of them was masked. Trailing blank lines stay in place.
func sortPackageRuns(secs []*lockSection) {
	for start := 0; start < len(secs); {
		end := start + 1
		if secs[start].isPackage {
			for end < len(secs) && secs[end].isPackage && secs[end].name == secs[start].name {
				end++
			}
		}
		run := secs[start:end]
		if len(run) > 1 && slices.ContainsFunc(run, func(s *lockSection) bool { return s.masked }) {
			sorted := slices.Clone(run)
			slices.SortStableFunc(sorted, func(a, b *lockSection) int {
				if c := compareSemver(a.version, b.version); c != 0 {
					return c
				}
				// Path sources (omitted in the lock) sort before remote ones.
				return strings.Compare(a.source, b.source)
			})
			trailing := make([][]string, len(run))
			for k, s := range run {
				trailing[k] = s.trailing
			}
			copy(run, sorted)
			for k, s := range run {
				s.trailing = trailing[k]
			}
		}
		start = end
	}
}

// compareSemver orders versions like the semver crate: numeric core, then a
// pre-release sorts before the release, then build metadata.
func compareSemver(a, b string) int {
	ac, apre, abuild := splitSemver(a)
	bc, bpre, bbuild := splitSemver(b)
	if c := compareIdents(ac, bc); c != 0 {
		return c
	}
	switch {
	case apre == "" && bpre != "":
		return 1
	case apre != "" && bpre == "":
		return -1
	}
	if c := compareIdents(apre, bpre); c != 0 {
		return c
	}
	return compareIdents(abuild, bbuild)
}

func splitSemver(v string) (core, pre, build string) {
	v, build, _ = strings.Cut(v, "+")
	core, pre, _ = strings.Cut(v, "-")
	return core, pre, build
}

// compareIdents compares dot-separated identifiers: numeric ones
// numerically and before alphanumeric ones, a shorter prefix first.
func compareIdents(a, b string) int {
	if a == b {
		return 0
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	if a == "" {
		as = nil
	}
	if b == "" {
		bs = nil
	}
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, y := as[i], bs[i]
		xn, yn := isNumeric(x), isNumeric(y)
		var c int
		switch {
		case xn && yn:
			x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
			if c = len(x) - len(y); c == 0 {
				c = strings.Compare(x, y)
			}
		case xn:
			c = -1
		case yn:
			c = 1
		default:
			c = strings.Compare(x, y)
		}
		if c != 0 {
			if c < 0 {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(as) < len(bs):
		return -1
	case len(as) > len(bs):
		return 1
	}
	return 0
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
