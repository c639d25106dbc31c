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
