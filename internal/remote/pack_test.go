package remote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// packLayer makes a layer of n small objects (1-13 KiB) and its id.
func packLayer(seed uint64, n int, blobs map[ID][]byte) LayerObjects {
	l := LayerObjects{Layer: hashOf(blob(seed, 64))}
	for i := range n {
		data := blob(seed*1000+uint64(i), 1100+(i*53)%12000)
		id := hashOf(data)
		blobs[id] = data
		l.Objects = append(l.Objects, Ref{ID: id, Size: int64(len(data))})
	}
	return l
}

// pullLayer reads objects of layer through its pack index, checking
// every byte, and returns the requests it took and the bytes downloaded.
func pullLayer(t *testing.T, b Backend, stats *Stats, layer ID, want map[ID]bool, blobs map[ID][]byte) (int64, int64) {
	t.Helper()
	n0, d0 := stats.Requests.Load(), stats.Down.Load()
	idx, err := ReadPackIndex(context.Background(), b, layer)
	if err != nil {
		t.Fatal(err)
	}
	var reads []PackedRead
	for _, o := range idx.Objects {
		if want[o.ID] {
			reads = append(reads, PackedRead{Pack: idx.Packs[o.Pack], PackedObject: o})
		}
	}
	var mu sync.Mutex
	got := map[ID]bool{}
	err = ReadPacked(context.Background(), b, reads, 8, func(ref Ref, data []byte) error {
		if !bytes.Equal(data, blobs[ref.ID]) {
			t.Errorf("object %s read from its pack differs", ref.ID)
		}
		mu.Lock()
		got[ref.ID] = true
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d objects from packs, want %d", len(got), len(want))
	}
	return stats.Requests.Load() - n0, stats.Down.Load() - d0
}

// packs: a layer of 250 small objects is pushed and pulled in a bounded
// number of requests; an older smelt's layer (no pack index) keeps its
// objects alone; a corrupt frame is caught and named.
func (s suite) packs(t *testing.T) {
	var stats Stats
	b := s.open(t, Options{Timeout: 20 * time.Second, Stats: &stats})
	defer b.Close()
	if !Packing(b) {
		t.Skipf("%s keeps the CAS's own batches", b.Location())
	}
	ctx := context.Background()
	blobs := map[ID][]byte{}
	open := func(ref Ref) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blobs[ref.ID])), nil }
	l := packLayer(1, 250, blobs)

	n0 := stats.Requests.Load()
	up, err := UploadLayers(ctx, b, []LayerObjects{l}, nil, open, 8)
	if err != nil {
		t.Fatal(err)
	}
	n := stats.Requests.Load() - n0
	t.Logf("%s: push of a layer of 250 small objects: %+v in %d requests", b.Location(), up, n)
	// One existence query (its manifest), the pack, the index.
	if up.Put != 250 || up.Packed != 250 || up.Packs != 1 || n > 3+s.mkcols {
		t.Fatalf("push of a layer of 250 small objects: %+v in %d requests; want them all in 1 pack, at most 3 requests", up, n)
	}
	put(t, b, Layers, l.Layer, blob(1, 64)) // as Push does after its objects
	n0 = stats.Requests.Load()
	if up, err := UploadLayers(ctx, b, []LayerObjects{l}, nil, open, 8); err != nil || up.Put != 0 || stats.Requests.Load()-n0 > 2 {
		t.Fatalf("a second push: %+v, %v in %d requests; want nothing put after two queries (its manifest, its index)", up, err, stats.Requests.Load()-n0)
	}

	all := map[ID]bool{}
	for _, ref := range l.Objects {
		all[ref.ID] = true
	}
	n, down := pullLayer(t, b, &stats, l.Layer, all, blobs)
	t.Logf("pull of all 250: %d requests, %d bytes", n, down)
	if n > 2 {
		t.Fatalf("pulling a layer of 250 packed objects took %d requests; want 2 (its index, its pack)", n)
	}
	packBytes := down
	// Three objects far apart: a range each, and little more than their bytes.
	some := map[ID]bool{l.Objects[0].ID: true, l.Objects[125].ID: true, l.Objects[249].ID: true}
	n, down = pullLayer(t, b, &stats, l.Layer, some, blobs)
	t.Logf("pull of 3 of 250: %d requests, %d bytes", n, down)
	if n != 4 || down > packBytes/20 {
		t.Fatalf("pulling 3 objects of a pack took %d requests and %d of its %d bytes; want 4 requests (index, 3 ranges) and a few frames", n, down, packBytes)
	}

	t.Run("older remote", func(t *testing.T) {
		// A layer an older smelt pushed: its manifest and each object alone.
		old := packLayer(2, 30, blobs)
		if _, err := UploadMissing(ctx, b, Objects, old.Objects, open, 8); err != nil {
			t.Fatal(err)
		}
		put(t, b, Layers, old.Layer, blob(2, 64))
		grown := packLayer(3, 20, blobs)
		up, err := UploadLayers(ctx, b, []LayerObjects{old, grown}, nil, open, 8)
		if err != nil {
			t.Fatal(err)
		}
		if up.Put != 20 || up.Packed != 20 {
			t.Fatalf("push over an older smelt's layer: %+v; want only the 20 objects of the new layer, packed", up)
		}
		if _, err := ReadPackIndex(ctx, b, old.Layer); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the older layer got a pack index (%v): its objects were put again", err)
		}
		for _, ref := range old.Objects[:3] {
			if got, err := getVerified(b, Objects, ref); err != nil || !bytes.Equal(got, blobs[ref.ID]) {
				t.Fatalf("older layer's object %s: %v", ref.ID, err)
			}
		}
	})

	t.Run("corrupt frame", func(t *testing.T) {
		if s.corrupt == nil {
			t.Skip("no way to spoil the server's bytes")
		}
		idx, err := ReadPackIndex(ctx, b, l.Layer)
		if err != nil {
			t.Fatal(err)
		}
		var size int64
		for _, o := range idx.Objects {
			size = max(size, o.Off+o.Len)
		}
		rc, err := b.(packer).getRange(ctx, Packs, idx.Packs[0], 0, size)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		victim := idx.Objects[7]
		raw[victim.Off+victim.Len/2] ^= 0x55
		s.corrupt(t, Packs, idx.Packs[0], raw)
		var reads []PackedRead
		for _, o := range idx.Objects[:20] {
			reads = append(reads, PackedRead{Pack: idx.Packs[0], PackedObject: o})
		}
		err = ReadPacked(ctx, b, reads, 1, func(ref Ref, data []byte) error {
			if ref.ID == victim.ID {
				t.Errorf("a corrupt object was delivered")
			}
			return nil
		})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), string(victim.ID)) {
			t.Fatalf("reading a corrupt frame: %v; want ErrCorrupt naming object %s", err, victim.ID)
		}
		t.Log(err)
	})
}

func TestPlanRanges(t *testing.T) {
	obj := func(off, n int64) PackedObject { return PackedObject{Off: off, Len: n} }
	// maxRanges+2 frames, the gaps growing: the first three join.
	var spread []PackedObject
	var spreadWant [][2]int64
	off := int64(0)
	for i := range maxRanges + 2 {
		spread = append(spread, obj(off, 1))
		switch {
		case i == 2:
			spreadWant = [][2]int64{{0, off + 1}}
		case i > 2:
			spreadWant = append(spreadWant, [2]int64{off, off + 1})
		}
		off += int64(i+1) << 20
	}
	for _, c := range []struct {
		name string
		objs []PackedObject
		want [][2]int64
	}{
		{"one", []PackedObject{obj(100, 10)}, [][2]int64{{100, 110}}},
		{"adjacent", []PackedObject{obj(0, 10), obj(10, 5), obj(15, 5)}, [][2]int64{{0, 20}}},
		{"small gap joins", []PackedObject{obj(0, 10), obj(10+rangeGap, 5)}, [][2]int64{{0, 15 + rangeGap}}},
		{"big gap splits", []PackedObject{obj(0, 10), obj(11+rangeGap, 5)}, [][2]int64{{0, 10}, {11 + rangeGap, 16 + rangeGap}}},
		{"unsorted", []PackedObject{obj(1<<20, 10), obj(0, 10)}, [][2]int64{{0, 10}, {1 << 20, 1<<20 + 10}}},
		{"at most maxRanges: the closest merge", spread, spreadWant},
	} {
		t.Run(c.name, func(t *testing.T) {
			spans := planRanges(c.objs)
			var got [][2]int64
			frames := 0
			for _, s := range spans {
				got = append(got, [2]int64{s.off, s.end})
				frames += len(s.objs)
			}
			if len(got) != len(c.want) || frames != len(c.objs) {
				t.Fatalf("ranges %v holding %d frames; want %v holding %d", got, frames, c.want, len(c.objs))
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("ranges %v; want %v", got, c.want)
				}
			}
		})
	}
}

// TestPackSplit: layers whose small objects exceed a pack's bound go into
// several packs, each within it, an object shared by two layers once, and
// every object reads back from the index of each layer that names it.
func TestPackSplit(t *testing.T) {
	defer func(m int64) { packMax = m }(packMax)
	packMax = 256 << 10
	var stats Stats
	dir := t.TempDir()
	b, err := Open(t.Context(), "file://"+dir, Options{Stats: &stats})
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[ID][]byte{}
	open := func(ref Ref) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blobs[ref.ID])), nil }
	l1, l2 := packLayer(5, 120, blobs), packLayer(6, 80, blobs)
	l2.Objects = append(l2.Objects, l1.Objects[:10]...) // shared
	var plain int64
	for _, ref := range append(l1.Objects, l2.Objects[:80]...) {
		plain += ref.Size
	}
	up, err := UploadLayers(t.Context(), b, []LayerObjects{l1, l2}, nil, open, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := int((plain + packMax - 1) / packMax)
	t.Logf("%d objects, %d bytes: %+v", 200, plain, up)
	if up.Put != 200 || up.Packs < want || up.Packs > want+1 {
		t.Fatalf("%+v; want 200 objects in about %d packs of at most %d bytes", up, want, packMax)
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*", "*"))
	for _, p := range packs {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > packMax {
			t.Fatalf("pack %s has %d bytes; want at most %d", p, fi.Size(), packMax)
		}
	}
	for _, l := range []LayerObjects{l1, l2} {
		all := map[ID]bool{}
		for _, ref := range l.Objects {
			all[ref.ID] = true
		}
		pullLayer(t, b, &stats, l.Layer, all, blobs)
	}
}
