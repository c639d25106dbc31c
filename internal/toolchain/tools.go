package toolchain

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"smelt/internal/store"
)

// Tool is an external program a step needs, found on PATH.
type Tool struct {
	Path    string
	Version string // its version output
}

// Install hints for the tools smelt drives.
var installHints = map[string]string{
	"cargo-tarpaulin": "install it with `cargo install --locked cargo-tarpaulin`",
	"cargo-nextest":   "install it with `cargo install --locked cargo-nextest`",
	"cargo-deny":      "install it with `cargo install --locked cargo-deny`",
}

// FindTool locates name on env's PATH and returns its version, running
// `name versionArgs…` only when the binary changed since smelt last asked.
func FindTool(ctx context.Context, st *store.Store, env []string, name string, versionArgs ...string) (*Tool, error) {
	p, err := lookPath(env, name)
	if err != nil {
		hint := installHints[name]
		if hint == "" {
			hint = "install it or add it to PATH"
		}
		return nil, fmt.Errorf("%s is not installed (not on PATH): %s", name, hint)
	}
	return toolAt(ctx, st, env, p, versionArgs...)
}

func toolAt(ctx context.Context, st *store.Store, env []string, p string, versionArgs ...string) (*Tool, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	sig := store.HashBytes([]byte(fmt.Sprintf("%s %d %d %q", p, info.Size(), info.ModTime().UnixNano(), versionArgs)))
	rel := filepath.Join("state", "tools", sig+".json")
	var t Tool
	if err := st.ReadJSON(rel, &t); err == nil && t.Version != "" {
		return &t, nil
	}
	cmd := exec.CommandContext(ctx, p, versionArgs...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("run `%s %s`: %v: %s", p, strings.Join(versionArgs, " "), err, strings.TrimSpace(out.String()))
	}
	t = Tool{Path: p, Version: strings.TrimSpace(out.String())}
	return &t, st.WriteJSON(rel, &t)
}

var reLLVM = regexp.MustCompile(`(?m)^LLVM version: (\d+)`)

// LLVMMajor is the major version of the LLVM that rustc uses.
func (id *Identity) LLVMMajor() string {
	if m := reLLVM.FindStringSubmatch(id.Rustc); m != nil {
		return m[1]
	}
	return ""
}

// LLVMTools finds llvm-profdata and llvm-cov whose LLVM major version matches
// rustc's (profiles from another LLVM are unreadable): Debian's llvm-N
// packages, then rustup's llvm-tools component.
// sysroot is asked only when no Debian tools fit, since it runs rustc.
func LLVMTools(ctx context.Context, st *store.Store, env []string, id *Identity, sysroot func() string) (profdata, cov *Tool, err error) {
	major := id.LLVMMajor()
	if major == "" {
		return nil, nil, fmt.Errorf("cannot tell rustc's LLVM version from `rustc -vV`")
	}
	var candidates [][2]string
	for _, dir := range filepath.SplitList(getenv(env, "PATH")) {
		candidates = append(candidates, [2]string{filepath.Join(dir, "llvm-profdata-"+major), filepath.Join(dir, "llvm-cov-"+major)})
	}
	candidates = append(candidates,
		[2]string{"/usr/lib/llvm-" + major + "/bin/llvm-profdata", "/usr/lib/llvm-" + major + "/bin/llvm-cov"},
		[2]string{"sysroot"})
	for _, dir := range filepath.SplitList(getenv(env, "PATH")) {
		candidates = append(candidates, [2]string{filepath.Join(dir, "llvm-profdata"), filepath.Join(dir, "llvm-cov")})
	}
	for _, c := range candidates {
		if c[0] == "sysroot" {
			// rustup's llvm-tools component.
			root := sysroot()
			if root == "" {
				continue
			}
			bin := filepath.Join(root, "lib/rustlib", id.Host, "bin")
			c = [2]string{filepath.Join(bin, "llvm-profdata"), filepath.Join(bin, "llvm-cov")}
		}
		if _, err := os.Stat(c[0]); err != nil {
			continue
		}
		if _, err := os.Stat(c[1]); err != nil {
			continue
		}
		pd, err := toolAt(ctx, st, env, c[0], "--version")
		if err != nil {
			continue
		}
		cv, err := toolAt(ctx, st, env, c[1], "--version")
		if err != nil {
			continue
		}
		if !strings.Contains(cv.Version, "version "+major+".") || !strings.Contains(pd.Version, "version "+major+".") {
			continue
		}
		return pd, cv, nil
	}
	return nil, nil, fmt.Errorf("coverage needs llvm-profdata and llvm-cov from LLVM %s (rustc's LLVM): install Debian's llvm-%s (`apt-get install llvm-%s`) or run `rustup component add llvm-tools`", major, major, major)
}
