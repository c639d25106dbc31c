package run

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"smelt/internal/sandbox"
)

// view is where a step's commands see its directories. In a sandbox they
// lie at fixed paths, the same for every store and on every machine, so
// that what cargo and rustc record of them (a vendored crate's
// fingerprint is its absolute path; dep-info, crate metadata and
// binaries name source files) is too: the step's artifacts, and so the
// keys of the steps after it, do not depend on where the store lies.
// Without a sandbox they are the real paths: only sharing across stores is
// lost.
type view struct {
	src, target, scratch string
	vendor               string // the vendored crates ("" when the step uses none)
	vendorConfig         string // the cargo config pointing at them
	mounts               []sandbox.Mount
	bin                  string // the store's programs (Store.Program)
	dir                  string // the step's working directory as the commands see it
	realDir              string // and as it is
}

// The fixed paths: the step's working directory (its source in src/, with
// target/ in it, and its scratch space) and the vendored crates.
const (
	viewWork   = sandbox.Root + "/work"
	viewVendor = sandbox.Root + "/vendor"
	viewBin    = sandbox.Root + "/bin"
)

// newView lays out the step's paths: dir is its working directory, and
// vendorDir and vendorConfig are the vendored sources ("" for none).
func (sr *stepRun) newView(dir, vendorDir, vendorConfig string) view {
	v := view{src: sr.srcDir, target: sr.targetDir, scratch: sr.scratch, vendor: vendorDir, vendorConfig: vendorConfig, dir: dir, realDir: dir}
	if !sr.e.sandboxed() {
		return v
	}
	// The store's programs (the deps step's rustc wrapper, whose path
	// cargo hashes into the workspace's units) at a fixed path too.
	v.bin = binRoot(sr.e.p.st)
	rel := func(p string) string {
		r, _ := filepath.Rel(dir, p)
		return filepath.Join(viewWork, r)
	}
	v.src, v.target, v.scratch, v.dir = rel(sr.srcDir), rel(sr.targetDir), rel(sr.scratch), viewWork
	v.mounts = []sandbox.Mount{{Source: dir, Target: viewWork}}
	if err := os.MkdirAll(v.bin, 0o755); err == nil {
		v.mounts = append(v.mounts, sandbox.Mount{Source: v.bin, Target: viewBin})
	} else {
		v.bin = ""
	}
	if vendorDir != "" {
		v.vendor = viewVendor
		v.mounts = append(v.mounts, sandbox.Mount{Source: vendorDir, Target: viewVendor})
		// The copy in the working directory (see writeParentConfig), which
		// names the fixed path.
		v.vendorConfig = filepath.Join(viewWork, ".cargo", "config.toml")
	}
	return v
}

// real is the real path of a path that a command reported.
func (v view) real(p string) string {
	if rest, ok := strings.CutPrefix(p, v.dir+"/"); ok && v.mounts != nil {
		return filepath.Join(v.realDir, rest)
	}
	return p
}

// program is where the step's commands find a program of the store.
func (v view) program(p string) string {
	if v.bin != "" && filepath.Dir(p) == v.bin {
		return filepath.Join(viewBin, filepath.Base(p))
	}
	return p
}

// wrap makes cmd run in the step's sandbox, if it has one.
func (v view) wrap(cmd *exec.Cmd) error {
	if v.mounts == nil || cmd.Err != nil {
		return nil
	}
	return sandbox.Wrap(cmd, v.src, v.mounts)
}

// sandboxed reports whether this run's steps run in a sandbox; where the
// kernel or the machine does not allow one, it warns once.
func (e *engine) sandboxed() bool {
	e.sandboxOnce.Do(func() {
		err := sandbox.Available()
		e.sandbox = err == nil
		if err != nil {
			e.warn("results are not shared with other stores or machines: %v; steps run at the store's own paths", err)
		}
	})
	return e.sandbox
}

// pathsID names where a step's commands see the vendored crates, which
// cargo fingerprints by their absolute path: the sandbox's fixed path, the
// same everywhere, or without a sandbox the store's own. A result built at
// another path is then not taken for this step's: for cargo every
// dependency in it would be stale, and the steps after it would rebuild
// them all on every run. (Cargo relocates the workspace and target/ by
// itself.)
func (e *engine) pathsID() string {
	if e.sandboxed() {
		return "sandbox " + sandbox.Root
	}
	return "store " + e.p.st.Dir
}

// warn passes one warning to the observer, if it takes warnings.
func (e *engine) warn(format string, args ...any) {
	if w, ok := e.opt.Observer.(interface{ Warn(string, ...any) }); ok {
		w.Warn(format, args...)
	}
}
