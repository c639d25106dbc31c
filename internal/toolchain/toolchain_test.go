package toolchain

import "testing"

// A toolchain that is not installed: rustup's error, not its progress.
func TestErrorLine(t *testing.T) {
	for in, want := range map[string]string{
		"info: syncing channel updates for 1.999.0-x86_64-unknown-linux-gnu\nerror: could not download nonexistent rust version `1.999.0-x86_64-unknown-linux-gnu`\n\nCaused by:\n": "error: could not download nonexistent rust version `1.999.0-x86_64-unknown-linux-gnu`",
		"error: toolchain 'x' is not installed\nhelp: run `rustup toolchain install`\n":                                                                                             "error: toolchain 'x' is not installed",
		"\nsomething odd\nmore\n": "something odd",
		"":                        "",
	} {
		if got := errorLine(in); got != want {
			t.Errorf("errorLine(%q) = %q, want %q", in, got, want)
		}
	}
}
