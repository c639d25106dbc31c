package remote_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"smelt/internal/remote"
	"smelt/internal/trust"
)

// Pushing a step's result and pulling it elsewhere: objects first, then
// the layer that names them, the signed result last (so that a result a
// reader finds is complete); a reader verifies the signature, then every
// hash.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "smelt-remote-example")
	defer os.RemoveAll(dir)
	b, err := remote.Open(ctx, "file://"+dir, remote.Options{})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	id := func(data []byte) remote.ID {
		h := sha256.Sum256(data)
		return remote.ID(hex.EncodeToString(h[:]))
	}

	// Push (CI, holding the signing key).
	obj := []byte("an rlib")
	objRef := remote.Ref{ID: id(obj), Size: int64(len(obj))}
	open := func(remote.Ref) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(obj)), nil }
	if _, err := remote.UploadMissing(ctx, b, remote.Objects, []remote.Ref{objRef}, open, 4); err != nil {
		panic(err)
	}
	layer := []byte(`{"entries":[{"p":"deps/libx.rlib","h":"` + string(objRef.ID) + `","s":7}]}`)
	layerRef := remote.Ref{ID: id(layer), Size: int64(len(layer))}
	b.Put(ctx, remote.Layers, layerRef, bytes.NewReader(layer))
	key, _ := trust.Generate("ci-1")
	stepKey := remote.ID(id([]byte("a step's key")))
	env, _ := trust.Sign(key, string(stepKey), []byte(`{"artifacts":"`+string(layerRef.ID)+`"}`))
	b.Put(ctx, remote.Results, remote.Ref{ID: stepKey, Size: int64(len(env))}, bytes.NewReader(env))

	// Pull (a laptop that trusts ci-1's public key).
	got, _ := remote.ReadVerified(ctx, b, remote.Results, remote.Ref{ID: stepKey, Size: -1})
	record, signer, err := trust.Verify(got, string(stepKey), []trust.PublicKey{key.Public()})
	fmt.Println(string(record), signer, err)
	l, err := remote.ReadVerified(ctx, b, remote.Layers, remote.Ref{ID: layerRef.ID, Size: -1})
	fmt.Println(len(l), err)
	rc, _ := remote.GetVerified(ctx, b, remote.Objects, objRef)
	data, err := io.ReadAll(rc) // into a temporary file; published only after a clean EOF
	rc.Close()
	fmt.Println(string(data), err)
	// Output:
	// {"artifacts":"5eb2d76934640f8b75fe6d89603d2c4f83944af4f3b1a8fe272385c5214f1413"} ci-1 <nil>
	// 113 <nil>
	// an rlib <nil>
}
