// Package reapi holds what a client and a worker of the Remote Execution
// API (v2) share: the engine's address, digests, and moving blobs to and
// from its CAS with as few requests as the CAS allows (FindMissingBlobs
// first, small blobs in batches, ByteStream for the big ones).
package reapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Engine is where an engine listens: grpc://HOST:PORT[/INSTANCE].
type Engine struct {
	Addr     string // HOST:PORT
	Instance string // "" for the default instance
}

// ParseEngine reads grpc://HOST:PORT[/INSTANCE].
func ParseEngine(s string) (Engine, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "grpc" || u.Host == "" || u.Port() == "" {
		return Engine{}, fmt.Errorf("engine %q: want grpc://HOST:PORT[/INSTANCE]", s)
	}
	return Engine{Addr: u.Host, Instance: strings.Trim(u.Path, "/")}, nil
}

func (e Engine) String() string {
	if e.Instance == "" {
		return "grpc://" + e.Addr
	}
	return "grpc://" + e.Addr + "/" + e.Instance
}

// Dial connects lazily (the first call reports an unreachable engine).
func Dial(e Engine) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(e.Addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", e, err)
	}
	return conn, nil
}

// Digest of data (sha256, the digest function smelt uses).
func Digest(data []byte) *repb.Digest {
	h := sha256.Sum256(data)
	return &repb.Digest{Hash: hex.EncodeToString(h[:]), SizeBytes: int64(len(data))}
}

// DigestFile hashes a file.
func DigestFile(path string) (*repb.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &repb.Digest{Hash: hex.EncodeToString(h.Sum(nil)), SizeBytes: n}, nil
}

// Marshal serializes m deterministically, so equal messages have equal
// digests.
func Marshal(m proto.Message) ([]byte, *repb.Digest, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, nil, err
	}
	return b, Digest(b), nil
}

// Key is a digest as one string ("hash/size").
func Key(d *repb.Digest) string { return fmt.Sprintf("%s/%d", d.GetHash(), d.GetSizeBytes()) }

// BatchMax is the largest blob sent or read in a batch; bigger ones go
// through ByteStream. REAPI servers accept batches of at least 4 MiB in
// total, less the request's own framing.
const BatchMax = 4<<20 - 64<<10

// Blob is one CAS blob to upload: its bytes or the file holding them.
type Blob struct {
	Digest *repb.Digest
	Data   []byte
	Path   string
}

func (b Blob) read() ([]byte, error) {
	if b.Path == "" {
		return b.Data, nil
	}
	data, err := os.ReadFile(b.Path)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != b.Digest.SizeBytes {
		return nil, fmt.Errorf("%s changed while it was uploaded", b.Path)
	}
	return data, nil
}

// CAS is an engine's ContentAddressableStorage and ByteStream.
type CAS struct {
	cas      repb.ContentAddressableStorageClient
	bs       bspb.ByteStreamClient
	instance string
}

func NewCAS(conn *grpc.ClientConn, instance string) *CAS {
	return &CAS{cas: repb.NewContentAddressableStorageClient(conn), bs: bspb.NewByteStreamClient(conn), instance: instance}
}

// FindMissing returns the digests the CAS lacks (each once).
func (c *CAS) FindMissing(ctx context.Context, ds []*repb.Digest) ([]*repb.Digest, error) {
	seen := map[string]bool{}
	var uniq []*repb.Digest
	for _, d := range ds {
		if k := Key(d); !seen[k] && d.SizeBytes > 0 {
			seen[k] = true
			uniq = append(uniq, d)
		}
	}
	var missing []*repb.Digest
	for len(uniq) > 0 {
		n := min(len(uniq), 1000)
		r, err := c.cas.FindMissingBlobs(ctx, &repb.FindMissingBlobsRequest{InstanceName: c.instance, BlobDigests: uniq[:n]})
		if err != nil {
			return nil, fmt.Errorf("find missing blobs: %w", err)
		}
		missing = append(missing, r.MissingBlobDigests...)
		uniq = uniq[n:]
	}
	return missing, nil
}

// UploadMissing uploads the blobs the CAS lacks and returns how many it
// sent.
func (c *CAS) UploadMissing(ctx context.Context, blobs []Blob) (int, error) {
	byKey := map[string]Blob{}
	ds := make([]*repb.Digest, 0, len(blobs))
	for _, b := range blobs {
		byKey[Key(b.Digest)] = b
		ds = append(ds, b.Digest)
	}
	missing, err := c.FindMissing(ctx, ds)
	if err != nil {
		return 0, err
	}
	var batch []*repb.BatchUpdateBlobsRequest_Request
	var size int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		r, err := c.cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{InstanceName: c.instance, Requests: batch})
		if err != nil {
			return fmt.Errorf("upload %d blobs: %w", len(batch), err)
		}
		for _, s := range r.Responses {
			if s.Status.GetCode() != int32(codes.OK) {
				return fmt.Errorf("upload blob %s: %s", Key(s.Digest), s.Status.GetMessage())
			}
		}
		batch, size = nil, 0
		return nil
	}
	for _, d := range missing {
		b := byKey[Key(d)]
		if d.SizeBytes > BatchMax {
			if err := c.write(ctx, b); err != nil {
				return 0, err
			}
			continue
		}
		if size+d.SizeBytes > BatchMax {
			if err := flush(); err != nil {
				return 0, err
			}
		}
		data, err := b.read()
		if err != nil {
			return 0, err
		}
		batch = append(batch, &repb.BatchUpdateBlobsRequest_Request{Digest: d, Data: data})
		size += d.SizeBytes + 100
	}
	return len(missing), flush()
}

func (c *CAS) resource(kind string, d *repb.Digest) string {
	name := fmt.Sprintf("%s/%s/%d", kind, d.Hash, d.SizeBytes)
	if c.instance != "" {
		name = c.instance + "/" + name
	}
	return name
}

// write sends one big blob through ByteStream, in 1 MiB chunks.
func (c *CAS) write(ctx context.Context, b Blob) error {
	var r io.Reader
	if b.Path != "" {
		f, err := os.Open(b.Path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	} else {
		r = bytes.NewReader(b.Data)
	}
	u := make([]byte, 16)
	rand.Read(u)
	name := c.resource("uploads/"+hex.EncodeToString(u)+"/blobs", b.Digest)
	stream, err := c.bs.Write(ctx)
	if err != nil {
		return fmt.Errorf("upload %s: %w", Key(b.Digest), err)
	}
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 || off == 0 {
			last := off+int64(n) >= b.Digest.SizeBytes
			req := &bspb.WriteRequest{WriteOffset: off, Data: buf[:n], FinishWrite: last}
			if off == 0 {
				req.ResourceName = name
			}
			if err := stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("upload %s: %w", Key(b.Digest), err)
			}
			off += int64(n)
			if last {
				break
			}
		}
		if rerr != nil {
			if off != b.Digest.SizeBytes {
				return fmt.Errorf("upload %s: read %d of %d bytes: %v", Key(b.Digest), off, b.Digest.SizeBytes, rerr)
			}
			break
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return fmt.Errorf("upload %s: %w", Key(b.Digest), err)
	}
	return nil
}

// Read returns one blob's bytes (checked against its digest).
func (c *CAS) Read(ctx context.Context, d *repb.Digest) ([]byte, error) {
	got := map[string][]byte{}
	err := c.Fetch(ctx, []*repb.Digest{d}, func(d *repb.Digest, data []byte) error {
		got[Key(d)] = data
		return nil
	}, nil)
	return got[Key(d)], err
}

// ReadProto reads a blob and parses it as m.
func (c *CAS) ReadProto(ctx context.Context, d *repb.Digest, m proto.Message) error {
	b, err := c.Read(ctx, d)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("parse blob %s: %w", Key(d), err)
	}
	return nil
}

// Tree reads the Directory messages under root with GetTree, by their
// digests: those of this client's deterministic encoding, which are the
// digests a Go client (smelt) gave them; a message another encoder wrote
// may come under another digest, and then seems missing.
func (c *CAS) Tree(ctx context.Context, root *repb.Digest) (map[string]*repb.Directory, error) {
	stream, err := c.cas.GetTree(ctx, &repb.GetTreeRequest{InstanceName: c.instance, RootDigest: root})
	if err != nil {
		return nil, err
	}
	dirs := map[string]*repb.Directory{}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return dirs, nil
		}
		if err != nil {
			return dirs, err
		}
		for _, d := range resp.Directories {
			_, dg, err := Marshal(d)
			if err != nil {
				return dirs, err
			}
			dirs[Key(dg)] = d
		}
	}
}

// Fetch reads blobs: small ones in batches, handed to small as bytes; big
// ones (above BatchMax) through ByteStream, written to the file big(d)
// names (atomically, after their digest was checked). With big nil, they
// are handed to small too.
func (c *CAS) Fetch(ctx context.Context, ds []*repb.Digest, small func(*repb.Digest, []byte) error, big func(*repb.Digest) string) error {
	var batch []*repb.Digest
	var size int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		r, err := c.cas.BatchReadBlobs(ctx, &repb.BatchReadBlobsRequest{InstanceName: c.instance, Digests: batch})
		if err != nil {
			return fmt.Errorf("read %d blobs: %w", len(batch), err)
		}
		for _, b := range r.Responses {
			if b.Status.GetCode() != int32(codes.OK) {
				return fmt.Errorf("read blob %s: %s", Key(b.Digest), status.FromProto(b.Status).Err())
			}
			if Key(Digest(b.Data)) != Key(b.Digest) {
				return fmt.Errorf("read blob %s: the CAS sent other bytes", Key(b.Digest))
			}
			if err := small(b.Digest, b.Data); err != nil {
				return err
			}
		}
		batch, size = nil, 0
		return nil
	}
	for _, d := range ds {
		switch {
		case d.SizeBytes == 0:
			if err := small(d, nil); err != nil {
				return err
			}
		case d.SizeBytes > BatchMax:
			if err := c.readStream(ctx, d, small, big); err != nil {
				return err
			}
		default:
			if size+d.SizeBytes > BatchMax {
				if err := flush(); err != nil {
					return err
				}
			}
			batch = append(batch, d)
			size += d.SizeBytes + 100
		}
	}
	return flush()
}

func (c *CAS) readStream(ctx context.Context, d *repb.Digest, small func(*repb.Digest, []byte) error, big func(*repb.Digest) string) error {
	stream, err := c.bs.Read(ctx, &bspb.ReadRequest{ResourceName: c.resource("blobs", d)})
	if err != nil {
		return fmt.Errorf("read blob %s: %w", Key(d), err)
	}
	var w io.Writer
	var buf bytes.Buffer
	var f *os.File
	h := sha256.New()
	if big != nil {
		path := big(d)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err = os.CreateTemp(filepath.Dir(path), ".tmp-")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		w = io.MultiWriter(f, h)
	} else {
		w = io.MultiWriter(&buf, h)
	}
	var n int64
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read blob %s: %w", Key(d), err)
		}
		w.Write(r.Data)
		n += int64(len(r.Data))
	}
	if n != d.SizeBytes || hex.EncodeToString(h.Sum(nil)) != d.Hash {
		return fmt.Errorf("read blob %s: the CAS sent other bytes", Key(d))
	}
	if big == nil {
		return small(d, buf.Bytes())
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), big(d))
}
