// Package ui prints what smelt does: a line per step as it starts and ends,
// and what each running step is doing (on a terminal, a status area redrawn
// in place; elsewhere a plain line now and then), or JSON events for
// machines.
package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"smelt/internal/run"
)

// Mode is how much a printer says.
type Mode int

const (
	Normal  Mode = iota
	Quiet        // failures only (and the summary of a failed run)
	Verbose      // also every line the steps' commands print, after the step's name
)

// PlainEvery is how often, at most, a step running long gets a progress
// line when the output is not a terminal (a CI log).
const PlainEvery = 10 * time.Second

// Printer reports steps to a writer. It implements run.Observer.
type Printer struct {
	w     io.Writer
	json  bool
	live  bool // redraw a status area in place (only on a terminal)
	mode  Mode
	now   func() time.Time
	width func() int // the terminal's columns

	mu       sync.Mutex
	running  map[string]*step
	order    []string // running steps, in the order they started
	stop     chan struct{}
	done     chan struct{}
	lines    int       // status lines on screen
	lastDraw time.Time // when the status area was drawn
}

// step is what the printer knows of a running step.
type step struct {
	start time.Time
	prog  run.Progress
	said  time.Time // plain output: when its last line was printed
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// New returns a printer to f; asJSON prints one JSON object per event.
// On a terminal (TERM not "dumb") it redraws a status area; elsewhere it
// writes no control characters.
func New(f *os.File, asJSON bool, mode Mode) *Printer {
	live := !asJSON && IsTerminal(f) && os.Getenv("TERM") != "dumb"
	width := func() int {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
		return 80
	}
	p := newPrinter(f, asJSON, live, mode, time.Now, width)
	if !asJSON && mode != Quiet {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		every := time.Second
		if live {
			every = 250 * time.Millisecond
		}
		go p.tick(every)
	}
	return p
}

func newPrinter(w io.Writer, asJSON, live bool, mode Mode, now func() time.Time, width func() int) *Printer {
	return &Printer{w: w, json: asJSON, live: live, mode: mode, now: now, width: width, running: map[string]*step{}}
}

// Close stops the status area and clears it.
func (p *Printer) Close() {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	p.mu.Lock()
	p.clearStatus()
	p.mu.Unlock()
}

func (p *Printer) tick(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.Tick()
		}
	}
}

// Tick brings the screen up to date with the clock: on a terminal it
// redraws the status area, elsewhere it prints a progress line for each
// step whose last line is PlainEvery old.
func (p *Printer) Tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json || p.mode == Quiet {
		return
	}
	if p.live {
		p.clearStatus()
		p.drawStatus()
		return
	}
	now := p.now()
	for _, name := range p.order {
		s := p.running[name]
		if now.Sub(s.said) >= PlainEvery {
			s.said = now
			fmt.Fprintf(p.w, "  … %-12s %s\n", name, describe(s, now, false))
		}
	}
}

// clearStatus erases the status area; the cursor is then where it began.
func (p *Printer) clearStatus() {
	if p.lines > 0 {
		fmt.Fprintf(p.w, "\r\033[%dA\033[J", p.lines)
		p.lines = 0
	}
}

// maxStatus is the most running steps the status area shows.
const maxStatus = 8

// drawStatus writes a line per running step, each cut to the terminal's
// width so that none wraps (the area is erased by counting lines).
func (p *Printer) drawStatus() {
	if !p.live || len(p.order) == 0 {
		return
	}
	now := p.now()
	width := p.width()
	var b strings.Builder
	for i, name := range p.order {
		line := fmt.Sprintf("  … %-12s %s", name, describe(p.running[name], now, true))
		if i == maxStatus-1 && len(p.order) > maxStatus {
			line = fmt.Sprintf("  … and %d more", len(p.order)-i)
		}
		b.WriteString(cut(line, width-1) + "\n")
		p.lines++
		if i == maxStatus-1 {
			break
		}
	}
	io.WriteString(p.w, b.String())
	p.lastDraw = now
}

// cut shortens s to at most n characters.
func cut(s string, n int) string {
	r := []rune(s)
	if n < 1 || len(r) <= n {
		return s
	}
	return string(r[:n])
}

// describe says how a running step is doing: time spent, time left by
// its last run's duration, units done of its last run's, the crate cargo
// started last, tests passed. live: for the status area (a bar), else for
// a line of a log.
func describe(s *step, now time.Time, live bool) string {
	sep := ", "
	if live {
		sep = "  "
	}
	elapsed := now.Sub(s.start)
	parts := []string{duration(elapsed)}
	if last := time.Duration(s.prog.Last * float64(time.Second)); last > 0 {
		if left := last - elapsed; left >= time.Second {
			parts[0] += ", ~" + duration(left) + " left"
		} else {
			parts[0] += ", last run " + duration(last)
		}
	}
	pr := s.prog
	switch {
	case pr.Total > 0 && live:
		parts = append(parts, fmt.Sprintf("%s %d/%d", bar(pr.Units, pr.Total), pr.Units, max(pr.Total, pr.Units)))
	case pr.Total > 0:
		parts = append(parts, fmt.Sprintf("%d/%d units", pr.Units, max(pr.Total, pr.Units)))
	case pr.Units > 0:
		parts = append(parts, fmt.Sprintf("%d units", pr.Units))
	}
	if pr.Crate != "" {
		parts = append(parts, pr.Crate)
	}
	if pr.Tests > 0 {
		parts = append(parts, fmt.Sprintf("%d tests passed", pr.Tests))
	}
	return strings.Join(parts, sep)
}

// bar draws done of total as cargo does: [=====>    ].
func bar(done, total int) string {
	const n = 20
	k := n * min(done, total) / total
	if k == n {
		return "[" + strings.Repeat("=", n) + "]"
	}
	return "[" + strings.Repeat("=", k) + ">" + strings.Repeat(" ", n-k-1) + "]"
}

// duration is a short rendering: 7s, 1m05s, 1h02m.
func duration(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm", s/3600, s/60%60)
	}
}

// println prints a line above the status area.
func (p *Printer) println(format string, args ...any) {
	p.clearStatus()
	fmt.Fprintf(p.w, format+"\n", args...)
	p.drawStatus()
}

func (p *Printer) event(v map[string]any) {
	b, _ := json.Marshal(v)
	fmt.Fprintln(p.w, string(b))
}

// Info prints a line of context (the project, the store).
func (p *Printer) Info(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		p.event(map[string]any{"event": "info", "message": fmt.Sprintf(format, args...)})
		return
	}
	if p.mode != Quiet {
		p.println(format, args...)
	}
}

// Warn prints one warning line (or a JSON warning event).
func (p *Printer) Warn(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		p.event(map[string]any{"event": "warning", "message": fmt.Sprintf(format, args...)})
		return
	}
	p.println("warning: "+format, args...)
}

// Started implements run.Observer.
func (p *Printer) Started(name, kind, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.running[name] = &step{start: now, said: now}
	p.order = append(p.order, name)
	if p.json {
		p.event(map[string]any{"event": "start", "step": name, "kind": kind, "reason": reason})
		return
	}
	if p.mode != Quiet {
		p.println("  ▸ %-12s running (%s)", name, reason)
	}
}

// Progress implements run.Observer. On a terminal a change redraws the
// status area, at most ten times a second.
func (p *Printer) Progress(name string, pr run.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.running[name]
	if s == nil {
		return
	}
	s.prog = pr
	if p.live && p.mode != Quiet && p.now().Sub(p.lastDraw) >= 100*time.Millisecond {
		p.clearStatus()
		p.drawStatus()
	}
}

// Output implements run.Observer: with Verbose, each line a step's command
// prints, after the step's name.
func (p *Printer) Output(name, line string) {
	if p.mode != Verbose {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		p.event(map[string]any{"event": "output", "step": name, "line": line})
		return
	}
	p.println("%s | %s", name, line)
}

// Finished implements run.Observer.
func (p *Printer) Finished(r *run.StepReport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.running[r.Name]; ok {
		delete(p.running, r.Name)
		for i, n := range p.order {
			if n == r.Name {
				p.order = append(p.order[:i], p.order[i+1:]...)
				break
			}
		}
	}
	if p.json {
		ev := map[string]any{"event": "finish", "step": r.Name, "kind": r.Kind, "status": r.Status.String(), "seconds": r.Seconds}
		if r.Err != nil {
			ev["error"] = r.Err.Error()
		}
		if r.Log != "" {
			ev["log"] = r.Log
		}
		if len(r.Tail) > 0 {
			ev["tail"] = r.Tail
		}
		if r.Reason != "" {
			ev["reason"] = r.Reason
		}
		if r.Result != nil && r.Result.Summary != "" {
			ev["summary"] = r.Result.Summary
		}
		if r.Result != nil && r.Result.Units > 0 && r.Status == run.Built {
			ev["units"] = r.Result.Units
		}
		p.event(ev)
		return
	}
	if p.mode == Quiet && r.Status != run.Failed {
		return
	}
	summary := ""
	if r.Result != nil && r.Result.Summary != "" {
		summary = "  " + r.Result.Summary
	}
	switch r.Status {
	case run.Cached, run.Pulled:
		p.println("  ✓ %-12s %s%s", r.Name, r.Status, summary)
	case run.Built:
		p.println("  ✓ %-12s done in %.1fs%s", r.Name, r.Seconds, summary)
	case run.Skipped:
		p.println("  - %-12s skipped (%s)", r.Name, r.Reason)
	case run.Failed:
		p.println("  ✗ %-12s FAILED: %v", r.Name, r.Err)
		for _, l := range r.Tail {
			p.println("    │ %s", l)
		}
		if r.Log != "" {
			p.println("    full log: %s", r.Log)
		}
	}
}

// Totals is what a run's steps came to: how many of each status, and the
// time the cache saved (what the cached and pulled steps took when they
// were built).
type Totals struct {
	Steps                                  int
	Cached, Pulled, Built, Failed, Skipped int
	Saved                                  time.Duration
}

// Count adds up a report.
func Count(rep *run.Report) Totals {
	var t Totals
	for _, s := range rep.Steps {
		t.Steps++
		switch s.Status {
		case run.Cached:
			t.Cached++
		case run.Pulled:
			t.Pulled++
		case run.Built:
			t.Built++
		case run.Failed:
			t.Failed++
		case run.Skipped:
			t.Skipped++
		}
		if (s.Status == run.Cached || s.Status == run.Pulled) && s.Result != nil {
			t.Saved += time.Duration(s.Result.Seconds * float64(time.Second))
		}
	}
	return t
}

// Line renders the totals: "check: 6 steps: 4 cached, 2 built, 0 failed,
// 0 skipped (3.20s); the cache saved 1m05s". Pulled steps are named only
// when there are some.
func (t Totals) Line(verb string, elapsed time.Duration) string {
	pulled := ""
	if t.Pulled > 0 {
		pulled = fmt.Sprintf(" %d pulled,", t.Pulled)
	}
	s := fmt.Sprintf("%s: %d steps: %d cached,%s %d built, %d failed, %d skipped (%.2fs)", verb, t.Steps,
		t.Cached, pulled, t.Built, t.Failed, t.Skipped, elapsed.Seconds())
	if t.Cached+t.Pulled > 0 {
		saved := fmt.Sprintf("%.1fs", t.Saved.Seconds())
		if t.Saved >= time.Minute {
			saved = duration(t.Saved)
		}
		s += "; the cache saved " + saved
	}
	return s
}

// Summary prints the totals of a run.
func (p *Printer) Summary(verb string, rep *run.Report, elapsed time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := Count(rep)
	if p.json {
		p.event(map[string]any{"event": "summary", "command": verb, "cached": t.Cached, "pulled": t.Pulled, "built": t.Built,
			"failed": t.Failed, "skipped": t.Skipped, "seconds": elapsed.Seconds(), "saved_seconds": t.Saved.Seconds()})
		return
	}
	if p.mode == Quiet && t.Failed+t.Skipped == 0 {
		return
	}
	p.println("%s", t.Line(verb, elapsed))
}
