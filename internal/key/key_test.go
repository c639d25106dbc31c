package key

import "testing"

// Keys are stored: the same inputs must give the same key in every version
// of smelt (the hex strings were recorded before this package existed).
func TestKeyIsStable(t *testing.T) {
	const want = "5015344ca0de3c1018cc58958c5a1262f55a4fbc14d816378cc81de5f90cfeac"
	in := Inputs{"smelt": "1", "step": "s", "commands": "c", "source": "src", "vendor": "v", "toolchain": "tc",
		"tools": "tl", "cargo-config": "cc", "paths": "p", "artifacts": "a"}
	if got := in.Key(); got != want {
		t.Errorf("Key() = %s, want %s", got, want)
	}
	v := Values{Smelt: "1", Step: "s", Commands: "c", Source: "src", Toolchain: "tc", Tools: "tl", CargoConfig: "cc", Paths: "p",
		UsesDependencies: true, Vendor: "v", Inherits: true, Artifacts: "a"}
	if got := New(v).Key(); got != want {
		t.Errorf("New(...).Key() = %s, want %s", got, want)
	}
}

func TestNewLeavesOut(t *testing.T) {
	in := New(Values{Smelt: "1", Source: "s"})
	for _, k := range []string{Tools, Vendor, Artifacts} {
		if _, ok := in[k]; ok {
			t.Errorf("%s is in the inputs of a step without it", k)
		}
	}
	for k := range in {
		if Words[k] == "" {
			t.Errorf("input %s has no words for why", k)
		}
	}
	if in := New(Values{Inherits: true, Artifacts: "none"}); in[Artifacts] != "none" {
		t.Errorf("artifacts = %q", in[Artifacts])
	}
}
