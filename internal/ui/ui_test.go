package ui

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"smelt/internal/run"
)

// clock is a fake clock the tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func width(n int) func() int             { return func() int { return n } }
func hasControl(s string) bool           { return strings.ContainsAny(s, "\x1b\r") }
func lines(s string) []string            { return strings.Split(strings.TrimRight(s, "\n"), "\n") }
func built(name string, secs float64) *run.StepReport {
	return &run.StepReport{Name: name, Status: run.Built, Seconds: secs, Result: &run.Result{Seconds: secs}}
}

// Without a terminal: a line as a step starts and ends, and a progress line
// at most every PlainEvery while it runs, with no control characters.
func TestPlainProgress(t *testing.T) {
	var out bytes.Buffer
	c := newClock()
	p := newPrinter(&out, false, false, Normal, c.now, width(80))
	p.Started("deps", "deps", "first run")
	p.Progress("deps", run.Progress{Total: 40, Last: 60})
	p.Progress("deps", run.Progress{Total: 40, Last: 60, Units: 12, Crate: "itoa"})
	for _, step := range []struct {
		after time.Duration
		want  string // the new line, "" for none
	}{
		{time.Second, ""},
		{8 * time.Second, ""},
		{time.Second, "  … deps         10s, ~50s left, 12/40 units, itoa"},
		{5 * time.Second, ""},
		{4 * time.Second, ""},
		{time.Second, "  … deps         20s, ~40s left, 12/40 units, itoa"},
	} {
		before := out.Len()
		c.advance(step.after)
		p.Tick()
		if got := strings.TrimSuffix(out.String()[before:], "\n"); got != step.want {
			t.Errorf("after %v more: printed %q, want %q", step.after, got, step.want)
		}
	}
	p.Finished(built("deps", 21))
	p.Summary("check", &run.Report{Steps: []*run.StepReport{built("deps", 21)}}, 21*time.Second)
	got := lines(out.String())
	if got[0] != "  ▸ deps         running (first run)" || got[len(got)-2] != "  ✓ deps         done in 21.0s" {
		t.Errorf("start and end lines:\n%s", out.String())
	}
	if hasControl(out.String()) {
		t.Errorf("plain output holds control characters: %q", out.String())
	}
}

// On a terminal: a status line per running step, redrawn in place, cut to
// the terminal's width, and erased before each line printed above it.
func TestLiveProgress(t *testing.T) {
	var out bytes.Buffer
	c := newClock()
	cols := 100
	p := newPrinter(&out, false, true, Normal, c.now, func() int { return cols })
	p.Started("deps", "deps", "first run")
	p.Started("fmt", "fmt", "first run")
	c.advance(3 * time.Second)
	p.Progress("deps", run.Progress{Units: 5, Total: 20, Crate: "serde_derive", Last: 10})
	screen := out.String()
	want := "  … deps         3s, ~7s left  [=====>              ] 5/20  serde_derive"
	if !strings.Contains(screen, want+"\n") {
		t.Errorf("the status area lacks %q:\n%q", want, screen)
	}
	if !strings.Contains(screen, "  … fmt          3s\n") {
		t.Errorf("the status area lacks fmt's line:\n%q", screen)
	}
	// A second change within 100 ms waits for the next tick.
	before := out.Len()
	c.advance(50 * time.Millisecond)
	p.Progress("deps", run.Progress{Units: 6, Total: 20, Crate: "syn", Last: 10})
	if out.Len() != before {
		t.Errorf("redrew within 100 ms: %q", out.String()[before:])
	}
	c.advance(200 * time.Millisecond)
	p.Tick()
	if s := out.String()[before:]; !strings.HasPrefix(s, "\r\033[2A\033[J") || !strings.Contains(s, "6/20  syn") {
		t.Errorf("the tick did not erase two lines and redraw: %q", s)
	}
	// A test step: tests passed so far, units above the last run's total.
	p.Progress("fmt", run.Progress{Units: 3, Total: 2, Tests: 7})
	c.advance(time.Second)
	p.Tick()
	if s := out.String(); !strings.Contains(s, "  … fmt          4s  [====================] 3/3  7 tests passed\n") {
		t.Errorf("no test progress: %q", s[before:])
	}
	before = out.Len()
	p.Finished(built("fmt", 4))
	if s := out.String()[before:]; !strings.HasPrefix(s, "\r\033[2A\033[J  ✓ fmt          done in 4.0s\n  … deps") {
		t.Errorf("a step's end is not printed above the status area: %q", s)
	}
	// A narrow terminal: no line wraps.
	cols = 20
	before = out.Len()
	c.advance(time.Second)
	p.Tick()
	if s := out.String()[before:]; s != "\r\033[1A\033[J  … deps         5s\n" {
		t.Errorf("the line is not cut to 19 columns: %q", s)
	}
	p.Finished(built("deps", 4))
	before = out.Len()
	p.Close()
	if s := out.String()[before:]; s != "" {
		t.Errorf("closing with no step running wrote %q", s)
	}
}

func TestQuietAndVerbose(t *testing.T) {
	var out bytes.Buffer
	c := newClock()
	p := newPrinter(&out, false, false, Quiet, c.now, width(80))
	p.Info("smelt check")
	p.Started("deps", "deps", "first run")
	p.Output("deps", "   Compiling itoa v1.0.19")
	c.advance(time.Minute)
	p.Tick()
	p.Finished(built("deps", 60))
	ok := &run.Report{Steps: []*run.StepReport{built("deps", 60)}}
	p.Summary("check", ok, time.Minute)
	if out.Len() != 0 {
		t.Errorf("--quiet printed on success: %q", out.String())
	}
	fail := &run.StepReport{Name: "clippy", Status: run.Failed, Err: errors.New("`cargo clippy` failed")}
	p.Finished(fail)
	p.Summary("check", &run.Report{Steps: []*run.StepReport{fail}}, time.Second)
	if s := out.String(); !strings.Contains(s, "✗ clippy       FAILED: `cargo clippy` failed") || !strings.Contains(s, "1 failed") {
		t.Errorf("--quiet hid a failure: %q", s)
	}

	out.Reset()
	p = newPrinter(&out, false, false, Verbose, c.now, width(80))
	p.Started("deps", "deps", "first run")
	p.Output("deps", "   Compiling itoa v1.0.19")
	if got := lines(out.String()); len(got) != 2 || got[1] != "deps |    Compiling itoa v1.0.19" {
		t.Errorf("--verbose printed %q", out.String())
	}
	out.Reset()
	p = newPrinter(&out, false, false, Normal, c.now, width(80))
	p.Output("deps", "   Compiling itoa v1.0.19")
	if out.Len() != 0 {
		t.Errorf("the commands' output printed without --verbose: %q", out.String())
	}
}

// The summary says what the cache did, and the time it saved: what the
// cached steps took when they were built.
func TestSummary(t *testing.T) {
	cached := func(name string, secs float64) *run.StepReport {
		return &run.StepReport{Name: name, Status: run.Cached, Result: &run.Result{Seconds: secs}}
	}
	for _, tc := range []struct {
		name  string
		steps []*run.StepReport
		want  string
	}{
		{"all built", []*run.StepReport{built("deps", 30), built("test", 2)},
			"check: 2 steps: 0 cached, 2 built, 0 failed, 0 skipped (3.00s)"},
		{"some cached", []*run.StepReport{cached("deps", 61.5), cached("clippy", 4), built("test", 2)},
			"check: 3 steps: 2 cached, 1 built, 0 failed, 0 skipped (3.00s); the cache saved 1m06s"},
		{"under a minute", []*run.StepReport{cached("deps", 2.25), {Name: "test", Status: run.Failed}, {Name: "crate", Status: run.Skipped}},
			"check: 3 steps: 1 cached, 0 built, 1 failed, 1 skipped (3.00s); the cache saved 2.2s"},
		{"pulled", []*run.StepReport{{Name: "deps", Status: run.Pulled, Result: &run.Result{Seconds: 100}}, cached("test", 20)},
			"check: 2 steps: 1 cached, 1 pulled, 0 built, 0 failed, 0 skipped (3.00s); the cache saved 2m00s"},
	} {
		var out bytes.Buffer
		p := newPrinter(&out, false, false, Normal, newClock().now, width(80))
		p.Summary("check", &run.Report{Steps: tc.steps}, 3*time.Second)
		if got := strings.TrimSuffix(out.String(), "\n"); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 1400 * time.Millisecond: "1s", 59 * time.Second: "59s", 65 * time.Second: "1m05s",
		3725 * time.Second: "1h02m",
	} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
}
