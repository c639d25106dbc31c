// Package cargo holds what smelt knows about cargo's behaviour: how to read
// its failures, and how to build its command lines.
package cargo

import (
	"regexp"
	"strings"
)

var (
	reChecksum  = regexp.MustCompile("checksum for `([^`]+)` changed between lock files")
	reVerify    = regexp.MustCompile("failed to verify the checksum of `([^`]+)`")
	reNeedsLock = regexp.MustCompile(`lock file .* needs to be updated but --locked was passed|cannot update the lock file .* because --locked was passed`)
	reParseLock = regexp.MustCompile(`failed to parse lock file at: (\S+)`)
	reTOMLAt    = regexp.MustCompile(`TOML parse error at (line \d+, column \d+)`)
	reNoMatch   = regexp.MustCompile("no matching package named `([^`]+)` found")
	reSelect    = regexp.MustCompile("failed to select a version for the requirement `(([^` ]+) = [^`]+)`(?:\ncandidate versions found which didn't match: (.+))?")
)

// Explain turns cargo's stderr into one sentence naming the file or crate at
// fault and what to do. It returns "" when it has nothing better than cargo's
// own words.
func Explain(stderr string) string {
	if m := reChecksum.FindStringSubmatch(stderr); m != nil {
		return "Cargo.lock: the checksum of crate " + m[1] + " does not match the registry's; restore Cargo.lock (e.g. `git checkout Cargo.lock`) or run `cargo update -p " + crateName(m[1]) + "`"
	}
	if m := reVerify.FindStringSubmatch(stderr); m != nil {
		return "Cargo.lock: the downloaded crate " + m[1] + " does not match the checksum in Cargo.lock; restore Cargo.lock or run `cargo update -p " + crateName(m[1]) + "`"
	}
	if reNeedsLock.MatchString(stderr) {
		return "Cargo.lock is out of date with Cargo.toml; run `cargo update --workspace` (or `cargo generate-lockfile`) and commit Cargo.lock"
	}
	if m := reParseLock.FindStringSubmatch(stderr); m != nil {
		rest := stderr[strings.Index(stderr, m[0])+len(m[0]):]
		detail := FirstError(rest)
		if loc := reTOMLAt.FindStringSubmatch(rest); loc != nil && !strings.Contains(detail, loc[0]) {
			detail = loc[1] + ": " + detail
		}
		return m[1] + " cannot be parsed (" + detail + "); fix it or regenerate it with `cargo generate-lockfile`"
	}
	if m := reSelect.FindStringSubmatch(stderr); m != nil {
		have := ""
		if m[3] != "" {
			have = " (there is " + m[3] + ")"
		}
		return "no version of " + m[2] + " matches `" + m[1] + "`" + have + "; change the requirement in Cargo.toml, or run `cargo update -p " + m[2] + "` and commit Cargo.lock"
	}
	if m := reNoMatch.FindStringSubmatch(stderr); m != nil {
		return "Cargo.lock is out of date: a Cargo.toml asks for " + m[1] + ", which Cargo.lock does not list; run `cargo update --workspace` and commit Cargo.lock"
	}
	return ""
}

// FirstError returns cargo's first error with its causes, on one line.
func FirstError(stderr string) string {
	var parts []string
	lines := strings.Split(stderr, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "error") && len(parts) == 0 {
			parts = append(parts, strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(l, "error:"), "error")))
			continue
		}
		if len(parts) > 0 && l == "Caused by:" && i+1 < len(lines) {
			parts = append(parts, strings.TrimSpace(lines[i+1]))
			i++
		}
	}
	if len(parts) == 0 {
		for i := len(lines) - 1; i >= 0; i-- {
			if l := strings.TrimSpace(lines[i]); l != "" {
				return l
			}
		}
		return ""
	}
	return strings.Join(parts, ": ")
}

// crateName takes "itoa v1.0.19" to "itoa".
func crateName(s string) string {
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i]
	}
	return s
}

var (
	reErrorLine = regexp.MustCompile(`^error(\[E\d+\])?: (.*)$`)
	reLocation  = regexp.MustCompile(`^\s*--> (\S+:\d+:\d+)`)
	reSnippet   = regexp.MustCompile(`^(\d+ )?\|`)
)

// Headline says in one line why a cargo command failed: cargo's (or
// rustc's) first error, with where it points, its causes, and the error of
// a tool cargo ran (rustc asked about a target it does not know); "" when
// stderr holds no error line.
func Headline(stderr string) string {
	lines := strings.Split(stderr, "\n")
	start := -1
	var parts []string
	for i, l := range lines {
		if m := reErrorLine.FindStringSubmatch(l); m != nil {
			start, parts = i, []string{m[2]}
			if m[1] != "" {
				parts[0] += " (" + strings.Trim(m[1], "[]") + ")"
			}
			break
		}
	}
	if start < 0 {
		return ""
	}
	if strings.HasSuffix(parts[0], ":") && start+1 < len(lines) {
		// A list follows ("not supported by the following packages:").
		parts[0] += " " + strings.TrimSpace(lines[start+1])
		start++
	}
	for i := start + 1; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		switch {
		case i <= start+2 && reLocation.MatchString(lines[i]):
			parts[len(parts)-1] += " at " + reLocation.FindStringSubmatch(lines[i])[1]
		case l == "Caused by:" && i+1 < len(lines):
			c := strings.TrimSpace(lines[i+1])
			i++
			if !strings.HasPrefix(c, "process didn't exit successfully") { // a command line, often long
				parts = append(parts, c)
			}
			if strings.HasPrefix(c, "TOML parse error at") {
				// What is wrong follows the quoted line and its caret.
				for j := i + 1; j < len(lines); j++ {
					d := strings.TrimSpace(lines[j])
					if d != "" && !reSnippet.MatchString(d) {
						parts[len(parts)-1] += " (" + d + ")"
						i = j
						break
					}
				}
			}
		case strings.HasPrefix(l, "error: ") && lines[i] != l:
			// An indented error: a tool's own stderr that cargo quotes.
			parts = append(parts, strings.TrimPrefix(l, "error: "))
		case reErrorLine.MatchString(lines[i]):
			return strings.Join(parts, ": ") // the next error: one is enough
		}
	}
	return strings.Join(parts, ": ")
}
