package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

func hashOf(b []byte) ID {
	h := sha256.Sum256(b)
	return ID(hex.EncodeToString(h[:]))
}

// blob makes n bytes of compressible but not trivial content.
func blob(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"rlib", "fingerprint", "deps", "target", "release", "\x00\x01", "smelt"}
	var b bytes.Buffer
	for b.Len() < n {
		if r.IntN(4) == 0 {
			fmt.Fprintf(&b, "%x", r.Uint64())
		} else {
			b.WriteString(words[r.IntN(len(words))])
		}
	}
	return b.Bytes()[:n]
}

func put(t *testing.T, b Backend, ns Namespace, id ID, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), ns, Ref{ID: id, Size: int64(len(data))}, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put %s %s: %v", ns, id, err)
	}
}

func getVerified(b Backend, ns Namespace, ref Ref) ([]byte, error) {
	return ReadVerified(context.Background(), b, ns, ref)
}

// suite is what every backend must do. corrupt, when not nil, stores raw
// garbage (not a blob this package wrote) at a blob's place on the server.
type suite struct {
	open    func(t *testing.T, opts Options) Backend
	corrupt func(t *testing.T, ns Namespace, id ID, raw []byte)
	// verifiesUploads: the server checks an object's hash on upload (REAPI).
	verifiesUploads bool
	// hasRequests bounds the requests of a Has of 1000 objects.
	hasRequests int64
	// uploadRequests bounds the requests of uploading 200 small objects.
	uploadRequests int64
	// mkcols are the requests a first write into new directories adds
	// (WebDAV without create_full_put_path: a failed PUT and MKCOLs).
	mkcols int64
}

func (s suite) run(t *testing.T) {
	t.Run("RoundTrip", s.roundTrip)
	t.Run("Has1000", s.has1000)
	t.Run("Corrupt", s.corruptBlobs)
	t.Run("UploadMissing", s.uploadMissing)
	t.Run("Packs", s.packs)
}

func (s suite) uploadMissing(t *testing.T) {
	var stats Stats
	b := s.open(t, Options{Timeout: 20 * time.Second, Stats: &stats})
	defer b.Close()
	blobs := map[ID][]byte{}
	var refs []Ref
	for i := range 300 {
		data := blob(uint64(100+i), 500+i*7)
		if i == 0 {
			data = blob(99, 300<<10) // too big to pack
		}
		id := hashOf(data)
		blobs[id] = data
		refs = append(refs, Ref{ID: id, Size: int64(len(data))})
		if i%3 == 1 {
			put(t, b, Objects, id, data) // the remote has a third already
		}
	}
	open := func(ref Ref) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blobs[ref.ID])), nil }
	n0 := stats.Requests.Load()
	up, err := UploadMissing(context.Background(), b, Objects, refs, open, 8)
	if err != nil {
		t.Fatal(err)
	}
	n := stats.Requests.Load() - n0
	t.Logf("%s: UploadMissing of 300 objects, 100 present: %+v in %d requests", b.Location(), up, n)
	if up.Put != 200 {
		t.Fatalf("UploadMissing put %d objects; want the 200 missing", up.Put)
	}
	if s.uploadRequests > 0 && n > s.uploadRequests {
		t.Fatalf("UploadMissing took %d requests; want at most %d", n, s.uploadRequests)
	}
	for _, ref := range refs {
		if got, err := getVerified(b, Objects, ref); err != nil || !bytes.Equal(got, blobs[ref.ID]) {
			t.Fatalf("object %s after UploadMissing: %v", ref.ID, err)
		}
	}
	if up, err := UploadMissing(context.Background(), b, Objects, refs, open, 8); err != nil || up.Put != 0 {
		t.Fatalf("a second UploadMissing put %d objects (%v); want none", up.Put, err)
	}
}

func (s suite) roundTrip(t *testing.T) {
	b := s.open(t, Options{Timeout: 10 * time.Second})
	defer b.Close()
	ctx := context.Background()
	big := blob(1, 5<<20+123) // above gRPC's 4 MiB message limit: ByteStream
	cases := []struct {
		name string
		ns   Namespace
		data []byte
		id   ID
	}{
		{"empty object", Objects, []byte{}, ""},
		{"small object", Objects, []byte("fn main() {}\n"), ""},
		{"big object", Objects, big, ""},
		{"layer", Layers, []byte(`{"parent":"","entries":[{"p":"target/debug/x","h":"00"}]}`), ""},
		{"result", Results, []byte(`{"sigs":["ci-1:AAAA"],"record":{"key":"k"}}`), ID(strings.Repeat("ab", 32))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := c.id
			if id == "" {
				id = hashOf(c.data)
			}
			ref := Ref{ID: id, Size: int64(len(c.data))}
			getRef := ref
			if c.ns != Objects {
				getRef.Size = -1 // what a reader knows of a layer or a result
			}
			has, err := b.Has(ctx, c.ns, []Ref{ref})
			if err != nil || has[0] && c.name != "empty object" {
				t.Fatalf("Has before Put = %v, %v; want false", has, err)
			}
			if c.name != "empty object" {
				if _, err := b.Get(ctx, c.ns, getRef); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get before Put: %v; want ErrNotFound", err)
				}
			}
			put(t, b, c.ns, id, c.data)
			has, err = b.Has(ctx, c.ns, []Ref{ref})
			if err != nil || !has[0] {
				t.Fatalf("Has after Put = %v, %v; want true", has, err)
			}
			got, err := getVerified(b, c.ns, getRef)
			if err != nil {
				t.Fatalf("GetVerified: %v", err)
			}
			if !bytes.Equal(got, c.data) {
				t.Fatalf("GetVerified returned %d bytes that differ from the %d put", len(got), len(c.data))
			}
			// Putting the same blob again is harmless.
			put(t, b, c.ns, id, c.data)
		})
	}
}

func (s suite) has1000(t *testing.T) {
	var stats Stats
	b := s.open(t, Options{Timeout: 20 * time.Second, Stats: &stats})
	defer b.Close()
	refs := make([]Ref, 1000)
	for i := range refs {
		data := []byte(fmt.Sprintf("object %d of a layer", i))
		refs[i] = Ref{ID: hashOf(data), Size: int64(len(data))}
		if i%2 == 0 {
			put(t, b, Objects, refs[i].ID, data)
		}
	}
	before := stats.Requests.Load()
	start := time.Now()
	has, err := b.Has(context.Background(), Objects, refs)
	if err != nil {
		t.Fatal(err)
	}
	n := stats.Requests.Load() - before
	t.Logf("%s: Has of 1000 objects (500 present): %d requests, %s", b.Location(), n, time.Since(start).Round(time.Millisecond))
	for i, h := range has {
		if h != (i%2 == 0) {
			t.Fatalf("Has[%d] = %v; want %v", i, h, i%2 == 0)
		}
	}
	if s.hasRequests > 0 && n > s.hasRequests {
		t.Fatalf("Has of 1000 objects took %d requests; want at most %d", n, s.hasRequests)
	}
}

// corruptBlobs: a blob whose bytes are not what its id says, or that is not
// even a blob this package wrote, is caught by GetVerified.
func (s suite) corruptBlobs(t *testing.T) {
	b := s.open(t, Options{Timeout: 10 * time.Second})
	defer b.Close()
	good := blob(2, 3000)
	bad := blob(3, 3000)
	// A layer stored under an id its bytes do not hash to (the action
	// cache, S3 and WebDAV all accept it, as they must: they cannot know).
	layer := hashOf(good)
	put(t, b, Layers, layer, bad)
	if _, err := getVerified(b, Layers, Ref{ID: layer, Size: -1}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetVerified of a layer with other bytes: %v; want ErrCorrupt", err)
	}
	obj := hashOf(blob(4, 3000))
	err := b.Put(context.Background(), Objects, Ref{ID: obj, Size: int64(len(bad))}, bytes.NewReader(bad))
	if s.verifiesUploads {
		if err == nil {
			t.Fatal("the CAS accepted an object whose bytes do not match its digest")
		}
		t.Logf("the server refused it: %v", err)
	} else {
		if err != nil {
			t.Fatal(err)
		}
		if _, err := getVerified(b, Objects, Ref{ID: obj, Size: int64(len(bad))}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("GetVerified of an object with other bytes: %v; want ErrCorrupt", err)
		}
		// Same bytes, wrong length announced.
		put(t, b, Objects, hashOf(good), good)
		if _, err := getVerified(b, Objects, Ref{ID: hashOf(good), Size: 2999}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("GetVerified with a wrong size: %v; want ErrCorrupt", err)
		}
	}
	if s.corrupt != nil {
		for _, ns := range []Namespace{Objects, Layers, Results} {
			raw := []byte("<html>this is no zstd frame</html>")
			id := hashOf(append([]byte(ns.String()), raw...))
			s.corrupt(t, ns, id, raw)
			_, err := getVerified(b, ns, Ref{ID: id, Size: -1})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("GetVerified of raw garbage in %s: %v; want ErrCorrupt", ns, err)
			}
		}
	}
}

// downTests: a remote that refuses connections, one that never answers and
// one that answers garbage each give an error, within the timeout.
func downTests(t *testing.T, url func(addr string) string) {
	cases := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"refused", func(t *testing.T) string { return closedAddr(t) }},
		{"hung", hungServer},
		{"garbage", garbageServer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const timeout = time.Second
			b, err := Open(context.Background(), url(c.addr(t)), Options{Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			data := []byte("x")
			ref := Ref{ID: hashOf(data), Size: 1}
			ops := []struct {
				name string
				f    func() error
			}{
				{"Has", func() error { _, err := b.Has(context.Background(), Objects, []Ref{ref}); return err }},
				{"Get", func() error { _, err := getVerified(b, Results, Ref{ID: ref.ID, Size: -1}); return err }},
				{"Put", func() error { return b.Put(context.Background(), Layers, ref, bytes.NewReader(data)) }},
			}
			errs := make([]error, len(ops))
			took := make([]time.Duration, len(ops))
			var wg sync.WaitGroup
			for i, op := range ops { // at once: a hung server costs one timeout
				wg.Go(func() {
					start := time.Now()
					errs[i] = op.f()
					took[i] = time.Since(start)
				})
			}
			wg.Wait()
			for i, op := range ops {
				err := errs[i]
				if err == nil {
					t.Fatalf("%s succeeded against a %s server", op.name, c.name)
				}
				if took[i] > timeout+time.Second {
					t.Fatalf("%s took %s; want the error within about %s", op.name, took[i], timeout)
				}
				if !strings.Contains(err.Error(), "remote ") {
					t.Fatalf("%s: the error does not name the remote: %v", op.name, err)
				}
				t.Logf("%s after %s: %v", op.name, took[i].Round(time.Millisecond), err)
			}
		})
	}
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}
