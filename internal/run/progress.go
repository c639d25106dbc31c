package run

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"smelt/internal/cargo"
	"smelt/internal/kind"
	"smelt/internal/plan"
)

// Progress is what a running step has done so far, read from its
// commands' output as it comes.
type Progress struct {
	Crate string  // the crate cargo started compiling (or checking, documenting) last
	Units int     // units done: cargo's compiler-artifact messages, fresh ones too
	Total int     // the units of the step's last run; 0 when unknown
	Tests int     // tests passed so far
	Last  float64 // seconds the step's last run took; 0 when unknown
}

// messageKinds are cargo's subcommands that report each unit as a JSON
// message with --message-format (json-render-diagnostics keeps the
// diagnostics rendered, on stderr, for the log).
var messageKinds = map[string]bool{"build": true, "check": true, "test": true, "clippy": true, "doc": true, "rustc": true}

// withMessages adds --message-format=json-render-diagnostics to a cargo
// command that reports units that way, for progress. It is added as the
// command runs, not in plan: the message format changes no unit cargo
// builds, so it stays out of the key.
func withMessages(k string, c cargo.Command) cargo.Command {
	if kind.Get(k).UserCommand || c.Program != "cargo" || len(c.Args) == 0 || !messageKinds[c.Args[0]] {
		return c
	}
	for _, a := range c.Args {
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "--message-format") {
			return c // the step's own choice (or already JSON)
		}
	}
	c.Args = append([]string{c.Args[0], "--message-format=json-render-diagnostics"}, c.Args[1:]...)
	c.JSON = true
	return c
}

var (
	// cargo's status line as a unit starts ("   Compiling itoa v1.0.19").
	reUnitStart = regexp.MustCompile(`^\s+(?:Compiling|Checking|Documenting) (\S+) v`)
	// A test passed: libtest's line, or nextest's.
	reTestOK = regexp.MustCompile(`^test .* \.\.\. ok$|^\s+PASS \[`)
)

// tracker follows one step's progress and tells the observer.
type tracker struct {
	e    *engine
	name string
	mu   sync.Mutex
	p    Progress
}

// newTracker starts following step n, with the total and the time of its
// last run in this project, and tells the observer.
func (e *engine) newTracker(n *plan.Node) *tracker {
	t := &tracker{e: e, name: n.Name()}
	if last := e.lastRun(n); last != nil {
		t.p.Total, t.p.Last = last.Units, last.Seconds
	}
	t.notify(t.p)
	return t
}

// lastRun is the result of the step's last success in this project.
func (e *engine) lastRun(n *plan.Node) *Result {
	s := e.readState(n.Name())
	if s == nil || s.LastGood == "" {
		return nil
	}
	r, err := lookupResult(e.p.st, s.LastGood)
	if err != nil {
		return nil
	}
	return r
}

func (t *tracker) notify(p Progress) {
	if t.e.opt.Observer != nil {
		t.e.mu.Lock()
		t.e.opt.Observer.Progress(t.name, p)
		t.e.mu.Unlock()
	}
}

func (t *tracker) update(f func(p *Progress)) {
	t.mu.Lock()
	f(&t.p)
	p := t.p
	t.mu.Unlock()
	t.notify(p)
}

func (t *tracker) units() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.p.Units
}

// text reads one line a command printed (not a JSON message).
func (t *tracker) text(line string) {
	if m := reUnitStart.FindStringSubmatch(line); m != nil {
		t.update(func(p *Progress) { p.Crate = m[1] })
	} else if reTestOK.MatchString(line) {
		t.update(func(p *Progress) { p.Tests++ })
	}
}

// lineWriter calls fn with each line written to it, without its newline;
// flush passes on a last line that has none.
type lineWriter struct {
	fn  func(line []byte)
	buf []byte
}

// maxLine bounds what a lineWriter holds of a line without a newline.
const maxLine = 1 << 20

func (w *lineWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	if len(w.buf) > maxLine && bytes.IndexByte(w.buf, '\n') < 0 {
		w.flush()
	}
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.fn(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) == 0 {
		w.buf = nil // let the backing array go
	}
	return len(b), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.fn(w.buf)
		w.buf = nil
	}
}

// note writes one of smelt's own lines to the step's log and, like the
// commands' output, to the observer (--verbose).
func (sr *stepRun) note(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	fmt.Fprintln(sr.logf, line)
	if o := sr.e.opt.Observer; o != nil {
		sr.e.mu.Lock()
		o.Output(sr.n.Name(), line)
		sr.e.mu.Unlock()
	}
}

// streams returns the writers for a command's stdout and stderr: every
// line goes to the step's log (but cargo's JSON messages, which are read
// instead), to the progress tracker and to the observer (--verbose); flush
// passes on what is left once the command has ended.
func (sr *stepRun) streams(json bool) (stdout, stderr io.Writer, flush func()) {
	logLine := func(line []byte) {
		sr.logf.Write(append(line, '\n'))
		s := string(line)
		sr.prog.text(s)
		if o := sr.e.opt.Observer; o != nil {
			sr.e.mu.Lock()
			o.Output(sr.n.Name(), s)
			sr.e.mu.Unlock()
		}
	}
	out := &lineWriter{fn: func(line []byte) {
		if json && len(line) > 0 && line[0] == '{' && sr.message(line) {
			return
		}
		logLine(line)
	}}
	errw := &lineWriter{fn: logLine}
	return out, errw, func() { out.flush(); errw.flush() }
}

// message reads one of cargo's JSON messages: a unit done, and the
// executables built (package binaries, coverage's test executables). It
// reports false for a line that is not one.
func (sr *stepRun) message(line []byte) bool {
	var m struct {
		Reason     string `json:"reason"`
		PackageID  string `json:"package_id"`
		Executable string `json:"executable"`
		Target     struct {
			Kind []string `json:"kind"`
			Name string   `json:"name"`
		} `json:"target"`
		Profile struct {
			Test bool `json:"test"`
		} `json:"profile"`
	}
	if json.Unmarshal(line, &m) != nil || m.Reason == "" {
		return false
	}
	if m.Reason != "compiler-artifact" {
		return true
	}
	sr.prog.update(func(p *Progress) { p.Units++ })
	if m.Executable == "" {
		return true
	}
	if m.Profile.Test {
		// Cargo names it as the sandbox shows it; coverage runs it later,
		// outside.
		if exe := sr.view.real(m.Executable); !slices.Contains(sr.testExes, exe) {
			sr.testExes = append(sr.testExes, exe)
		}
		return true
	}
	if !contains(m.Target.Kind, "bin") {
		return true
	}
	rel, err := filepath.Rel(sr.view.target, m.Executable)
	if err != nil || strings.HasPrefix(rel, "..") {
		return true
	}
	sr.bins[m.Target.Name] = packageName(m.PackageID)
	sr.binPaths[m.Target.Name] = filepath.ToSlash(rel)
	return true
}
