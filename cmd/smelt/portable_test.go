package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stepKeys reads the key of each step's last run (of the one project a
// store has seen), from the state smelt keeps to explain the next run.
func stepKeys(t *testing.T, store string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(store, "state", "projects", "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, f := range files {
		var st struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal([]byte(readAbs(t, f)), &st); err != nil || st.Key == "" {
			t.Fatalf("%s: %v", f, err)
		}
		step := strings.TrimSuffix(filepath.Base(f), ".json")
		if _, dup := keys[step]; dup {
			t.Fatalf("store %s has seen more than one project", store)
		}
		keys[step] = st.Key
	}
	return keys
}

// noSandbox skips a test that needs portable results where smelt said it
// cannot make them (no mount namespace here).
func noSandbox(t *testing.T, o outcome) {
	t.Helper()
	if strings.Contains(o.output, "results are not shared with other stores") {
		t.Skipf("no sandbox on this machine: %s", o.output)
	}
}

// Two empty stores at different paths, the project copied to two
// different paths: every step key agrees, and the package binaries are
// byte-identical. What cargo and rustc record of the vendored crates and
// the working directory must not depend on where the store lies; nor may
// rustc's incremental state (the dev profile), which no two builds share.
func TestPortableResults(t *testing.T) {
	for _, profile := range []string{"release", "dev"} {
		t.Run(profile, func(t *testing.T) { portableResults(t, profile) })
	}
}

func portableResults(t *testing.T, profile string) {
	a := newProject(t, "sequential")
	b := newProject(t, "sequential")
	for _, p := range []*project{a, b} {
		p.replace("smelt.toml", `profile = "release"`, `profile = "`+profile+`"`)
	}
	moved := filepath.Join(t.TempDir(), "elsewhere", "seq-copy")
	if err := os.MkdirAll(filepath.Dir(moved), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(b.dir, moved); err != nil {
		t.Fatal(err)
	}
	b.dir, b.store = moved, filepath.Join(t.TempDir(), "deeper", "other-store")
	noSandbox(t, a.mustSmelt("check"))
	b.mustSmelt("check")
	ka, kb := stepKeys(t, a.store), stepKeys(t, b.store)
	if len(ka) != 4 {
		t.Fatalf("store A has results for %d steps, want 4: %v", len(ka), ka)
	}
	agree := 0
	for step, k := range ka {
		if kb[step] == k {
			agree++
		} else {
			t.Errorf("step %s: key %.16s in one store, %.16s in the other", step, k, kb[step])
		}
	}
	t.Logf("%d of %d step keys agree", agree, len(ka))
	var bins [2][]byte
	for i, p := range []*project{a, b} {
		if o := p.mustSmelt("build"); o.status["crate"] != "cached" {
			t.Errorf("smelt build after check ran the package step again: %v", o.status)
		}
		bins[i] = []byte(readAbs(t, filepath.Join(p.dir, "result", "bin", "seq")))
	}
	if len(bins[0]) == 0 || !bytes.Equal(bins[0], bins[1]) {
		t.Errorf("the package binaries differ (%d and %d bytes)", len(bins[0]), len(bins[1]))
	}
}

// A store that built the project, then a few edits, each checked (every
// step warm-started from its own older target/), one of them adding a
// dependency that a later one removes, against an empty store that builds
// the last state cold: every step key agrees. A result must
// not carry its local history into the keys after it, or a developer's
// laptop and CI never share a key past the first step.
func TestWarmAgreesWithCold(t *testing.T) {
	warm := newProject(t, "sequential")
	noSandbox(t, warm.mustSmelt("check"))
	warm.replace("src/main.rs", "double(21)", "double(22)")
	warm.mustSmelt("check")
	// A dependency for a while: the warm starts keep its units.
	warm.replace("Cargo.toml", "itoa = \"1\"\n", "itoa = \"1\"\nfnv = \"1\"\n")
	warm.replace("src/main.rs", "fn main() {\n", "fn main() {\n    let _ = fnv::FnvHashMap::<u8, u8>::default();\n")
	warm.updateLock()
	warm.mustSmelt("check")
	warm.replace("Cargo.toml", "fnv = \"1\"\n", "")
	warm.replace("src/main.rs", "    let _ = fnv::FnvHashMap::<u8, u8>::default();\n", "")
	warm.updateLock()
	warm.replace("src/main.rs", "n * 2", "n + n")
	warm.mustSmelt("check")
	cold := newProject(t, "sequential")
	for _, f := range []string{"src/main.rs", "Cargo.toml", "Cargo.lock"} {
		cold.write(f, warm.read(f))
	}
	cold.mustSmelt("check")
	kw, kc := stepKeys(t, warm.store), stepKeys(t, cold.store)
	agree := 0
	for step, k := range kc {
		if kw[step] == k {
			agree++
		} else {
			t.Errorf("step %s: key %.16s warm, %.16s cold", step, kw[step], k)
		}
	}
	t.Logf("%d of %d step keys agree", agree, len(kc))
}
