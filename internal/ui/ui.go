// Package ui prints what smelt does: a line per step as it starts and ends,
// a live status line on a terminal, or JSON events for machines.
package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"smelt/internal/run"
)

// Printer reports steps to a writer. It implements run.Observer.
type Printer struct {
	w       io.Writer
	json    bool
	live    bool // redraw a status line (only on a terminal)
	mu      sync.Mutex
	running map[string]time.Time
	stop    chan struct{}
	status  bool // a status line is on screen
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// New returns a printer to f; asJSON prints one JSON object per event.
func New(f *os.File, asJSON bool) *Printer {
	p := &Printer{w: f, json: asJSON, running: map[string]time.Time{}}
	p.live = !asJSON && IsTerminal(f) && os.Getenv("TERM") != "dumb"
	if p.live {
		p.stop = make(chan struct{})
		go p.tick()
	}
	return p
}

// Close stops the live status line.
func (p *Printer) Close() {
	if p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
	p.mu.Lock()
	p.clearStatus()
	p.mu.Unlock()
}

func (p *Printer) tick() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.drawStatus()
			p.mu.Unlock()
		}
	}
}

func (p *Printer) clearStatus() {
	if p.status {
		fmt.Fprint(p.w, "\r\033[K")
		p.status = false
	}
}

func (p *Printer) drawStatus() {
	if !p.live || len(p.running) == 0 {
		p.clearStatus()
		return
	}
	names := make([]string, 0, len(p.running))
	for n := range p.running {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %ds", n, int(time.Since(p.running[n]).Seconds()))
	}
	fmt.Fprintf(p.w, "\r\033[K  … running: %s", strings.Join(parts, ", "))
	p.status = true
}

// println prints a line above the status line.
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
	p.println(format, args...)
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
	p.running[name] = time.Now()
	if p.json {
		p.event(map[string]any{"event": "start", "step": name, "kind": kind, "reason": reason})
		return
	}
	p.println("  ▸ %-12s running (%s)", name, reason)
}

// Finished implements run.Observer.
func (p *Printer) Finished(r *run.StepReport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.running, r.Name)
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
		p.event(ev)
		return
	}
	summary := ""
	if r.Result != nil && r.Result.Summary != "" {
		summary = "  " + r.Result.Summary
	}
	switch r.Status {
	case run.Cached:
		p.println("  ✓ %-12s cached%s", r.Name, summary)
	case run.Pulled:
		p.println("  ✓ %-12s pulled%s", r.Name, summary)
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

// Summary prints the totals of a run.
func (p *Printer) Summary(verb string, rep *run.Report, elapsed time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	counts := map[run.Status]int{}
	for _, s := range rep.Steps {
		counts[s.Status]++
	}
	if p.json {
		p.event(map[string]any{"event": "summary", "command": verb, "cached": counts[run.Cached], "pulled": counts[run.Pulled], "built": counts[run.Built],
			"failed": counts[run.Failed], "skipped": counts[run.Skipped], "seconds": elapsed.Seconds()})
		return
	}
	pulled := ""
	if n := counts[run.Pulled]; n > 0 {
		pulled = fmt.Sprintf(", %d pulled", n)
	}
	p.println("%s: %d steps: %d cached%s, %d built, %d failed, %d skipped (%.2fs)", verb, len(rep.Steps),
		counts[run.Cached], pulled, counts[run.Built], counts[run.Failed], counts[run.Skipped], elapsed.Seconds())
}
