package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smelt/internal/config"
	"smelt/internal/remote"
	"smelt/internal/store"
	"smelt/internal/testsrv"
	"smelt/internal/trust"
)

// fixture is a store holding one result whose target/ has a file big
// enough for an object of its own, one that travels in a pack, and a
// small one carried in its layer.
func remoteFixture(t *testing.T) (*store.Store, *Result, map[string][]byte) {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"release/huge.so":      bytes.Repeat([]byte("shared object "), remote.PackMaxObject/10),
		"release/big.rlib":     bytes.Repeat([]byte("rlib "), 1000),
		"release/.fingerprint": []byte("small"),
	}
	dir := t.TempDir()
	for p, b := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	id, tree, err := st.Snapshot(dir, store.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key := store.Key(store.HashBytes([]byte("a step's key")))
	res := &Result{Result: store.Result{Key: key, Artifacts: id}, Step: "deps", Kind: "deps", ArtifactsID: tree.ContentID()}
	if err := st.SaveResult(res); err != nil {
		t.Fatal(err)
	}
	return st, res, files
}

type warns []string

func (w *warns) add(msg string) { *w = append(*w, msg) }

func open(t *testing.T, rc RemoteConfig, w *warns) *Remotes {
	t.Helper()
	r, err := OpenRemotes(context.Background(), rc, w.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// A result pushed from one store is pulled into another as a record only;
// its layer and objects come when a restore needs them, verified.
func TestRemotePushPull(t *testing.T) {
	st, res, files := remoteFixture(t)
	keyFile := filepath.Join(t.TempDir(), "k")
	k, _ := trust.Generate("ci-1")
	if err := trust.WriteSecretKey(keyFile, k); err != nil {
		t.Fatal(err)
	}
	url := "file://" + t.TempDir()
	var w warns
	pusher := open(t, RemoteConfig{URLs: []string{url}, Push: true, SigningKey: keyFile}, &w)
	p, err := pusher.Push(context.Background(), st, []*Result{res})
	if err != nil || p.Results != 1 || p.Objects.Put != 2 || p.Objects.Packed != 1 || p.Layers.Put != 1 {
		t.Fatalf("push: %+v, %v (want 1 result, 2 objects, 1 of them packed: the small file travels in its layer)", p, err)
	}

	// Another store, trusting ci-1.
	st2, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	puller := open(t, RemoteConfig{URLs: []string{url}, Trusted: []string{k.Public().String()}}, &w)
	st2.SetFetcher(puller)
	got := puller.Lookup(context.Background(), res.Key, "deps")
	if got == nil || got.Artifacts != res.Artifacts {
		t.Fatalf("lookup: %+v (warnings %q)", got, w)
	}
	down, _ := puller.Bytes()
	if st2.HasLayer(res.Artifacts) {
		t.Error("the lookup brought the layer: a record is all a check needs")
	}
	tree, err := st2.Flatten(got.Artifacts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := st2.Restore(dir, tree, store.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		if have, err := os.ReadFile(filepath.Join(dir, p)); err != nil || !bytes.Equal(have, b) {
			t.Errorf("%s restored as %q, %v", p, have, err)
		}
	}
	if after, _ := puller.Bytes(); after <= down {
		t.Error("the restore downloaded nothing")
	}
	if len(w) > 0 {
		t.Errorf("warnings: %q", w)
	}

	// Pushing again puts no object or layer.
	p, err = pusher.Push(context.Background(), st, []*Result{res})
	if err != nil || p.Objects.Put != 0 || p.Layers.Put != 0 {
		t.Errorf("second push: %+v, %v", p, err)
	}
	// A result whose bytes are not here (pulled) is not pushed.
	p, err = pusher.Push(context.Background(), func() *store.Store { s, _ := store.Open(t.TempDir()); return s }(), []*Result{res})
	if err != nil || p.Results != 0 || p.Skipped != 1 {
		t.Errorf("push of a result without its bytes: %+v, %v", p, err)
	}
}

// Records that are not to be used give one warning per remote, whatever
// the number of lookups; an object that does not match its hash is not
// kept, and the remote is not asked again.
func TestRemoteRefusals(t *testing.T) {
	st, res, _ := remoteFixture(t)
	k, _ := trust.Generate("ci-1")
	other, _ := trust.Generate("ci-1") // same name, another key
	dir := t.TempDir()
	b, err := remote.Open(context.Background(), "file://"+dir, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rec := []byte(`{"key":"` + string(res.Key) + `","artifacts":"` + string(res.Artifacts) + `"}`)
	put := func(env []byte) {
		t.Helper()
		if err := b.Put(context.Background(), remote.Results, remote.Ref{ID: remote.ID(res.Key), Size: int64(len(env))}, bytes.NewReader(env)); err != nil {
			t.Fatal(err)
		}
	}
	signed := func(k trust.SecretKey, key store.Key) []byte {
		env, err := trust.Sign(k, string(key), rec)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	for _, c := range []struct {
		name    string
		env     []byte
		trusted []string
		want    string
	}{
		{"unsigned", []byte(`{"record":` + string(rec) + `,"sigs":[]}`), []string{k.Public().String()}, "carries no signature"},
		{"untrusted", signed(k, res.Key), []string{(func() trust.SecretKey { x, _ := trust.Generate("laptop"); return x }()).Public().String()}, "no key it is signed with is trusted"},
		{"no trusted key", signed(k, res.Key), nil, "pass --trust"},
		{"bad signature", signed(other, res.Key), []string{k.Public().String()}, "signature is not valid"},
		{"replayed under another key", signed(k, store.Key(store.HashBytes([]byte("other")))), []string{k.Public().String()}, "signature is not valid"},
		{"garbage", []byte("\x00\xffgarbage"), []string{k.Public().String()}, "not a signed result record"},
	} {
		t.Run(c.name, func(t *testing.T) {
			put(c.env)
			var w warns
			r := open(t, RemoteConfig{URLs: []string{"file://" + dir}, Trusted: c.trusted}, &w)
			for range 3 {
				if got := r.Lookup(context.Background(), res.Key, "deps"); got != nil {
					t.Fatalf("used a record: %+v", got)
				}
			}
			if len(w) != 1 || !strings.Contains(w[0], c.want) {
				t.Errorf("warnings %q, want one containing %q", w, c.want)
			}
		})
	}

	// An object replaced on the remote by other bytes: alone, or its
	// frame in a pack.
	for _, c := range []struct {
		name, path string
		spoil      func(t *testing.T, dir string, rb remote.Backend, e store.Entry)
	}{
		{"corrupt object", "release/huge.so", func(t *testing.T, dir string, rb remote.Backend, e store.Entry) {
			bad := bytes.Repeat([]byte("x"), int(e.Size))
			if err := rb.Put(context.Background(), remote.Objects, remote.Ref{ID: remote.ID(e.Hash), Size: e.Size}, bytes.NewReader(bad)); err != nil {
				t.Fatal(err)
			}
		}},
		{"corrupt packed object", "release/big.rlib", func(t *testing.T, dir string, rb remote.Backend, e store.Entry) {
			idx, err := remote.ReadPackIndex(context.Background(), rb, remote.ID(res.Artifacts))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range idx.Objects {
				if o.ID == remote.ID(e.Hash) {
					id := idx.Packs[o.Pack]
					p := filepath.Join(dir, "packs", string(id[:2]), string(id))
					raw, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					raw[o.Off+o.Len/2] ^= 0x55
					if err := os.WriteFile(p, raw, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
			}
			t.Fatalf("object %s is in no pack", e.Hash)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			keyFile := filepath.Join(t.TempDir(), "k")
			trust.WriteSecretKey(keyFile, k)
			dir := t.TempDir()
			url := "file://" + dir
			var w warns
			if _, err := open(t, RemoteConfig{URLs: []string{url}, Push: true, SigningKey: keyFile}, &w).Push(context.Background(), st, []*Result{res}); err != nil {
				t.Fatal(err)
			}
			tree, _ := st.Flatten(res.Artifacts)
			rb, _ := remote.Open(context.Background(), url, remote.Options{})
			defer rb.Close()
			e := tree[c.path]
			c.spoil(t, dir, rb, e)

			st2, _ := store.Open(t.TempDir())
			r := open(t, RemoteConfig{URLs: []string{url}, Trusted: []string{k.Public().String()}}, &w)
			st2.SetFetcher(r)
			tree2, err := st2.Flatten(res.Artifacts)
			if err != nil {
				t.Fatal(err)
			}
			err = st2.Restore(t.TempDir(), tree2, store.RestoreOptions{})
			if !errors.Is(err, store.ErrDamaged) {
				t.Fatalf("restore with a corrupt remote object: %v, want store damage (the step builds locally)", err)
			}
			if st2.HasObject(e.Hash) {
				t.Error("the corrupt object entered the store")
			}
			if len(w) != 1 || !strings.Contains(w[0], string(e.Hash)) || !strings.Contains(w[0], "corrupt") {
				t.Errorf("warnings %q, want one naming object %s as corrupt", w, e.Hash)
			}
			if got := r.Lookup(context.Background(), res.Key, "deps"); got != nil {
				t.Error("a remote that gave a corrupt object is asked again in the same run")
			}
		})
	}
}

// plainBackend hides a backend's packs: a remote as an older smelt
// pushed it, every object alone.
type plainBackend struct{ remote.Backend }

// A remote an older smelt filled (no packs) still serves a newer one,
// object by object; a newer push over it packs only the new layer's
// objects and puts again none of the old.
func TestRemoteOlderFormat(t *testing.T) {
	st, res, files := remoteFixture(t)
	keyFile := filepath.Join(t.TempDir(), "k")
	k, _ := trust.Generate("ci-1")
	if err := trust.WriteSecretKey(keyFile, k); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	url := "file://" + dir
	var w warns
	older := open(t, RemoteConfig{URLs: []string{url}, Push: true, SigningKey: keyFile}, &w)
	older.list[0].b = plainBackend{older.list[0].b}
	if p, err := older.Push(context.Background(), st, []*Result{res}); err != nil || p.Objects.Put != 2 || p.Objects.Packed != 0 {
		t.Fatalf("push as an older smelt: %+v, %v", p, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "pack*")); len(m) > 0 {
		t.Fatalf("an older smelt's push made %v", m)
	}

	st2, _ := store.Open(t.TempDir())
	puller := open(t, RemoteConfig{URLs: []string{url}, Trusted: []string{k.Public().String()}}, &w)
	st2.SetFetcher(puller)
	tree, err := st2.Flatten(res.Artifacts)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := st2.Restore(out, tree, store.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		if have, err := os.ReadFile(filepath.Join(out, p)); err != nil || !bytes.Equal(have, b) {
			t.Errorf("%s restored as %q, %v", p, have, err)
		}
	}

	// A step after it, pushed by a newer smelt: its own layer is packed.
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "lib.rmeta"), bytes.Repeat([]byte("rmeta "), 500), 0o644)
	id, tree2, err := st.Snapshot(src, store.SnapshotOptions{Parent: res.Artifacts})
	if err != nil {
		t.Fatal(err)
	}
	next := &Result{Result: store.Result{Key: store.Key(store.HashBytes([]byte("next"))), Artifacts: id}, Step: "clippy", Kind: "clippy", ArtifactsID: tree2.ContentID()}
	newer := open(t, RemoteConfig{URLs: []string{url}, Push: true, SigningKey: keyFile}, &w)
	p, err := newer.Push(context.Background(), st, []*Result{next})
	if err != nil || p.Objects.Put != 1 || p.Objects.Packed != 1 {
		t.Fatalf("a newer push over an older remote: %+v, %v; want only the new layer's object, packed", p, err)
	}
	if len(w) > 0 {
		t.Errorf("warnings: %q", w)
	}
}

// Pushing set up wrongly (a CI job whose secret is missing) is a warning,
// not a failed build.
func TestRemotePushSetup(t *testing.T) {
	loose := filepath.Join(t.TempDir(), "k")
	k, _ := trust.Generate("ci-1")
	trust.WriteSecretKey(loose, k)
	os.Chmod(loose, 0o644)
	url := "file://" + t.TempDir()
	for _, c := range []struct {
		name string
		rc   RemoteConfig
		want string
	}{
		{"no remote", RemoteConfig{Push: true}, "pushing needs a remote cache"},
		{"no key", RemoteConfig{URLs: []string{url}, Push: true}, "pushing needs a signing key"},
		{"missing key file", RemoteConfig{URLs: []string{url}, Push: true, SigningKey: loose + ".none"}, "no such file"},
		{"key readable by others", RemoteConfig{URLs: []string{url}, Push: true, SigningKey: loose}, "chmod 600"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var w warns
			r := open(t, c.rc, &w)
			if r.Pushing() {
				t.Error("pushing without what it needs")
			}
			if len(w) != 1 || !strings.Contains(w[0], c.want) || !strings.Contains(w[0], "nothing is pushed") {
				t.Errorf("warnings %q, want one containing %q", w, c.want)
			}
		})
	}
	if _, err := OpenRemotes(context.Background(), RemoteConfig{Trusted: []string{"ci-1:short"}}, nil); err == nil {
		t.Error("a trusted key that is not NAME:BASE64 was accepted")
	}
}

// The engine with a remote cache, over the fake cargo: a store pushes what
// it built; an empty store pulls every step without starting the fake
// (records only: no layer is fetched), and after an edit the steps that
// run fetch the target/ they inherit and compile the edited member alone.
func TestEnginePullAndPush(t *testing.T) {
	w := newWS(t)
	cfg := config.Default()
	keyFile := filepath.Join(t.TempDir(), "k")
	k, _ := trust.Generate("ci-1")
	if err := trust.WriteSecretKey(keyFile, k); err != nil {
		t.Fatal(err)
	}
	url := "file://" + t.TempDir()
	var warned warns
	runWith := func(r *Remotes) *Report {
		t.Helper()
		w.st.SetFetcher(r)
		rep, err := Run(context.Background(), w.root, cfg, checks, Options{Store: w.st, Jobs: 2, Remotes: r})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := runWith(open(t, RemoteConfig{URLs: []string{url}, Push: true, SigningKey: keyFile}, &warned))
	wantStatuses(t, rep, all("built", "deps", "clippy", "test", "fmt", "doc", "package"))
	if rep.Pushed.Results != 6 || rep.Up == 0 {
		t.Errorf("pushed %+v, %d bytes up", rep.Pushed, rep.Up)
	}
	w.calls()

	// The same paths, an empty store (the keys would agree at any path
	// in the sandbox; here the test needs none).
	if err := os.Rename(w.st.Dir, w.st.Dir+".a"); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(w.st.Dir)
	if err != nil {
		t.Fatal(err)
	}
	st.Warn = w.st.Warn
	w.st = st
	pull := open(t, RemoteConfig{URLs: []string{url}, Trusted: []string{k.Public().String()}}, &warned)
	rep = runWith(pull)
	wantStatuses(t, rep, all("pulled", "deps", "clippy", "test", "fmt", "doc", "package"))
	for step, c := range w.calls() {
		if step != "" {
			t.Errorf("step %s started the fake after a pull: %v", step, c)
		}
	}
	if layers, _ := filepath.Glob(filepath.Join(st.Dir, "layers", "*", "*")); len(layers) != 0 {
		t.Errorf("a run that pulled every step fetched %d layers; records are all it needs", len(layers))
	}

	w.replace("greet/src/lib.rs", "pub fn hi() {}", "pub fn hi() { let _ = 2; }")
	rep = runWith(pull)
	wantStatuses(t, rep, map[string]string{"deps": "cached", "clippy": "built", "test": "built", "doc": "built", "package": "built"})
	calls := w.calls()
	for _, step := range []string{"clippy", "test", "doc", "package"} {
		got := compiled(calls[step])
		if len(got) == 0 {
			t.Errorf("after editing greet, %s compiled nothing", step)
		}
		for _, u := range got {
			if !strings.HasPrefix(u, "greet ") {
				t.Errorf("after editing greet, %s compiled %v; want greet alone (the fetched target/ must be fresh)", step, got)
				break
			}
		}
	}
	if len(warned) > 0 || len(w.warns) > 0 {
		t.Errorf("warnings: %q %q", warned, w.warns)
	}
}

// A remote that lost an object a pulled result needs (expired, cleaned):
// one warning, the remotes are not asked again in the run, and the step
// that needed it, and what it inherits, are built here.
func TestEngineRemoteLostObject(t *testing.T) {
	w := newWS(t)
	cfg := config.Default()
	keyFile := filepath.Join(t.TempDir(), "k")
	k, _ := trust.Generate("ci-1")
	trust.WriteSecretKey(keyFile, k)
	dir := t.TempDir()
	url := "file://" + dir
	var warned warns
	runWith := func(r *Remotes) *Report {
		t.Helper()
		w.st.SetFetcher(r)
		rep, err := Run(context.Background(), w.root, cfg, checks, Options{Store: w.st, Jobs: 2, Remotes: r})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	runWith(open(t, RemoteConfig{URLs: []string{url}, Push: true, SigningKey: keyFile}, &warned))
	// Objects alone and packs of small ones.
	objs, _ := filepath.Glob(filepath.Join(dir, "objects", "*", "*"))
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("nothing packed")
	}
	objs = append(objs, packs...)
	for _, o := range objs {
		os.Remove(o)
	}
	os.Rename(w.st.Dir, w.st.Dir+".a")
	st, _ := store.Open(w.st.Dir)
	st.Warn = w.st.Warn
	w.st = st
	w.replace("greet/src/lib.rs", "pub fn hi() {}", "pub fn hi() { let _ = 3; }")
	rep := runWith(open(t, RemoteConfig{URLs: []string{url}, Trusted: []string{k.Public().String()}}, &warned))
	wantStatuses(t, rep, map[string]string{"deps": "built", "clippy": "built", "test": "built", "doc": "built", "package": "built"})
	if len(warned) != 1 || !strings.Contains(warned[0], "is neither in the store nor in any remote cache") {
		t.Errorf("remote warnings %q, want one saying the object is in no remote cache", warned)
	}
}

// CI's jobs, over the fake cargo: each job an empty store that pulls what
// its step inherits, builds its step and pushes it. A step two steps down
// the chain inherits layers whose files a restore leaves out (the fake
// writes .rustc_info.json, as cargo does), so its store lacks their
// objects; the push must still put its result, and a later job pulls it.
func TestEnginePushBuiltOnPulled(t *testing.T) {
	w := newWS(t)
	cfg := parseConfig(t, `
[step.deps]
kind = "deps"
[step.clippy]
kind = "clippy"
artifacts = "deps"
[step.test]
kind = "test"
artifacts = "clippy"
`)
	keyFile := filepath.Join(t.TempDir(), "k")
	k, _ := trust.Generate("ci-1")
	if err := trust.WriteSecretKey(keyFile, k); err != nil {
		t.Fatal(err)
	}
	url := "file://" + t.TempDir()
	var warned warns
	job := func(step string, push bool) *Report {
		t.Helper()
		st, err := store.Open(filepath.Join(t.TempDir(), "store"))
		if err != nil {
			t.Fatal(err)
		}
		st.Warn = w.st.Warn
		rc := RemoteConfig{URLs: []string{url}, Trusted: []string{k.Public().String()}}
		if push {
			rc.Push, rc.SigningKey = true, keyFile
		}
		r := open(t, rc, &warned)
		st.SetFetcher(r)
		rep, err := Run(context.Background(), w.root, cfg, []string{step}, Options{Store: st, Jobs: 2, Remotes: r})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	chain := []string{"deps", "clippy", "test"}
	for i, step := range chain {
		rep := job(step, true)
		want := all("pulled", chain[:i]...)
		want[step] = "built"
		wantStatuses(t, rep, want)
		if rep.Pushed.Results != 1 || rep.Pushed.Skipped != 0 {
			t.Errorf("job %s pushed %+v, want its one result", step, rep.Pushed)
		}
	}
	wantStatuses(t, job("test", false), all("pulled", chain...))
	if len(warned) > 0 || len(w.warns) > 0 {
		t.Errorf("warnings: %q %q", warned, w.warns)
	}
}

// A step's target/ of 250 small files travels in a bounded number of
// requests on each backend that packs: pushed in a pack, restored in
// another store from it, every file as it was.
func TestRemotePackedLayer(t *testing.T) {
	for _, c := range []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"file", func(t *testing.T) string { return "file://" + t.TempDir() }},
		{"http", func(t *testing.T) string { base, _ := testsrv.Nginx(t); return base + "/dav/smelt" }},
		{"s3", func(t *testing.T) string { testsrv.S3(t); testsrv.MakeBucket(t, "team"); return "s3://team/smelt" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := c.start(t)
			st, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			files := map[string][]byte{}
			for i := range 250 {
				p := fmt.Sprintf("release/deps/unit%03d.d", i)
				files[p] = bytes.Repeat([]byte(fmt.Sprintf("dep-info of unit %d\n", i)), 60+i)
				os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
				if err := os.WriteFile(filepath.Join(dir, p), files[p], 0o644); err != nil {
					t.Fatal(err)
				}
			}
			id, tree, err := st.Snapshot(dir, store.SnapshotOptions{})
			if err != nil {
				t.Fatal(err)
			}
			res := &Result{Result: store.Result{Key: store.Key(store.HashBytes([]byte("deps"))), Artifacts: id}, Step: "deps", Kind: "deps", ArtifactsID: tree.ContentID()}
			keyFile := filepath.Join(t.TempDir(), "k")
			k, _ := trust.Generate("ci-1")
			trust.WriteSecretKey(keyFile, k)
			var w warns
			pusher := open(t, RemoteConfig{URLs: []string{url}, Push: true, SigningKey: keyFile}, &w)
			p, err := pusher.Push(context.Background(), st, []*Result{res})
			pushed := pusher.Requests()
			t.Logf("push: %+v in %d requests", p, pushed)
			// Its layer: 1 query, the manifest; its objects: the pack and
			// its index; its result: 1 query, the record.
			if err != nil || p.Objects.Put != 250 || p.Objects.Packs != 1 || pushed > 6 {
				t.Fatalf("push of a layer of 250 small files: %+v, %v in %d requests; want 1 pack, at most 6 requests", p, err, pushed)
			}

			st2, _ := store.Open(t.TempDir())
			puller := open(t, RemoteConfig{URLs: []string{url}, Trusted: []string{k.Public().String()}}, &w)
			st2.SetFetcher(puller)
			got := puller.Lookup(context.Background(), res.Key, "deps")
			if got == nil {
				t.Fatalf("lookup: nothing (warnings %q)", w)
			}
			tree2, err := st2.Flatten(got.Artifacts)
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			if err := st2.Restore(out, tree2, store.RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			pulled := puller.Requests()
			t.Logf("pull: %d requests", pulled)
			// The record, the manifest, the index, the pack.
			if pulled > 4 {
				t.Errorf("a pull of a layer of 250 small files took %d requests; want at most 4", pulled)
			}
			for p, b := range files {
				if have, err := os.ReadFile(filepath.Join(out, p)); err != nil || !bytes.Equal(have, b) {
					t.Fatalf("%s restored as %d bytes, %v", p, len(have), err)
				}
			}
			if len(w) > 0 {
				t.Errorf("warnings: %q", w)
			}
		})
	}
}
