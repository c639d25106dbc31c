package cargo

import (
	"bytes"
	"testing"
)

// Two dep-info files that cargo wrote for the same clippy unit, in two
// runs: the same files and variables in another order.
var (
	depInfoA = []byte("\x01\x00\x00\x00\xff\x01\x02\x00\x00\x00\x00\x0a\x00\x00\x00Cargo.toml\x00\x00\x0b\x00\x00\x00src/main.rs\x00" +
		"\x02\x00\x00\x00\x0b\x00\x00\x00CLIPPY_ARGS\x01\x04\x00\x00\x00-D_w\x0f\x00\x00\x00CLIPPY_CONF_DIR\x00")
	depInfoB = []byte("\x01\x00\x00\x00\xff\x01\x02\x00\x00\x00\x00\x0b\x00\x00\x00src/main.rs\x00\x00\x0a\x00\x00\x00Cargo.toml\x00" +
		"\x02\x00\x00\x00\x0f\x00\x00\x00CLIPPY_CONF_DIR\x00\x0b\x00\x00\x00CLIPPY_ARGS\x01\x04\x00\x00\x00-D_w")
)

func TestCanonicalDepInfo(t *testing.T) {
	a, okA := CanonicalDepInfo(depInfoA)
	b, okB := CanonicalDepInfo(depInfoB)
	if !okA || !okB {
		t.Fatalf("cannot read the dep-info files: %v %v", okA, okB)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("the same dep-info in another order gives other bytes:\n%q\n%q", a, b)
	}
	if !bytes.Equal(a, depInfoA) {
		t.Errorf("sorted dep-info changed: %q", a)
	}
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"other version", append([]byte{1, 0, 0, 0, 0xff, 2}, depInfoA[6:]...)},
		{"truncated", depInfoA[:len(depInfoA)-3]},
		{"trailing bytes", append(append([]byte{}, depInfoA...), 0)},
		{"a checksum", bytes.Replace(depInfoA, []byte("Cargo.toml\x00"), []byte("Cargo.toml\x01"), 1)},
		{"huge count", []byte{1, 0, 0, 0, 0xff, 1, 0xff, 0xff, 0xff, 0x7f}},
	} {
		if _, ok := CanonicalDepInfo(tt.data); ok {
			t.Errorf("%s: read as dep-info", tt.name)
		}
	}
}

func TestIsDepInfo(t *testing.T) {
	for p, want := range map[string]bool{
		"release/.fingerprint/seq-18ed94f95d6ff8d6/dep-bin-seq":                          true,
		"x86_64-unknown-linux-gnu/debug/.fingerprint/itoa-93bee6d51e4296ed/dep-lib-itoa": true,
		"release/.fingerprint/seq-18ed94f95d6ff8d6/bin-seq.json":                         false,
		"release/deps/dep-x": false,
	} {
		if IsDepInfo(p) != want {
			t.Errorf("IsDepInfo(%s) = %v", p, !want)
		}
	}
}

func TestIsIncremental(t *testing.T) {
	for p, want := range map[string]bool{
		"debug/incremental/seq-0h6xz341mjahi/s-hopiyfnv13-0k7dtaa.lock":                      true,
		"x86_64-unknown-linux-gnu/debug/incremental/seq-0h6xz341mjahi/s-a-b-c/dep-graph.bin": true,
		"debug/incremental": false,
		"debug/build/gen-0123456789abcdef/out/incremental/table.rs": false,
		"debug/deps/libseq-0123456789abcdef.rlib":                   false,
	} {
		if IsIncremental(p) != want {
			t.Errorf("IsIncremental(%s) = %v", p, !want)
		}
	}
}
