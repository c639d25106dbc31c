// Package remote is smelt's remote cache: blobs in three namespaces that
// mirror the local store (file objects by content hash, layer manifests by
// id, result records by step key), and two that pack a layer's small
// objects (packs, and a pack index per layer: see pack.go), on storage
// teams already run, chosen by URL:
//
//	file:///PATH                  a shared directory (NFS, a mounted volume)
//	http://HOST/PREFIX, https://  GET/PUT/HEAD, e.g. nginx's WebDAV module
//	s3://BUCKET/PREFIX            any S3-compatible store (AWS SDK for Go v2)
//	grpc://HOST:PORT[/INSTANCE]   the Remote Execution API's CAS and action
//	grpcs://HOST:PORT[/INSTANCE]  cache (bazel-remote, Buildbarn, BuildGrid…)
//
// A Backend only moves bytes; it trusts nothing it reads. Callers read
// through GetVerified, which checks an object's or a layer's hash as the
// bytes stream by, and verify a result record's signature (package trust)
// before using it.
//
// UploadLayers pushes a layer's objects; on file, http and s3, whose
// protocols have no batch, the small ones go into packs, so that a layer
// costs a bounded number of requests both ways (ReadPackIndex, ReadPacked).
//
// The interface follows restic's backend: a handful of methods, each one
// request (or one batch) on the wire, errors that name the remote.
package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Namespace is one of the kinds of blob a remote holds.
type Namespace uint8

const (
	// Objects are file contents, named by their sha256.
	Objects Namespace = iota
	// Layers are layer manifests, named by the sha256 of their bytes.
	Layers
	// Results are result records, named by the step key.
	Results
	// Packs hold small objects, a zstd frame each, stored as they are;
	// named by the sha256 of their bytes (see pack.go).
	Packs
	// PackIndexes say where a layer's small objects lie in packs; named
	// by the layer's id.
	PackIndexes
)

var nsNames = [...]string{Objects: "objects", Layers: "layers", Results: "results", Packs: "packs", PackIndexes: "packindex"}

func (ns Namespace) String() string {
	if int(ns) < len(nsNames) {
		return nsNames[ns]
	}
	return fmt.Sprintf("namespace(%d)", ns)
}

func (ns Namespace) valid() bool { return int(ns) < len(nsNames) }

// ID names a blob within its namespace: 64 lowercase hex digits (a sha256,
// or a step key, which has the same shape). Backends check it before it
// becomes part of a path or a URL.
type ID string

// Valid reports whether id is 64 lowercase hex digits.
func (id ID) Valid() bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Ref is a blob's id with its size in bytes, uncompressed. The Remote
// Execution API names CAS blobs by hash and size, so an object's Ref needs
// its size (a layer's entries carry it). Size is -1 where it is not known
// beforehand (layers and results when reading); Put always knows it.
type Ref struct {
	ID   ID
	Size int64
}

// Backend is one remote cache.
type Backend interface {
	// Location is the URL it was opened with (no credentials), for messages.
	Location() string
	// Get streams a blob's bytes, uncompressed. A missing blob gives an
	// error that matches ErrNotFound. The bytes are not verified: use
	// GetVerified.
	Get(ctx context.Context, ns Namespace, ref Ref) (io.ReadCloser, error)
	// Put stores ref.Size bytes read from r under ref.ID. Writes are atomic:
	// a reader sees the whole blob or none of it.
	Put(ctx context.Context, ns Namespace, ref Ref, r io.Reader) error
	// Has reports, for each ref in order, whether the remote holds it: one
	// request per batch where the protocol allows one, parallel requests
	// otherwise.
	Has(ctx context.Context, ns Namespace, refs []Ref) ([]bool, error)
	// Close releases connections.
	Close() error
}

// Options tune every backend.
type Options struct {
	// Timeout bounds each request until its first byte of answer (a dial,
	// a HEAD, a batch query, the start of a download); default 30 s.
	Timeout time.Duration
	// Token is sent as "Authorization: Bearer TOKEN" (http and grpc);
	// default $SMELT_REMOTE_TOKEN.
	Token string
	// Parallel bounds concurrent requests of one batch; default 16.
	Parallel int
	// Stats, when set, counts requests and bytes on the wire.
	Stats *Stats
}

// Stats counts what a backend sent and received. Bytes are as on the wire
// (compressed where the backend compresses).
type Stats struct {
	Requests atomic.Int64
	Up       atomic.Int64
	Down     atomic.Int64
}

func (o *Options) fill() {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.Stats == nil {
		o.Stats = new(Stats)
	}
}

// ErrNotFound is matched (errors.Is) by the error of a Get of a missing blob.
var ErrNotFound = errors.New("not found")

// ErrCorrupt is matched by the error of a read whose bytes do not hash to
// the id asked for, or that cannot be decompressed.
var ErrCorrupt = errors.New("corrupt blob")

// Open opens the backend a URL names (see the package doc).
func Open(ctx context.Context, rawURL string, opts Options) (Backend, error) {
	opts.fill()
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("remote %q is not a URL: use file:///PATH, http(s)://HOST/PREFIX, s3://BUCKET/PREFIX or grpc(s)://HOST:PORT[/INSTANCE]", rawURL)
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
		return openFile(u, opts)
	case "http", "https":
		return openHTTP(u, opts)
	case "s3":
		return openS3(ctx, u, opts)
	case "grpc", "grpcs":
		return openGRPC(ctx, u, opts)
	}
	return nil, fmt.Errorf("remote %s: unknown scheme %q: use file, http, https, s3, grpc or grpcs", redact(u), u.Scheme)
}

// redact drops a URL's password, for messages.
func redact(u *url.URL) string { return u.Redacted() }

// check validates a namespace and a ref before they reach a path or a URL.
func check(loc string, ns Namespace, ref Ref) error {
	if !ns.valid() {
		return fmt.Errorf("remote %s: unknown %v", loc, ns)
	}
	if !ref.ID.Valid() {
		return fmt.Errorf("remote %s: %s id %q is not 64 lowercase hex digits", loc, ns, ref.ID)
	}
	return nil
}

// checkPut is check for Put, which must know the size.
func checkPut(loc string, ns Namespace, ref Ref) error {
	if err := check(loc, ns, ref); err != nil {
		return err
	}
	if ref.Size < 0 {
		return fmt.Errorf("remote %s: put %s %s: the size must be known", loc, ns, ref.ID)
	}
	return nil
}

// blobPath is a blob's place below a prefix, the same on every backend that
// has paths: NS/ab/abcdef… (two hex digits fan a namespace out, so that no
// directory of a shared file system holds millions of entries).
func blobPath(ns Namespace, id ID) string {
	return ns.String() + "/" + string(id[:2]) + "/" + string(id)
}
