package run

import (
	"reflect"
	"sort"
	"testing"

	"smelt/internal/cargo"
	"smelt/internal/store"
)

// dependencyPart keeps exactly what a skeleton build would have produced of
// the dependencies' units, whatever the workspace's own code left beside.
func TestDependencyPart(t *testing.T) {
	const own, dep, ownScript = "14e5533f1c269798", "4410092c3df9ab34", "d376c872a752dbfb"
	files := map[string]bool{
		// cargo's own files
		".rustc_info.json": true, "CACHEDIR.TAG": true, "release/.cargo-lock": true,
		// a dependency's units
		"release/.fingerprint/anyhow-" + dep + "/lib-anyhow.json":         true,
		"release/build/anyhow-" + dep + "/out/x.rs":                       true,
		"release/deps/libanyhow-" + dep + ".rlib":                         true,
		"release/deps/anyhow-" + dep + ".d":                               true,
		"x86_64-unknown-linux-gnu/release/deps/libitoa-" + dep + ".rmeta": true,
		// the workspace's own
		"release/.fingerprint/greet-" + own + "/lib-greet":                      false,
		"release/.fingerprint/greet-" + ownScript + "/invoked.timestamp":        false,
		"release/build/greet-" + ownScript + "/build_script_build-" + ownScript: false,
		"release/deps/libgreet-" + own + ".rlib":                                false,
		"release/deps/greet-" + own + ".d":                                      false,
		"release/deps/app-" + own:                                               false,
		"release/app":                                                           false,
		"release/app.d":                                                         false,
		"release/libgreet.rlib":                                                 false,
		"release/examples/demo":                                                 false,
		"release/incremental/app-2dhu9lmalpdop/s-abc/dep-graph.bin":             false,
	}
	dirs := map[string]bool{
		"release": true, "release/.fingerprint": true, "release/deps": true, "release/build": true,
		"release/examples": true, "release/incremental": true,
		"release/.fingerprint/anyhow-" + dep: true, "release/build/anyhow-" + dep: true,
		"release/build/anyhow-" + dep + "/out": true,
		"release/.fingerprint/greet-" + own:    false, "release/build/greet-" + ownScript: false,
		"release/incremental/app-2dhu9lmalpdop": false,
	}
	tree := store.Tree{}
	var want []string
	for p, keep := range files {
		tree[p] = store.Entry{Path: p, Type: store.TypeFile}
		if keep {
			want = append(want, p)
		}
	}
	for p, keep := range dirs {
		tree[p] = store.Entry{Path: p, Type: store.TypeDir}
		if keep {
			want = append(want, p)
		}
	}
	var got []string
	for p := range dependencyPart(tree, []string{"greet", "app"}) {
		got = append(got, p)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dependencyPart kept\n%v\nwant\n%v", got, want)
	}
}

func TestFuseSplit(t *testing.T) {
	c := func(args ...string) cargo.Command { return cargo.Command{Program: "cargo", Args: args} }
	cmds := []cargo.Command{c("build", "--tests"), c("check"), c("build"), c("doc", "--no-deps")}
	skel, real := fuseSplit(cmds, fusible)
	names := func(cs []cargo.Command) (out []string) {
		for _, c := range cs {
			out = append(out, c.String())
		}
		return out
	}
	if got, want := names(skel), []string{"cargo check", "cargo doc --no-deps"}; !reflect.DeepEqual(got, want) {
		t.Errorf("skeleton part = %v, want %v", got, want)
	}
	if got, want := names(real), []string{"cargo build --tests", "cargo build"}; !reflect.DeepEqual(got, want) {
		t.Errorf("fused part = %v, want %v", got, want)
	}
}

// Early cutoff does not see cargo's cache of its compiler queries, which
// depends on the wrappers the last command ran with, not on what was built.
func TestArtifactsIDIgnoresRustcInfo(t *testing.T) {
	lib := store.Entry{Path: "release/deps/libitoa-4410092c3df9ab34.rlib", Type: store.TypeFile, Hash: "aa"}
	info := func(h store.ObjectID) store.Entry {
		return store.Entry{Path: cargo.RustcInfo, Type: store.TypeFile, Hash: h}
	}
	a := store.Tree{lib.Path: lib, cargo.RustcInfo: info("stub-wrapper")}
	b := store.Tree{lib.Path: lib, cargo.RustcInfo: info("no-wrapper")}
	c := store.Tree{lib.Path: lib}
	if artifactsID(a) != artifactsID(b) || artifactsID(a) != artifactsID(c) {
		t.Errorf("artifactsID differs with .rustc_info.json alone")
	}
	if _, ok := a[cargo.RustcInfo]; !ok {
		t.Errorf("artifactsID changed the tree it was given")
	}
	lib.Hash = "bb"
	if artifactsID(store.Tree{lib.Path: lib}) == artifactsID(c) {
		t.Errorf("artifactsID does not see a changed rlib")
	}
}
