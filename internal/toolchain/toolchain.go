// Package toolchain identifies the Rust toolchain a project builds with,
// without starting rustc or cargo when nothing about the toolchain changed.
package toolchain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"smelt/internal/store"
)

// Identity is what a toolchain contributes to every key.
type Identity struct {
	Rustc string `json:"rustc"` // `rustc -vV`
	Cargo string `json:"cargo"` // `cargo -V`
	Host  string `json:"host"`
	ID    string `json:"id"`
}

// getenv looks a variable up in env (KEY=VALUE list), as the child will see it.
func getenv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath finds a program on the PATH that env gives.
func lookPath(env []string, name string) (string, error) {
	for _, dir := range filepath.SplitList(getenv(env, "PATH")) {
		p := filepath.Join(dir, name)
		if info, err := os.Stat(p); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH: install Rust with rustup (https://rustup.rs) or add its bin directory to PATH", name)
}

// signature is everything that can select or change the toolchain: the
// programs on PATH, rustup's overrides (environment, rust-toolchain files,
// settings) and the installed toolchains' binaries. Equal signatures mean the
// same toolchain, so its identity can be reused without running it.
func signature(env []string, dir string) (string, error) {
	var b strings.Builder
	stat := func(p string) {
		if info, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s %d %d\n", p, info.Size(), info.ModTime().UnixNano())
		} else {
			fmt.Fprintf(&b, "%s missing\n", p)
		}
	}
	for _, prog := range []string{"rustc", "cargo"} {
		p, err := lookPath(env, prog)
		if err != nil {
			return "", err
		}
		stat(p)
	}
	for _, k := range []string{"RUSTUP_TOOLCHAIN", "RUSTUP_HOME", "CARGO_HOME", "RUSTC", "PATH"} {
		fmt.Fprintf(&b, "%s=%s\n", k, getenv(env, k))
	}
	for d := dir; ; d = filepath.Dir(d) {
		for _, name := range []string{"rust-toolchain", "rust-toolchain.toml"} {
			if data, err := os.ReadFile(filepath.Join(d, name)); err == nil {
				fmt.Fprintf(&b, "%s:%s\n", filepath.Join(d, name), store.HashBytes(data))
			}
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	rustupHome := getenv(env, "RUSTUP_HOME")
	if rustupHome == "" {
		rustupHome = filepath.Join(getenv(env, "HOME"), ".rustup")
	}
	if data, err := os.ReadFile(filepath.Join(rustupHome, "settings.toml")); err == nil {
		fmt.Fprintf(&b, "settings:%s\n", store.HashBytes(data))
	}
	tcs, _ := filepath.Glob(filepath.Join(rustupHome, "toolchains", "*"))
	sort.Strings(tcs)
	for _, tc := range tcs {
		stat(filepath.Join(tc, "bin", "rustc"))
		stat(filepath.Join(tc, "bin", "cargo"))
	}
	return store.HashBytes([]byte(b.String())), nil
}

// errorLine picks the line that says what went wrong from a tool's stderr:
// the first `error:` line (rustup prints progress such as "info: syncing
// channel updates" before it), else the first line.
func errorLine(stderr string) string {
	first := ""
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "error:") {
			return l
		}
		if first == "" {
			first = l
		}
	}
	return first
}

// Detect returns the identity of the toolchain that cargo would use in dir.
// The answer is cached in the store by signature, so a fully cached smelt
// run starts no rustc or cargo process.
func Detect(ctx context.Context, st *store.Store, dir string, env []string) (*Identity, error) {
	sig, err := signature(env, dir)
	if err != nil {
		return nil, err
	}
	rel := filepath.Join("state", "toolchain", sig+".json")
	var id Identity
	if err := st.ReadJSON(rel, &id); err == nil && id.ID != "" {
		return &id, nil
	}
	run := func(name string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir, cmd.Env = dir, env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			msg := errorLine(errb.String())
			var ee *exec.ExitError
			if errors.As(err, &ee) && msg != "" {
				return "", fmt.Errorf("`%s %s` failed in %s: %s", name, strings.Join(args, " "), dir, msg)
			}
			return "", fmt.Errorf("run `%s %s`: %w", name, strings.Join(args, " "), err)
		}
		return out.String(), nil
	}
	// Both at once: each goes through rustup's proxy, and on an empty
	// store they are most of what smelt does before its first step.
	var cargo string
	var cargoErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		cargo, cargoErr = run("cargo", "-V")
	}()
	rustc, err := run("rustc", "-vV")
	<-done
	if err != nil {
		return nil, err
	}
	if cargoErr != nil {
		return nil, cargoErr
	}
	id = Identity{Rustc: rustc, Cargo: cargo}
	for _, line := range strings.Split(rustc, "\n") {
		if h, ok := strings.CutPrefix(line, "host: "); ok {
			id.Host = strings.TrimSpace(h)
		}
	}
	id.ID = store.HashBytes([]byte(rustc + "\x00" + cargo))
	if err := st.WriteJSON(rel, &id); err != nil {
		return nil, err
	}
	return &id, nil
}
