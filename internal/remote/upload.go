package remote

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
)

// Opener opens a blob's bytes for upload (from the local store).
type Opener func(ref Ref) (io.ReadCloser, error)

// Uploaded says what UploadMissing did.
type Uploaded struct {
	Asked, Put int   // refs asked about; refs put (alone or in packs)
	Bytes      int64 // their plain size
	Packed     int   // of Put, the objects put in packs (see UploadLayers)
	Packs      int   // packs put
}

// hasBatch is how many ids one existence query asks about.
const hasBatch = 1000

// UploadMissing puts the refs the remote lacks: one existence query per
// batch of ids (Missing), then the missing blobs in parallel (PutAll).
func UploadMissing(ctx context.Context, b Backend, ns Namespace, refs []Ref, open Opener, parallelism int) (Uploaded, error) {
	missing, err := Missing(ctx, b, ns, refs)
	if err != nil {
		return Uploaded{Asked: len(refs)}, err
	}
	up, err := PutAll(ctx, b, ns, missing, open, parallelism)
	up.Asked = len(refs)
	return up, err
}

// Missing returns the refs the remote lacks, in order: one existence
// query per batch of ids.
func Missing(ctx context.Context, b Backend, ns Namespace, refs []Ref) ([]Ref, error) {
	var missing []Ref
	for start := 0; start < len(refs); start += hasBatch {
		chunk := refs[start:min(start+hasBatch, len(refs))]
		has, err := b.Has(ctx, ns, chunk)
		if err != nil {
			return nil, err
		}
		for i, h := range has {
			if !h {
				missing = append(missing, chunk[i])
			}
		}
	}
	return missing, nil
}

// PutAll puts refs in parallel, without asking whether the remote has
// them. Where the protocol can carry many blobs in one request (the
// REAPI's BatchUpdateBlobs), small objects are packed into as few
// requests as its size limit allows.
func PutAll(ctx context.Context, b Backend, ns Namespace, missing []Ref, open Opener, parallelism int) (Uploaded, error) {
	if parallelism <= 0 {
		parallelism = 16
	}
	up := Uploaded{Asked: len(missing)}
	var put atomic.Int64
	var bytes atomic.Int64
	single := missing
	if bp, ok := b.(batchPutter); ok && ns == Objects && len(missing) > 0 {
		limit, err := bp.batchLimit(ctx)
		if err != nil {
			return up, fmt.Errorf("remote %s: %w", b.Location(), err)
		}
		var batches [][]Ref
		single, batches = packBatches(missing, limit)
		// Batches are read into memory: fewer at once.
		err = parallel(ctx, len(batches), min(parallelism, 4), func(ctx context.Context, i int) error {
			data := make([][]byte, len(batches[i]))
			for j, ref := range batches[i] {
				d, err := readAll(open, ref)
				if err != nil {
					return err
				}
				data[j] = d
			}
			if err := bp.putBatch(ctx, ns, batches[i], data); err != nil {
				return err
			}
			put.Add(int64(len(batches[i])))
			for _, ref := range batches[i] {
				bytes.Add(ref.Size)
			}
			return nil
		})
		if err != nil {
			up.Put, up.Bytes = int(put.Load()), bytes.Load()
			return up, err
		}
	}
	err := parallel(ctx, len(single), parallelism, func(ctx context.Context, i int) error {
		rc, err := open(single[i])
		if err != nil {
			return fmt.Errorf("upload %s %s: %w", ns, single[i].ID, err)
		}
		defer rc.Close()
		if err := b.Put(ctx, ns, single[i], rc); err != nil {
			return err
		}
		put.Add(1)
		bytes.Add(single[i].Size)
		return nil
	})
	up.Put, up.Bytes = int(put.Load()), bytes.Load()
	return up, err
}

func readAll(open Opener, ref Ref) ([]byte, error) {
	rc, err := open(ref)
	if err != nil {
		return nil, fmt.Errorf("upload object %s: %w", ref.ID, err)
	}
	defer rc.Close()
	d := make([]byte, ref.Size)
	if _, err := io.ReadFull(rc, d); err != nil {
		return nil, fmt.Errorf("upload object %s: %w", ref.ID, err)
	}
	return d, nil
}

// batchPutter is a backend that stores many small blobs in one request.
type batchPutter interface {
	batchLimit(ctx context.Context) (int64, error)
	putBatch(ctx context.Context, ns Namespace, refs []Ref, data [][]byte) error
}

// batchMaxBlob is the largest blob packed into a batch; bigger ones go
// alone (a batch is held in memory, and big blobs gain nothing from it).
const batchMaxBlob = 256 << 10

// packBatches splits refs into the ones sent alone and batches of small
// ones, each batch at most limit bytes.
func packBatches(refs []Ref, limit int64) (single []Ref, batches [][]Ref) {
	var cur []Ref
	var curSize int64
	for _, ref := range refs {
		// ~100 bytes a blob for the digest and the message framing.
		size := ref.Size + 100
		if ref.Size > batchMaxBlob || size > limit {
			single = append(single, ref)
			continue
		}
		if curSize+size > limit {
			batches = append(batches, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, ref)
		curSize += size
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return single, batches
}

var _ batchPutter = (*grpcBackend)(nil)
