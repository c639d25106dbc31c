package store

import (
	"strings"
	"testing"
)

// A result pulled from a remote cache without its layers survives gc
// (its layers are remote, not lost); one not pulled is dropped.
func TestGCKeepsPulledResults(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	s.Warn = func(m string) { warned = append(warned, m) }
	remoteLayer := LayerID(HashBytes([]byte("a layer in the remote cache")))
	pulled := &Result{Key: Key(HashBytes([]byte("pulled"))), Artifacts: remoteLayer, Pulled: true}
	lost := &Result{Key: Key(HashBytes([]byte("lost"))), Artifacts: remoteLayer}
	for _, r := range []*Result{pulled, lost} {
		if err := s.SaveResult(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GC(GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if r, _ := lookupResult(s, pulled.Key); r == nil {
		t.Error("gc dropped a pulled result whose layers are remote")
	}
	if r, _ := lookupResult(s, lost.Key); r != nil {
		t.Error("gc kept a result whose layers are lost")
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "dropped 1 result") {
		t.Errorf("warnings %q, want one about the lost result", warned)
	}
}
