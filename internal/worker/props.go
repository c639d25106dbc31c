package worker

import (
	"context"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"smelt/internal/batch"
)

// Property is one platform property a worker offers (a key may come more
// than once: "tool" is one per tool found).
type Property struct{ Key, Value string }

// The property keys a worker advertises. An engine matches only the keys
// its scheduler declares (BuildGrid: match-property-keys), and an action
// runs on a worker iff every matched property it names is among the
// worker's, as exact strings.
const (
	KeyOSFamily = "OSFamily"
	KeyISA      = "ISA"
	KeyRustc    = "rustc-version" // RustcVersion of `rustc -vV`
	KeyTool     = "tool"          // one per tool: clippy, rustfmt, cargo-nextest, llvm-cov, ...
)

// RustcVersion is the toolchain identity an action can require: release
// and commit hash of `rustc -vV`'s output (e.g. "1.95.0 59807616e1fa…"),
// empty when vV has neither.
func RustcVersion(vV string) string {
	var rel, hash string
	for _, line := range strings.Split(vV, "\n") {
		if v, ok := strings.CutPrefix(line, "release: "); ok {
			rel = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "commit-hash: "); ok {
			hash = strings.TrimSpace(v)
		}
	}
	if rel == "" {
		return ""
	}
	return strings.TrimSpace(rel + " " + hash)
}

// isa names the architecture as REAPI platforms usually do.
func isa() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86-64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

var llvmMajor = regexp.MustCompile(`(?m)^LLVM version: (\d+)`)

// Probe finds what this machine offers: OS, architecture, the Rust
// toolchain on PATH and the tools steps use. A tool counts when its
// version query succeeds; llvm-cov only in the LLVM major version rustc
// was built with (coverage needs that one).
func Probe(ctx context.Context) []Property {
	// This worker's smelt runs a step's consecutive commands as one
	// action (package batch).
	props := []Property{{KeyOSFamily, runtime.GOOS}, {KeyISA, isa()}, {KeyTool, batch.Tool}}
	run := func(name string, args ...string) (string, bool) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).Output()
		return string(out), err == nil
	}
	vV, ok := run("rustc", "-vV")
	if !ok {
		return props
	}
	if v := RustcVersion(vV); v != "" {
		props = append(props, Property{KeyRustc, v})
	}
	llvm := "llvm-cov"
	if m := llvmMajor.FindStringSubmatch(vV); m != nil {
		llvm = "llvm-cov-" + m[1]
		if _, err := exec.LookPath(llvm); err != nil {
			if out, ok := run("llvm-cov", "--version"); ok && strings.Contains(out, "version "+m[1]+".") {
				llvm = "llvm-cov"
			}
		}
	}
	tools := []struct {
		name string
		cmd  []string
	}{
		{"clippy", []string{"cargo", "clippy", "--version"}},
		{"rustfmt", []string{"rustfmt", "--version"}},
		{"cargo-nextest", []string{"cargo", "nextest", "--version"}},
		{"cargo-tarpaulin", []string{"cargo", "tarpaulin", "--version"}},
		{"cargo-deny", []string{"cargo", "deny", "--version"}},
		{"llvm-cov", []string{llvm, "--version"}},
	}
	found := make([]bool, len(tools))
	var wg sync.WaitGroup
	for i, t := range tools {
		wg.Go(func() { _, found[i] = run(t.cmd[0], t.cmd[1:]...) })
	}
	wg.Wait()
	for i, t := range tools {
		if found[i] {
			props = append(props, Property{KeyTool, t.name})
		}
	}
	return props
}

// Missing lists the properties of want that offered lacks (exact
// strings), as "KEY=VALUE".
func Missing(want, offered []Property) []string {
	var out []string
	for _, p := range want {
		if !slices.Contains(offered, p) {
			out = append(out, p.Key+"="+p.Value)
		}
	}
	return out
}
