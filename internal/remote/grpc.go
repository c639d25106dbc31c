package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// grpcBackend speaks the Remote Execution API (v2) to a cache that
// bazel-remote, Buildbarn, BuildBuddy, NativeLink or BuildGrid serve.
//
// Objects are CAS blobs: their id is the sha256 of their bytes, which is
// the CAS digest's hash, so a team's existing CAS holds them as they are
// (plain bytes: the CAS checks every digest it receives). Existence is one
// FindMissingBlobs per batch; small blobs travel with BatchReadBlobs and
// BatchUpdateBlobs, big ones with ByteStream Read and Write.
//
// Layers and results are not content-addressed by the CAS's rule (a result
// is named by its step key), so they live in the ActionCache. The mapping,
// the same for every smelt:
//
//	action digest = Digest{hash: sha256(P), size_bytes: len(P)}
//	P             = "smelt-remote-v1 " + namespace + " " + id
//	                (e.g. "smelt-remote-v1 results 3fa9…", 80 bytes)
//	ActionResult  = {output_files: [{path: namespace, digest: D}], exit_code: 0}
//
// where D is the CAS digest of the record's bytes, uploaded to the CAS
// first. The "smelt-remote-v1" prefix keeps these digests apart from any
// real action's digest (a real action digest hashes a serialized Action
// message, which never begins with those bytes). No action cache entry has
// more than one output file, and a reader checks the file's path.
type grpcBackend struct {
	conn     *grpc.ClientConn
	cas      repb.ContentAddressableStorageClient
	ac       repb.ActionCacheClient
	bs       bspb.ByteStreamClient
	caps     repb.CapabilitiesClient
	instance string
	loc      string
	opts     Options

	capsMu   sync.Mutex
	maxBatch int64 // bytes in one batch request; 0 until asked
}

// grpcMaxMsg is gRPC's default message size limit, which servers keep.
const grpcMaxMsg = 4 << 20

// findMissingMax bounds the digests of one FindMissingBlobs (~80 bytes each).
const findMissingMax = 10000

func openGRPC(ctx context.Context, u *url.URL, opts Options) (Backend, error) {
	loc := redact(u)
	if u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("remote %s: write grpc://HOST:PORT[/INSTANCE]", loc)
	}
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	secure := u.Scheme == "grpcs"
	if secure {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
			opts.Stats.Requests.Add(1)
			return invoker(ctx, method, req, reply, cc, o...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
			opts.Stats.Requests.Add(1)
			return streamer(ctx, desc, cc, method, o...)
		}),
	}
	token := opts.Token
	if token == "" {
		token = os.Getenv("SMELT_REMOTE_TOKEN")
	}
	if token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer{token: token, secure: secure}))
	}
	conn, err := grpc.NewClient(u.Host, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", loc, err)
	}
	return &grpcBackend{
		conn:     conn,
		cas:      repb.NewContentAddressableStorageClient(conn),
		ac:       repb.NewActionCacheClient(conn),
		bs:       bspb.NewByteStreamClient(conn),
		caps:     repb.NewCapabilitiesClient(conn),
		instance: strings.Trim(u.Path, "/"),
		loc:      loc,
		opts:     opts,
	}, nil
}

type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

func (b *grpcBackend) Location() string { return b.loc }

func (b *grpcBackend) Close() error { return b.conn.Close() }

// batchLimit is the most bytes of blobs one batch request carries: the
// server's advertised limit, else gRPC's message limit, less room for the
// message's own fields. It asks the server once; an unreachable server's
// error is returned (and asked again next time).
func (b *grpcBackend) batchLimit(ctx context.Context) (int64, error) {
	b.capsMu.Lock()
	defer b.capsMu.Unlock()
	if b.maxBatch > 0 {
		return b.maxBatch, nil
	}
	cctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	c, err := b.caps.GetCapabilities(cctx, &repb.GetCapabilitiesRequest{InstanceName: b.instance})
	switch status.Code(err) {
	case codes.OK:
	case codes.Unavailable, codes.DeadlineExceeded, codes.Unauthenticated, codes.PermissionDenied, codes.Canceled:
		return 0, err
	default:
		// A cache without the Capabilities service: assume gRPC's defaults.
	}
	if fns := c.GetCacheCapabilities().GetDigestFunctions(); len(fns) > 0 && !slices.Contains(fns, repb.DigestFunction_SHA256) {
		return 0, status.Errorf(codes.FailedPrecondition, "the server's CAS does not use sha256 digests (it uses %v), which smelt's objects are named by: use another instance", fns)
	}
	limit := int64(grpcMaxMsg)
	if m := c.GetCacheCapabilities().GetMaxBatchTotalSizeBytes(); m > 0 {
		limit = min(limit, m)
	}
	b.maxBatch = limit - 64<<10
	return b.maxBatch, nil
}

// grpcError says what a gRPC status means for the user.
func (b *grpcBackend) grpcError(op string, ns Namespace, id ID, err error) error {
	st, _ := status.FromError(err)
	what := fmt.Sprintf("remote %s: %s %s %s", b.loc, op, ns, id)
	switch st.Code() {
	case codes.NotFound:
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	case codes.Unavailable:
		return fmt.Errorf("%s: unavailable (%s); check that the server is up and the URL is right", what, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: no answer within %s; the server is slow or unreachable", what, b.opts.Timeout)
	case codes.Unauthenticated, codes.PermissionDenied:
		return fmt.Errorf("%s: %s (%s); check SMELT_REMOTE_TOKEN and that it may %s", what, st.Code(), st.Message(), map[bool]string{true: "write", false: "read"}[op == "put"])
	case codes.Canceled:
		return fmt.Errorf("%s: %w", what, context.Canceled)
	}
	return fmt.Errorf("%s: %s: %s", what, st.Code(), st.Message())
}

func digest(ref Ref) *repb.Digest { return &repb.Digest{Hash: string(ref.ID), SizeBytes: ref.Size} }

// actionDigest is the ActionCache key of a layer or a result (see the type's doc).
func actionDigest(ns Namespace, id ID) *repb.Digest {
	p := "smelt-remote-v1 " + ns.String() + " " + string(id)
	h := sha256.Sum256([]byte(p))
	return &repb.Digest{Hash: hex.EncodeToString(h[:]), SizeBytes: int64(len(p))}
}

func (b *grpcBackend) Get(ctx context.Context, ns Namespace, ref Ref) (io.ReadCloser, error) {
	if err := check(b.loc, ns, ref); err != nil {
		return nil, err
	}
	if ns == Objects {
		if ref.Size < 0 {
			return nil, fmt.Errorf("remote %s: get object %s: the CAS needs the object's size", b.loc, ref.ID)
		}
		return b.getBlob(ctx, ns, ref, digest(ref))
	}
	actx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	ar, err := b.ac.GetActionResult(actx, &repb.GetActionResultRequest{
		InstanceName:      b.instance,
		ActionDigest:      actionDigest(ns, ref.ID),
		InlineOutputFiles: []string{ns.String()},
	})
	if err != nil {
		return nil, b.grpcError("get", ns, ref.ID, err)
	}
	files := ar.GetOutputFiles()
	if len(files) != 1 || files[0].GetPath() != ns.String() || files[0].GetDigest() == nil {
		return nil, fmt.Errorf("remote %s: %s %s: the action cache entry is not smelt's (%d output files): %w", b.loc, ns, ref.ID, len(files), ErrCorrupt)
	}
	f := files[0]
	if c := f.GetContents(); len(c) > 0 || f.GetDigest().GetSizeBytes() == 0 {
		b.opts.Stats.Down.Add(int64(len(c)))
		return io.NopCloser(bytes.NewReader(c)), nil
	}
	return b.getBlob(ctx, ns, ref, f.GetDigest())
}

// getBlob reads a CAS blob: one BatchReadBlobs when it is small, a
// ByteStream Read otherwise.
func (b *grpcBackend) getBlob(ctx context.Context, ns Namespace, ref Ref, d *repb.Digest) (io.ReadCloser, error) {
	if d.GetSizeBytes() == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	limit, err := b.batchLimit(ctx)
	if err != nil {
		return nil, b.grpcError("get", ns, ref.ID, err)
	}
	if d.GetSizeBytes() <= limit {
		bctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
		defer cancel()
		res, err := b.cas.BatchReadBlobs(bctx, &repb.BatchReadBlobsRequest{InstanceName: b.instance, Digests: []*repb.Digest{d}})
		if err != nil {
			return nil, b.grpcError("get", ns, ref.ID, err)
		}
		if len(res.GetResponses()) != 1 {
			return nil, fmt.Errorf("remote %s: get %s %s: %d answers to one read: %w", b.loc, ns, ref.ID, len(res.GetResponses()), ErrCorrupt)
		}
		r := res.GetResponses()[0]
		if err := status.FromProto(r.GetStatus()).Err(); err != nil {
			return nil, b.grpcError("get", ns, ref.ID, err)
		}
		b.opts.Stats.Down.Add(int64(len(r.GetData())))
		return io.NopCloser(bytes.NewReader(r.GetData())), nil
	}
	// Each message, the first included (a missing blob is only reported
	// then), must come within the timeout.
	sctx, idle, cancel := withIdleTimeout(ctx, b.opts.Timeout)
	stream, err := b.bs.Read(sctx, &bspb.ReadRequest{ResourceName: b.resource("blobs", d)})
	if err != nil {
		cancel()
		return nil, b.grpcError("get", ns, ref.ID, err)
	}
	r := idle(&bsReader{b: b, ns: ns, id: ref.ID, stream: stream})
	// Read the first message now, so that a missing blob is ErrNotFound
	// from Get, as on every backend.
	var none [0]byte
	if _, err := r.Read(none[:]); err != nil && err != io.EOF {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (b *grpcBackend) resource(kind string, d *repb.Digest) string {
	r := fmt.Sprintf("%s/%s/%d", kind, d.GetHash(), d.GetSizeBytes())
	if b.instance != "" {
		r = b.instance + "/" + r
	}
	return r
}

type bsReader struct {
	b      *grpcBackend
	ns     Namespace
	id     ID
	stream bspb.ByteStream_ReadClient
	buf    []byte
	eof    bool
}

// Read fetches the next message when its buffer is empty, even for an
// empty p (Get uses that to see the first answer).
func (r *bsReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		m, err := r.stream.Recv()
		if err == io.EOF {
			r.eof = true
			return 0, io.EOF
		}
		if err != nil {
			return 0, r.b.grpcError("get", r.ns, r.id, err)
		}
		r.buf = m.GetData()
		if len(p) == 0 {
			return 0, nil
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.b.opts.Stats.Down.Add(int64(n))
	return n, nil
}

func (r *bsReader) Close() error { return nil } // idleReader cancels the stream

func (b *grpcBackend) Put(ctx context.Context, ns Namespace, ref Ref, r io.Reader) error {
	if err := checkPut(b.loc, ns, ref); err != nil {
		return err
	}
	if ns == Objects {
		return b.putBlob(ctx, ns, ref.ID, digest(ref), r)
	}
	// A record is read into memory to name it by its hash (records and
	// manifests are small; MaxRecord bounds them).
	if ref.Size > MaxRecord {
		return fmt.Errorf("remote %s: put %s %s: %d bytes is more than a record may have", b.loc, ns, ref.ID, ref.Size)
	}
	data := make([]byte, ref.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		return fmt.Errorf("remote %s: put %s %s: %w", b.loc, ns, ref.ID, err)
	}
	h := sha256.Sum256(data)
	d := &repb.Digest{Hash: hex.EncodeToString(h[:]), SizeBytes: ref.Size}
	if err := b.putBlob(ctx, ns, ref.ID, d, bytes.NewReader(data)); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	_, err := b.ac.UpdateActionResult(actx, &repb.UpdateActionResultRequest{
		InstanceName: b.instance,
		ActionDigest: actionDigest(ns, ref.ID),
		ActionResult: &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: ns.String(), Digest: d}}},
	})
	if err != nil {
		return b.grpcError("put", ns, ref.ID, err)
	}
	return nil
}

// putBlob uploads a CAS blob: one BatchUpdateBlobs when it is small, a
// ByteStream Write in chunks otherwise.
func (b *grpcBackend) putBlob(ctx context.Context, ns Namespace, id ID, d *repb.Digest, r io.Reader) error {
	size := d.GetSizeBytes()
	limit, err := b.batchLimit(ctx)
	if err != nil {
		return b.grpcError("put", ns, id, err)
	}
	if size <= limit {
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("remote %s: put %s %s: %w", b.loc, ns, id, err)
		}
		bctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
		defer cancel()
		res, err := b.cas.BatchUpdateBlobs(bctx, &repb.BatchUpdateBlobsRequest{
			InstanceName: b.instance,
			Requests:     []*repb.BatchUpdateBlobsRequest_Request{{Digest: d, Data: data}},
		})
		if err != nil {
			return b.grpcError("put", ns, id, err)
		}
		for _, r := range res.GetResponses() {
			if err := status.FromProto(r.GetStatus()).Err(); err != nil {
				return b.grpcError("put", ns, id, err)
			}
		}
		b.opts.Stats.Up.Add(size)
		return nil
	}
	var u [16]byte
	rand.Read(u[:])
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
	wctx, cancel := context.WithTimeout(ctx, b.opts.Timeout+time.Duration(size>>20)*time.Second)
	defer cancel()
	stream, err := b.bs.Write(wctx)
	if err != nil {
		return b.grpcError("put", ns, id, err)
	}
	name := b.resource("uploads/"+uuid+"/blobs", d)
	buf := make([]byte, 1<<20)
	var off int64
	for off < size {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-off)])
		if err != nil {
			return fmt.Errorf("remote %s: put %s %s: %w", b.loc, ns, id, err)
		}
		req := &bspb.WriteRequest{WriteOffset: off, Data: buf[:n], FinishWrite: off+int64(n) == size}
		if off == 0 {
			req.ResourceName = name
		}
		if err := stream.Send(req); err != nil {
			if err == io.EOF {
				break // the server ends early when it already has the blob
			}
			return b.grpcError("put", ns, id, err)
		}
		off += int64(n)
		b.opts.Stats.Up.Add(int64(n))
	}
	res, err := stream.CloseAndRecv()
	if err != nil {
		return b.grpcError("put", ns, id, err)
	}
	if res.GetCommittedSize() != size && res.GetCommittedSize() != -1 {
		return fmt.Errorf("remote %s: put %s %s: the server committed %d of %d bytes", b.loc, ns, id, res.GetCommittedSize(), size)
	}
	return nil
}

// putBatch uploads small objects in one BatchUpdateBlobs (UploadMissing
// packs them within batchLimit).
func (b *grpcBackend) putBatch(ctx context.Context, ns Namespace, refs []Ref, data [][]byte) error {
	req := &repb.BatchUpdateBlobsRequest{InstanceName: b.instance}
	var n int64
	for i, ref := range refs {
		if err := check(b.loc, ns, ref); err != nil {
			return err
		}
		req.Requests = append(req.Requests, &repb.BatchUpdateBlobsRequest_Request{Digest: digest(ref), Data: data[i]})
		n += int64(len(data[i]))
	}
	bctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	res, err := b.cas.BatchUpdateBlobs(bctx, req)
	if err != nil {
		return b.grpcError("put", ns, refs[0].ID, err)
	}
	for _, r := range res.GetResponses() {
		if err := status.FromProto(r.GetStatus()).Err(); err != nil {
			return b.grpcError("put", ns, ID(r.GetDigest().GetHash()), err)
		}
	}
	b.opts.Stats.Up.Add(n)
	return nil
}

func (b *grpcBackend) Has(ctx context.Context, ns Namespace, refs []Ref) ([]bool, error) {
	for _, ref := range refs {
		if err := check(b.loc, ns, ref); err != nil {
			return nil, err
		}
		if ns == Objects && ref.Size < 0 {
			return nil, fmt.Errorf("remote %s: has object %s: the CAS needs the object's size", b.loc, ref.ID)
		}
	}
	out := make([]bool, len(refs))
	if ns != Objects {
		// The action cache has no batch query.
		err := parallel(ctx, len(refs), b.opts.Parallel, func(ctx context.Context, i int) error {
			actx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
			defer cancel()
			_, err := b.ac.GetActionResult(actx, &repb.GetActionResultRequest{InstanceName: b.instance, ActionDigest: actionDigest(ns, refs[i].ID)})
			if status.Code(err) == codes.NotFound {
				return nil
			}
			if err != nil {
				return b.grpcError("has", ns, refs[i].ID, err)
			}
			out[i] = true
			return nil
		})
		return out, err
	}
	for start := 0; start < len(refs); start += findMissingMax {
		chunk := refs[start:min(start+findMissingMax, len(refs))]
		req := &repb.FindMissingBlobsRequest{InstanceName: b.instance}
		for _, ref := range chunk {
			req.BlobDigests = append(req.BlobDigests, digest(ref))
		}
		fctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
		res, err := b.cas.FindMissingBlobs(fctx, req)
		cancel()
		if err != nil {
			return nil, b.grpcError("has", ns, chunk[0].ID, err)
		}
		missing := map[string]bool{}
		for _, d := range res.GetMissingBlobDigests() {
			missing[d.GetHash()] = true
		}
		for i, ref := range chunk {
			out[start+i] = !missing[string(ref.ID)]
		}
	}
	return out, nil
}
