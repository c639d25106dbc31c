package run

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The workspace's mtimes become their ranks: two stores that laid the
// same files out at other times, in the same order, send the same ones.
func TestMTimeRanks(t *testing.T) {
	ranks := func(base time.Time, gaps []time.Duration) []time.Time {
		dir := t.TempDir()
		var out []time.Time
		for i, g := range gaps {
			p := filepath.Join(dir, string(rune('a'+i)))
			os.WriteFile(p, nil, 0o644)
			mt := base.Add(g)
			os.Chtimes(p, mt, mt)
		}
		in := &inputs{}
		if err := in.mtimeRanks(dir); err != nil {
			t.Fatal(err)
		}
		for _, g := range gaps {
			out = append(out, in.canon[base.Add(g).UnixNano()])
		}
		return out
	}
	a := ranks(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), []time.Duration{0, 5 * time.Millisecond, 0, time.Hour})
	b := ranks(time.Date(2026, 6, 1, 0, 0, 0, 7, time.UTC), []time.Duration{0, time.Nanosecond, 0, time.Second})
	for i := range a {
		if !a[i].Equal(b[i]) || !canonical(a[i]) {
			t.Errorf("file %d: %v in one store, %v in the other", i, a[i], b[i])
		}
	}
	if !a[0].Equal(a[2]) || !a[0].Before(a[1]) || !a[1].Before(a[3]) {
		t.Errorf("ranks lost the order: %v", a)
	}
}

func TestEnvVars(t *testing.T) {
	got := envVars([]string{"B=1", "A=x=y", "B=2"})
	if len(got) != 2 || got[0].Name != "A" || got[0].Value != "x=y" || got[1].Name != "B" || got[1].Value != "2" {
		t.Errorf("envVars: %v", got)
	}
}
