package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// Packs: on file, http and s3 remotes, which have no batch protocol, the
// small objects of a layer travel in pack blobs instead of one blob each,
// so that a layer costs a bounded number of requests (GitHub's cache
// refuses more than 200 uploads a minute; S3 bills every PUT). A pack is
// zstd frames laid end to end, one frame per object, stored as it is
// (namespace Packs, named by the sha256 of its bytes); a frame per object
// keeps every object readable alone with a range GET. A layer's pack index
// (namespace PackIndexes, named by the layer's id) says where each of its
// small objects lies. The grpc backend keeps the CAS's own batches, since
// other REAPI clients must see plain CAS blobs.

// PackMaxObject is the largest object packed. Above 1 MiB a request's
// overhead (a round trip, about the time 1 MiB takes on a 100 MB/s link)
// is small next to moving the bytes, and a pack of big objects would make
// a reader that lacks one of them fetch it in a range anyway. On the
// benchmark's workspace fixture, 212 of 216 target/ files (6.9 of 11 MB)
// are at most 1 MiB; 180 of those are inline in their layer.
const PackMaxObject = 1 << 20

// packMax bounds a pack's plain bytes: a pack is spooled to a temporary
// file before its upload, and one failed upload repeats at most this
// much. A variable for tests.
var packMax int64 = 32 << 20

// packer is a backend that stores packs: bytes stored as they are (the
// frames are compressed already), read back by range.
type packer interface {
	// putRaw stores size bytes of r under ref.ID, uncompressed.
	putRaw(ctx context.Context, ns Namespace, id ID, r io.ReadSeeker, size int64) error
	// getRange streams bytes [off, off+n) of a blob stored by putRaw.
	getRange(ctx context.Context, ns Namespace, id ID, off, n int64) (io.ReadCloser, error)
}

// Packing reports whether b keeps small objects in packs.
func Packing(b Backend) bool { _, ok := b.(packer); return ok }

// PackIndex is a layer's pack index, as stored (JSON).
type PackIndex struct {
	Packs   []ID           `json:"packs"`
	Objects []PackedObject `json:"objects"`
}

// PackedObject is where an object lies: frame [Off, Off+Len) of pack
// Packs[Pack], Size bytes uncompressed.
type PackedObject struct {
	ID   ID    `json:"h"`
	Size int64 `json:"s"`
	Pack int   `json:"p"`
	Off  int64 `json:"o"`
	Len  int64 `json:"n"`
}

// LayerObjects are the objects a layer's entries name; Layer is "" for
// objects of no layer (a step's log), which travel alone.
type LayerObjects struct {
	Layer   ID
	Objects []Ref
}

// UploadLayers puts the objects of layers that the remote lacks. On a
// backend that packs, the small objects of a layer the remote lacks go
// into new packs, then the layer's index (after its packs, and before the
// caller puts the layer, so that an index a reader finds is complete). A
// layer the remote has with an index has its small objects there; one it
// has without was pushed by an older smelt, object by object: its small
// objects are asked about and put alone, as then. Big objects, and every
// object on other backends, go through UploadMissing.
//
// lacking, when not nil, says which layers the remote lacks (the caller
// asked, to put them after); else UploadLayers asks.
func UploadLayers(ctx context.Context, b Backend, layers []LayerObjects, lacking map[ID]bool, open Opener, parallelism int) (Uploaded, error) {
	var up Uploaded
	var alone []Ref
	seen := map[ID]bool{}
	addAlone := func(ref Ref) {
		if !seen[ref.ID] {
			seen[ref.ID] = true
			alone = append(alone, ref)
		}
	}
	pk, packs := b.(packer)
	var packed []LayerObjects // the small objects of layers with packs
	for _, l := range layers {
		var small []Ref
		for _, ref := range l.Objects {
			if packs && l.Layer != "" && ref.Size <= PackMaxObject {
				small = append(small, ref)
			} else {
				addAlone(ref)
			}
		}
		if len(small) > 0 {
			packed = append(packed, LayerObjects{Layer: l.Layer, Objects: small})
		}
	}
	var todo []LayerObjects // layers whose small objects are packed now
	if len(packed) > 0 {
		// A layer the remote lacks is new: its index is written before
		// it, so one query of the layers answers for most pushes. A layer
		// it has was pushed with an index, or by an older smelt without.
		ids := make([]Ref, len(packed))
		for i, l := range packed {
			ids[i] = Ref{ID: l.Layer, Size: -1}
		}
		if lacking == nil {
			missing, err := Missing(ctx, b, Layers, ids)
			if err != nil {
				return up, err
			}
			lacking = map[ID]bool{}
			for _, ref := range missing {
				lacking[ref.ID] = true
			}
		}
		var present []LayerObjects
		var refs []Ref
		for i, l := range packed {
			if lacking[l.Layer] {
				todo = append(todo, l)
			} else {
				present = append(present, l)
				refs = append(refs, ids[i])
			}
		}
		unindexed, err := Missing(ctx, b, PackIndexes, refs)
		if err != nil {
			return up, err
		}
		old := map[ID]bool{}
		for _, ref := range unindexed {
			old[ref.ID] = true
		}
		for _, l := range present {
			if old[l.Layer] {
				for _, ref := range l.Objects {
					addAlone(ref)
				}
			}
		}
	}
	// An object packed now needs no blob of its own.
	inPack := map[ID]bool{}
	for _, l := range todo {
		for _, ref := range l.Objects {
			inPack[ref.ID] = true
		}
	}
	var single []Ref
	for _, ref := range alone {
		if !inPack[ref.ID] {
			single = append(single, ref)
		}
	}
	up, err := UploadMissing(ctx, b, Objects, single, open, parallelism)
	if err != nil || len(todo) == 0 {
		return up, err
	}
	n, bytes, np, err := uploadPacks(ctx, b, pk, todo, open, parallelism)
	up.Asked += n
	up.Put += n
	up.Packed = n
	up.Bytes += bytes
	up.Packs = np
	return up, err
}

// frame is an object's place in the packs being written.
type frame struct {
	ref  Ref
	pack int
	off  int64
	len  int64
}

// uploadPacks writes the small objects of layers into packs, in layer
// order (a layer's objects lie together, for range reads), each object
// once, then each layer's index. It returns the objects and their plain
// bytes packed, and the packs put.
func uploadPacks(ctx context.Context, b Backend, pk packer, layers []LayerObjects, open Opener, parallelism int) (int, int64, int, error) {
	// Plan the packs by plain size; the compressed frames are smaller.
	var groups [][]Ref
	var cur []Ref
	var curSize int64
	planned := map[ID]bool{}
	for _, l := range layers {
		for _, ref := range l.Objects {
			if planned[ref.ID] {
				continue
			}
			planned[ref.ID] = true
			if curSize+ref.Size > packMax && len(cur) > 0 {
				groups = append(groups, cur)
				cur, curSize = nil, 0
			}
			cur = append(cur, ref)
			curSize += ref.Size
		}
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	var (
		mu     sync.Mutex
		where  = map[ID]frame{}
		ids    = make([]ID, len(groups))
		nbytes atomic.Int64
	)
	// Packs are spooled to disk while compressed: a few at once.
	err := parallel(ctx, len(groups), min(max(parallelism, 1), 4), func(ctx context.Context, i int) error {
		id, frames, err := writePack(ctx, b, pk, groups[i], open)
		if err != nil {
			return err
		}
		ids[i] = id
		mu.Lock()
		for _, f := range frames {
			f.pack = i
			where[f.ref.ID] = f
			nbytes.Add(f.ref.Size)
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return 0, 0, 0, err
	}
	err = parallel(ctx, len(layers), max(parallelism, 1), func(ctx context.Context, i int) error {
		idx := PackIndex{}
		local := map[int]int{} // pack number in this push → in this index
		for _, ref := range layers[i].Objects {
			f := where[ref.ID]
			p, ok := local[f.pack]
			if !ok {
				p = len(idx.Packs)
				local[f.pack] = p
				idx.Packs = append(idx.Packs, ids[f.pack])
			}
			idx.Objects = append(idx.Objects, PackedObject{ID: ref.ID, Size: ref.Size, Pack: p, Off: f.off, Len: f.len})
		}
		data, err := json.Marshal(&idx)
		if err != nil {
			return err
		}
		return b.Put(ctx, PackIndexes, Ref{ID: layers[i].Layer, Size: int64(len(data))}, bytes.NewReader(data))
	})
	return len(where), nbytes.Load(), len(groups), err
}

// writePack compresses refs into one pack, a frame each, spooled to a
// temporary file (no pack in memory), and puts it under the sha256 of
// its bytes.
func writePack(ctx context.Context, b Backend, pk packer, refs []Ref, open Opener) (ID, []frame, error) {
	f, err := os.CreateTemp("", "smelt-pack-*")
	if err != nil {
		return "", nil, fmt.Errorf("spool a pack: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	frames := make([]frame, 0, len(refs))
	for _, ref := range refs {
		if err := ctx.Err(); err != nil {
			return "", nil, err
		}
		rc, err := open(ref)
		if err != nil {
			return "", nil, fmt.Errorf("upload object %s: %w", ref.ID, err)
		}
		off := cw.n
		err = encode(cw, rc, ref.Size)
		rc.Close()
		if err != nil {
			return "", nil, fmt.Errorf("upload object %s: %w", ref.ID, err)
		}
		frames = append(frames, frame{ref: ref, off: off, len: cw.n - off})
	}
	id := ID(hex.EncodeToString(h.Sum(nil)))
	if err := pk.putRaw(ctx, Packs, id, io.NewSectionReader(f, 0, cw.n), cw.n); err != nil {
		return "", nil, err
	}
	return id, frames, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadPackIndex reads layer's pack index. A layer without one (pushed by
// an older smelt, or with no small objects) gives an error matching
// ErrNotFound. The index is not trusted: every object read through it is
// checked against its hash (ReadPacked).
func ReadPackIndex(ctx context.Context, b Backend, layer ID) (*PackIndex, error) {
	data, err := ReadVerified(ctx, b, PackIndexes, Ref{ID: layer, Size: -1})
	if err != nil {
		return nil, err
	}
	var idx PackIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("remote %s: pack index of layer %s is unreadable: %w", b.Location(), layer, ErrCorrupt)
	}
	for _, o := range idx.Objects {
		if o.Pack < 0 || o.Pack >= len(idx.Packs) || !o.ID.Valid() || !idx.Packs[o.Pack].Valid() ||
			o.Off < 0 || o.Len <= 0 || o.Size < 0 || o.Size > PackMaxObject || o.Len > 2*PackMaxObject+1024 {
			return nil, fmt.Errorf("remote %s: pack index of layer %s names impossible places: %w", b.Location(), layer, ErrCorrupt)
		}
	}
	return &idx, nil
}

// PackedRead is an object to read from a pack.
type PackedRead struct {
	Pack ID
	PackedObject
}

// Range reads: frames closer than rangeGap are read in one range (the
// bytes between are read and dropped), since a request costs more than
// that: about a round trip, and on S3 as much as ~4 KB of egress. Past
// maxRanges ranges in one pack, the closest ranges are merged too, so that
// a layer costs a bounded number of requests even when the store lacks
// every other object of it. Sibling steps' layers share many objects (on
// the workspace fixture, a layer's packed objects lay in up to 7 runs of
// the pack, the rest being its siblings'): with at most 4 ranges, a pull
// of every step read 1.2 MB (28%) more than the objects alone.
const (
	rangeGap  = 64 << 10
	maxRanges = 16
)

// span is a range of a pack and the frames in it.
type span struct {
	off, end int64
	objs     []PackedObject
}

// planRanges groups the frames of one pack into at most maxRanges ranges.
func planRanges(objs []PackedObject) []span {
	sort.Slice(objs, func(i, j int) bool { return objs[i].Off < objs[j].Off })
	var spans []span
	for _, o := range objs {
		if n := len(spans); n > 0 && o.Off >= spans[n-1].end && o.Off-spans[n-1].end <= rangeGap {
			spans[n-1].end = max(spans[n-1].end, o.Off+o.Len)
			spans[n-1].objs = append(spans[n-1].objs, o)
			continue
		}
		if n := len(spans); n > 0 && o.Off < spans[n-1].end {
			continue // overlapping frames: an index of garbage; its hash check fails anyway
		}
		spans = append(spans, span{off: o.Off, end: o.Off + o.Len, objs: []PackedObject{o}})
	}
	for len(spans) > maxRanges {
		best := 1
		for i := 2; i < len(spans); i++ {
			if spans[i].off-spans[i-1].end < spans[best].off-spans[best-1].end {
				best = i
			}
		}
		spans[best-1].end = spans[best].end
		spans[best-1].objs = append(spans[best-1].objs, spans[best].objs...)
		spans = append(spans[:best], spans[best+1:]...)
	}
	return spans
}

// ReadPacked reads objects from their packs: at most maxRanges range
// requests a pack, in parallel. Each object is decompressed and checked
// against its hash and size before deliver sees its bytes; the first that
// fails ends the read with an error matching ErrCorrupt that names it.
// deliver may be called from several goroutines at once.
func ReadPacked(ctx context.Context, b Backend, objs []PackedRead, parallelism int, deliver func(ref Ref, data []byte) error) error {
	pk, ok := b.(packer)
	if !ok {
		return fmt.Errorf("remote %s keeps no packs", b.Location())
	}
	byPack := map[ID][]PackedObject{}
	for _, o := range objs {
		byPack[o.Pack] = append(byPack[o.Pack], o.PackedObject)
	}
	type job struct {
		pack ID
		span
	}
	var jobs []job
	for id, list := range byPack {
		for _, s := range planRanges(list) {
			jobs = append(jobs, job{id, s})
		}
	}
	return parallel(ctx, len(jobs), max(parallelism, 1), func(ctx context.Context, i int) error {
		j := jobs[i]
		rc, err := pk.getRange(ctx, Packs, j.pack, j.off, j.end-j.off)
		if errors.Is(err, ErrNotFound) {
			return &MissingPackError{Pack: j.pack, Err: err}
		}
		if err != nil {
			return err
		}
		defer rc.Close()
		pos := j.off
		var buf []byte
		for _, o := range j.objs {
			if _, err := io.CopyN(io.Discard, rc, o.Off-pos); err != nil {
				return packReadErr(b, j.pack, o, err)
			}
			if int64(cap(buf)) < o.Len {
				buf = make([]byte, o.Len)
			}
			buf = buf[:o.Len]
			if _, err := io.ReadFull(rc, buf); err != nil {
				return packReadErr(b, j.pack, o, err)
			}
			pos = o.Off + o.Len
			data, err := unframe(buf, o.Size)
			if err == nil {
				if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != string(o.ID) {
					err = fmt.Errorf("its bytes hash to %s", hex.EncodeToString(h[:]))
				}
			}
			if err != nil {
				return fmt.Errorf("remote %s: object %s (in pack %s) is corrupt (%v): %w; it is not used", b.Location(), o.ID, j.pack, err, ErrCorrupt)
			}
			if err := deliver(Ref{ID: o.ID, Size: o.Size}, data); err != nil {
				return err
			}
		}
		return nil
	})
}

// MissingPackError is ReadPacked's error when a pack that an index names
// is not on the remote (expired, cleaned): the remote lost objects.
type MissingPackError struct {
	Pack ID
	Err  error
}

func (e *MissingPackError) Error() string { return e.Err.Error() }
func (e *MissingPackError) Unwrap() error { return e.Err }

func packReadErr(b Backend, pack ID, o PackedObject, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("remote %s: pack %s ends before object %s: %w", b.Location(), pack, o.ID, ErrCorrupt)
	}
	return fmt.Errorf("remote %s: read pack %s: %w", b.Location(), pack, err)
}

// unframe decompresses one frame of size bytes, refusing more.
func unframe(frame []byte, size int64) ([]byte, error) {
	d := decoders.Get().(*zstd.Decoder)
	defer func() {
		d.Reset(nil)
		decoders.Put(d)
	}()
	if err := d.Reset(bytes.NewReader(frame)); err != nil {
		return nil, fmt.Errorf("not a zstd frame: %v", err)
	}
	data, err := io.ReadAll(io.LimitReader(d, size+1))
	if err != nil {
		return nil, fmt.Errorf("not a zstd frame: %v", err)
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("%d bytes where %d were expected", len(data), size)
	}
	return data, nil
}
