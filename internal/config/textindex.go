package config

import (
	"slices"
	"strconv"
	"strings"
)

// textIndex locates tables and keys in the raw text, because go-toml only
// gives positions for errors, and validation errors need lines too.
type textIndex struct {
	lines []string
	first map[string]int // path joined by "\x00" -> first line it or anything under it appears
	paths []pathAt       // every header and key path, in file order
	steps []string       // step names in order of first appearance
}

type pathAt struct {
	path []string
	line int
}

// indexText scans line by line: headers set the current table, and
// `key = value` lines add keys under it. It is a scanner, not a TOML parser;
// it skips the bodies of multi-line strings, and lines it cannot read as a
// header or key (array continuations, comments) are ignored.
func indexText(data []byte) *textIndex {
	ix := &textIndex{lines: strings.Split(string(data), "\n"), first: map[string]int{}}
	var table []string
	inString := "" // delimiter of an open multi-line string
	for i, raw := range ix.lines {
		if inString != "" {
			if strings.Count(raw, inString)%2 == 1 {
				inString = ""
			}
			continue
		}
		s := strings.TrimSpace(raw)
		var path []string
		if strings.HasPrefix(s, "[") {
			inner := strings.TrimPrefix(strings.TrimPrefix(s, "["), "[")
			parts, rest, ok := parseKeyPath(inner)
			if !ok || !strings.HasPrefix(rest, "]") {
				continue
			}
			table, path = parts, parts
		} else {
			parts, rest, ok := parseKeyPath(s)
			if !ok || !strings.HasPrefix(rest, "=") {
				continue
			}
			path = append(slices.Clone(table), parts...)
			for _, delim := range []string{`"""`, `'''`} {
				if strings.Count(rest, delim)%2 == 1 {
					inString = delim
					break
				}
			}
		}
		ix.paths = append(ix.paths, pathAt{path, i + 1})
		for n := 1; n <= len(path); n++ {
			k := strings.Join(path[:n], "\x00")
			if _, seen := ix.first[k]; !seen {
				ix.first[k] = i + 1
				if n == 2 && path[0] == "step" {
					ix.steps = append(ix.steps, path[1])
				}
			}
		}
	}
	return ix
}

// line gives the line of a table or key path, falling back to the nearest
// enclosing table that was found (a key inherited or written inline has no
// line of its own), or 0.
func (ix *textIndex) line(path ...string) int {
	for n := len(path); n > 0; n-- {
		if l, ok := ix.first[strings.Join(path[:n], "\x00")]; ok {
			return l
		}
	}
	return 0
}

func (ix *textIndex) text(line int) string {
	if line < 1 || line > len(ix.lines) {
		return ""
	}
	return ix.lines[line-1]
}

// parseKeyPath reads a dotted TOML key (bare, "basic" or 'literal' parts)
// from the start of s and returns the parts and the rest after spaces.
func parseKeyPath(s string) (parts []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		switch s[0] {
		case '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, "", false
			}
			part, err := strconv.Unquote(s[:end+1])
			if err != nil {
				part = s[1:end]
			}
			parts, s = append(parts, part), s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", false
			}
			parts, s = append(parts, s[1:end+1]), s[end+2:]
		default:
			end := 0
			for end < len(s) && isBareKeyChar(s[end]) {
				end++
			}
			if end == 0 {
				return nil, "", false
			}
			parts, s = append(parts, s[:end]), s[end:]
		}
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return parts, s, true
		}
		s = s[1:]
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
