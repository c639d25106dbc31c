package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"smelt/internal/remote"
	"smelt/internal/store"
	"smelt/internal/testsrv"
	"smelt/internal/trust"
)

// teamKey writes a signing key named name and returns its file and its
// public key NAME:BASE64, as smelt key generate gives them.
func teamKey(t *testing.T, name string) (string, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), name+".key")
	out, err := exec.Command(smeltBin, "key", "generate", name, "-o", file).Output()
	if err != nil {
		t.Fatalf("smelt key generate: %v", err)
	}
	return file, strings.TrimSpace(string(out))
}

// elsewhere moves a project and its store to other paths, as another
// machine would have them.
func elsewhere(t *testing.T, p *project) {
	t.Helper()
	moved := filepath.Join(t.TempDir(), "other", "clone")
	if err := os.MkdirAll(filepath.Dir(moved), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p.dir, moved); err != nil {
		t.Fatal(err)
	}
	p.dir, p.store = moved, filepath.Join(t.TempDir(), "deeper", "store-b")
}

// remoteEvent is the run's "remote" summary event.
func remoteEvent(t *testing.T, o outcome) map[string]any {
	t.Helper()
	for _, ev := range o.events {
		if ev["event"] == "remote" {
			return ev
		}
	}
	t.Fatalf("no remote summary in the output:\n%s", o.output)
	return nil
}

func allStatus(t *testing.T, o outcome, want string) {
	t.Helper()
	if len(o.status) == 0 {
		t.Fatalf("no step finished:\n%s", o.output)
	}
	for step, s := range o.status {
		if s != want {
			t.Errorf("step %s: %s, want %s\n%s", step, s, want, o.output)
		}
	}
}

// TestRemoteStory is issue 17's story, once per backend: store A at one
// path checks the project and pushes, signed; store B at another path,
// with the project at another path, checks it and builds nothing (every
// step pulled: no step starts, no working directory or log exists), with
// less than 1 MB downloaded; smelt build there gives a binary that runs;
// an edit in B recompiles only the edited crate.
func TestRemoteStory(t *testing.T) {
	needCargo(t)
	for _, c := range []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"file", func(t *testing.T) string { return "file://" + t.TempDir() }},
		{"http", func(t *testing.T) string { base, _ := testsrv.Nginx(t); return base + "/dav/smelt" }},
		{"s3", func(t *testing.T) string { testsrv.S3(t); testsrv.MakeBucket(t, "team"); return "s3://team/smelt" }},
		{"grpc", func(t *testing.T) string { return "grpc://" + testsrv.BuildGridCache(t) + "/main" }},
	} {
		t.Run(c.name, func(t *testing.T) { story(t, c.start(t)) })
	}
}

func story(t *testing.T, url string) {
	keyFile, pub := teamKey(t, "ci-1")
	a := newProject(t, "sequential")
	o := a.mustSmelt("check", "--push", "--signing-key", keyFile, "--remote", url)
	noSandbox(t, o)
	allStatus(t, o, "built")
	if ev := remoteEvent(t, o); ev["uploaded"].(float64) == 0 || ev["pushed"].(float64) != 4 {
		t.Errorf("push: %v", ev)
	}
	if w := warnings(o); len(w) > 0 {
		t.Errorf("warnings on push: %q", w)
	}
	// Pushing again uploads nothing new: one existence query per batch.
	o = a.mustSmelt("check", "--push", "--signing-key", keyFile, "--remote", url)
	allStatus(t, o, "cached")
	if ev := remoteEvent(t, o); ev["objects_put"].(float64) != 0 || ev["layers_put"].(float64) != 0 || ev["uploaded"].(float64) != 0 {
		t.Errorf("a second push uploaded again: %v", ev)
	}

	b := newProject(t, "sequential")
	elsewhere(t, b)
	remoteArgs := []string{"--remote", url, "--trust", pub}
	calls := shimPath(t, b)
	o = b.mustSmelt(append([]string{"check"}, remoteArgs...)...)
	allStatus(t, o, "pulled")
	// Fetching the dependency sources and asking the toolchain's version
	// start cargo and rustc; nothing may compile.
	if log, err := os.ReadFile(calls); err == nil {
		if m := regexp.MustCompile(`(?m)^(cargo (build|check|clippy|test|doc|rustc)\b|rustc .*--crate-name).*`).FindString(string(log)); m != "" {
			t.Errorf("a check that pulled everything started a compiler: %s", m)
		}
	}
	for _, ev := range o.events {
		if ev["event"] == "start" {
			t.Errorf("step %v started in store B", ev["step"])
		}
	}
	if w := warnings(o); len(w) > 0 {
		t.Errorf("warnings on pull: %q", w)
	}
	for _, pattern := range []string{"work/*/*", "logs/*"} {
		if m, _ := filepath.Glob(filepath.Join(b.store, pattern)); len(m) > 0 {
			t.Errorf("store B has %v after a check that pulled everything: a step ran", m)
		}
	}
	down := remoteEvent(t, o)["downloaded"].(float64)
	t.Logf("a fully cached check from an empty store downloaded %.0f bytes", down)
	if down == 0 || down >= 1e6 {
		t.Errorf("a fully cached check downloaded %.0f bytes, want 0 < bytes < 1 MB", down)
	}

	o = b.mustSmelt(append([]string{"build"}, remoteArgs...)...)
	if o.status["crate"] != "cached" {
		t.Errorf("build after a pulled check: crate %s\n%s", o.status["crate"], o.output)
	}
	if got := b.runResult("seq"); got != "double: 42" {
		t.Errorf("result/bin/seq printed %q", got)
	}
	t.Logf("smelt build downloaded %.0f bytes", remoteEvent(t, o)["downloaded"].(float64))

	b.replace("src/main.rs", "double(21)", "double(22)")
	o = b.mustSmelt(append([]string{"check"}, remoteArgs...)...)
	wantStatus(t, o, map[string]string{"deps": "cached", "clippy": "built", "test": "built", "crate": "built"})
	for _, step := range []string{"clippy", "test", "crate"} {
		if got := compiled(b.log(step)); len(got) != 1 || !got["seq"] {
			t.Errorf("after an edit of seq, step %s compiled %v, want only seq (the pulled target/ must be fresh for cargo here)", step, got)
		}
	}
	b.mustSmelt(append([]string{"build"}, remoteArgs...)...)
	if got := b.runResult("seq"); got != "double: 44" {
		t.Errorf("result/bin/seq printed %q after the edit", got)
	}
}

// pushed is a file remote that store A filled by checking the sequential
// fixture with key ci-1; each test gets its own copy of it to spoil.
type pushed struct {
	dir, pub string
	key      string // the signing key's file
}

func pushFixture(t *testing.T) pushed {
	t.Helper()
	keyFile, pub := teamKey(t, "ci-1")
	dir := t.TempDir()
	a := newProject(t, "sequential")
	noSandbox(t, a.mustSmelt("check", "--push", "--signing-key", keyFile, "--remote", "file://"+dir))
	return pushed{dir: dir, pub: pub, key: keyFile}
}

// copyOf copies the remote's directory.
func (r pushed) copyOf(t *testing.T) (string, remote.Backend) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "remote")
	if out, err := exec.Command("cp", "-a", r.dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	b, err := remote.Open(context.Background(), "file://"+dst, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return dst, b
}

// blobs lists the ids of a namespace in a file remote.
func blobs(t *testing.T, dir string, ns remote.Namespace) []remote.ID {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ns.String(), "*", "*"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no %s in %s: %v", ns, dir, err)
	}
	var out []remote.ID
	for _, p := range m {
		out = append(out, remote.ID(filepath.Base(p)))
	}
	return out
}

// spoilPacks flips a byte in the frame of every packed object of a file
// remote (once: layers share frames).
func spoilPacks(t *testing.T, dir string, rb remote.Backend) {
	t.Helper()
	spoilt := map[string]bool{}
	for _, layer := range blobs(t, dir, remote.PackIndexes) {
		idx, err := remote.ReadPackIndex(t.Context(), rb, layer)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range idx.Objects {
			id := idx.Packs[o.Pack]
			at := fmt.Sprint(id, o.Off)
			if spoilt[at] {
				continue
			}
			spoilt[at] = true
			p := filepath.Join(dir, "packs", string(id[:2]), string(id))
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			raw[o.Off+o.Len/2] ^= 0x55
			if err := os.WriteFile(p, raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// intactStore checks that every object in a store hashes to its name:
// nothing unverified entered it.
func intactStore(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		h, _, err := store.HashFile(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		if name := filepath.Base(filepath.Dir(p)) + filepath.Base(p); h != name {
			t.Errorf("store object %s holds bytes hashing to %s", name, h)
		}
		return nil
	})
}

// TestRemoteFailures: a remote cache that is spoilt, untrusted, read-only,
// down or answering garbage leaves the build correct (every step built
// locally, exit 0), with one warning line that says why.
func TestRemoteFailures(t *testing.T) {
	needCargo(t)
	r := pushFixture(t)
	// b is a fresh store, at another path, checking the same project.
	b := func(t *testing.T) *project {
		p := newProject(t, "sequential")
		elsewhere(t, p)
		return p
	}
	oneWarning := func(t *testing.T, o outcome, want string) {
		t.Helper()
		w := warnings(o)
		if len(w) != 1 || !strings.Contains(w[0], want) {
			t.Errorf("warnings %q, want one containing %q\n%s", w, want, o.output)
		}
	}

	t.Run("untrusted key", func(t *testing.T) {
		_, other := teamKey(t, "laptop")
		p := b(t)
		o := p.mustSmelt("check", "--remote", "file://"+r.dir, "--trust", other)
		allStatus(t, o, "built")
		oneWarning(t, o, "no key it is signed with is trusted")
	})

	t.Run("no trusted key", func(t *testing.T) {
		p := b(t)
		o := p.mustSmelt("check", "--remote", "file://"+r.dir)
		allStatus(t, o, "built")
		oneWarning(t, o, "no key is trusted: pass --trust")
	})

	t.Run("wrong signature", func(t *testing.T) {
		dir, rb := r.copyOf(t)
		// Re-signed by another key of the same name: the name is trusted,
		// the signature is not valid.
		forger, err := trust.Generate("ci-1")
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range blobs(t, dir, remote.Results) {
			env, err := remote.ReadVerified(t.Context(), rb, remote.Results, remote.Ref{ID: id, Size: -1})
			if err != nil {
				t.Fatal(err)
			}
			var e struct {
				Record json.RawMessage `json:"record"`
			}
			if err := json.Unmarshal(env, &e); err != nil {
				t.Fatal(err)
			}
			forged, err := trust.Sign(forger, string(id), e.Record)
			if err != nil {
				t.Fatal(err)
			}
			if err := rb.Put(t.Context(), remote.Results, remote.Ref{ID: id, Size: int64(len(forged))}, bytes.NewReader(forged)); err != nil {
				t.Fatal(err)
			}
		}
		p := b(t)
		o := p.mustSmelt("check", "--remote", "file://"+dir, "--trust", r.pub)
		allStatus(t, o, "built")
		oneWarning(t, o, "its signature is not valid")
	})

	t.Run("corrupt object", func(t *testing.T) {
		dir, rb := r.copyOf(t)
		p := b(t)
		// Every object replaced by other bytes of its size, alone or in
		// its pack: a check pulls records only and sees nothing; a build
		// needs the binary's object, finds it corrupt, says which, and
		// builds it here.
		spoilPacks(t, dir, rb)
		for _, id := range blobs(t, dir, remote.Objects) {
			data, err := remote.ReadVerified(t.Context(), rb, remote.Objects, remote.Ref{ID: id, Size: -1})
			if err != nil {
				t.Fatal(err)
			}
			bad := bytes.Repeat([]byte{'x'}, len(data))
			if err := rb.Put(t.Context(), remote.Objects, remote.Ref{ID: id, Size: int64(len(bad))}, bytes.NewReader(bad)); err != nil {
				t.Fatal(err)
			}
		}
		args := []string{"--remote", "file://" + dir, "--trust", r.pub}
		allStatus(t, p.mustSmelt(append([]string{"check"}, args...)...), "pulled")
		o := p.mustSmelt(append([]string{"build"}, args...)...)
		// The remote's warning names the object and why; the store's
		// says what it drops to build again.
		if w := warnings(o); len(w) == 0 || len(w) > 2 || !strings.Contains(w[0], "is corrupt") {
			t.Errorf("warnings %q, want the first saying which object is corrupt\n%s", w, o.output)
		}
		if got := p.runResult("seq"); got != "double: 42" {
			t.Errorf("result/bin/seq printed %q", got)
		}
		intactStore(t, p.store)
		// An edit: the steps that run need deps' target/, whose objects
		// are corrupt too: deps is built here, and so is everything after.
		p.replace("src/main.rs", "double(21)", "double(23)")
		o = p.mustSmelt(append([]string{"build"}, args...)...)
		if got := p.runResult("seq"); got != "double: 46" {
			t.Errorf("result/bin/seq printed %q after an edit", got)
		}
		intactStore(t, p.store)
	})

	t.Run("down", func(t *testing.T) {
		p := b(t)
		url := fmt.Sprintf("http://127.0.0.1:%d/cache", testsrv.FreePort(t))
		o := p.mustSmelt("check", "--remote", url, "--trust", r.pub)
		allStatus(t, o, "built")
		oneWarning(t, o, "is not used for the rest of this run")
	})

	t.Run("hung", func(t *testing.T) {
		p := b(t)
		p.env = append(p.env, "SMELT_REMOTE_TIMEOUT=1s")
		start := time.Now()
		o := p.mustSmelt("check", "--remote", "http://"+testsrv.Hung(t)+"/cache", "--trust", r.pub)
		allStatus(t, o, "built")
		oneWarning(t, o, "is not used for the rest of this run")
		t.Logf("a check with a remote that never answers took %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("garbage", func(t *testing.T) {
		p := b(t)
		o := p.mustSmelt("check", "--remote", "http://"+testsrv.GarbageHTTP(t)+"/cache", "--remote", "grpc://"+testsrv.Garbage(t), "--trust", r.pub)
		allStatus(t, o, "built")
		if w := warnings(o); len(w) != 2 {
			t.Errorf("warnings %q, want one per remote\n%s", w, o.output)
		}
	})

	t.Run("push refused", func(t *testing.T) {
		testsrv.S3(t)
		testsrv.MakeBucket(t, "team")
		url := "s3://team/smelt"
		p := b(t)
		p.env = append(p.env, testsrv.S3ReadOnly(t, "team")...)
		o := p.mustSmelt("check", "--push", "--signing-key", r.key, "--remote", url, "--trust", r.pub)
		allStatus(t, o, "built")
		oneWarning(t, o, "pushing to remote "+url+" failed")
	})
}
