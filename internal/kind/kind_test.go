package kind

import (
	"slices"
	"testing"
)

// The order kinds are listed in (error messages, smelt.toml comments) is
// the one smelt has always used.
func TestNamesOrder(t *testing.T) {
	want := []string{"deps", "clippy", "test", "fmt", "doc", "package", "tarpaulin", "coverage", "nextest", "doctest", "deny", "command"}
	if got := Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
}

func TestSpecs(t *testing.T) {
	for _, name := range Names() {
		k := Get(name)
		if k.Commands == nil {
			t.Errorf("%s has no commands", name)
		}
		if k.BuildsOwn && (k.Warmup == nil || !k.KeepsArtifacts) {
			t.Errorf("%s builds its own code for a deps step but has no warm-up or keeps no target/", name)
		}
		for _, r := range k.Requires {
			if !k.Takes(r) {
				t.Errorf("%s requires %s but does not take it", name, r)
			}
		}
	}
	if Known("bogus") || Get("bogus").KeepsArtifacts || Get("bogus").Commands != nil {
		t.Errorf("an unknown kind must do nothing")
	}
	if got := Taking("fail-under"); !slices.Equal(got, []string{"coverage", "tarpaulin"}) {
		t.Errorf("Taking(fail-under) = %v", got)
	}
}

// DefaultArgs never hands out the Spec's own slice.
func TestDefaultArgsFresh(t *testing.T) {
	a := DefaultArgs("clippy")
	a[0] = "changed"
	if Get("clippy").DefaultArgs[0] == "changed" {
		t.Error("DefaultArgs aliases the Spec")
	}
}

func TestTestCounts(t *testing.T) {
	tests := []struct{ log, want string }{
		{"", "0 tests passed"},
		{"test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured\ntest result: FAILED. 2 passed; 1 failed; 0 ignored", "5 tests passed, 1 ignored, 1 failed"},
		{"     Summary [   0.1s] 4 tests run: 4 passed, 2 skipped", "4 tests passed, 2 skipped"},
	}
	for _, tt := range tests {
		for _, k := range []string{"test", "nextest", "doctest"} {
			if got := Get(k).Summary([]byte(tt.log)); got != tt.want {
				t.Errorf("%s %q: %q, want %q", k, tt.log, got, tt.want)
			}
		}
	}
	for _, name := range Names() {
		if k := Get(name); (k.Output == TestCounts) != (k.Summary != nil) {
			t.Errorf("%s: Output %d with Summary %v", name, k.Output, k.Summary != nil)
		}
	}
}
