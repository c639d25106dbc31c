package remote

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Blobs on file, http and s3 remotes are zstd frames: dependency artifacts
// shrink to a third or less, and the remote's bandwidth is the cost that
// matters. The grpc backend sends plain bytes, since the CAS checks digests
// of what it receives.

// spoolMemMax is the largest blob whose compressed form is kept in memory
// before upload; a larger one is compressed into a temporary file, so that
// no whole file sits in memory and the upload still has a known length
// (S3 and many HTTP servers want one).
const spoolMemMax = 1 << 20

// Level: measured on a release target/deps of 823 files (617 MB, rlibs
// and binaries), one core of this 2-core machine: SpeedFastest 0.34 of the
// size at 83 MB/s, SpeedDefault 0.32 at 45 MB/s. 6% more bytes for twice
// the speed: uploads here are bound by the CPU before the network.
var encoders = sync.Pool{New: func() any {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		panic(err) // only for invalid options
	}
	return e
}}

// spooled is a compressed blob ready to upload: Len bytes from Open.
type spooled struct {
	mem  []byte
	file *os.File
	Len  int64
}

// Reader returns a fresh reader over the compressed bytes (a retry reads
// them again).
func (s *spooled) Reader() io.ReadSeeker {
	if s.file != nil {
		return io.NewSectionReader(s.file, 0, s.Len)
	}
	return bytes.NewReader(s.mem)
}

func (s *spooled) Close() {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
	}
}

// compress reads exactly size bytes from r and returns them compressed.
func compress(r io.Reader, size int64) (*spooled, error) {
	var sp spooled
	var dst io.Writer
	var buf *bytes.Buffer
	if size <= spoolMemMax {
		buf = bytes.NewBuffer(make([]byte, 0, size/2+64))
		dst = buf
	} else {
		f, err := os.CreateTemp("", "smelt-remote-*.zst")
		if err != nil {
			return nil, fmt.Errorf("spool a compressed upload: %w", err)
		}
		sp.file = f
		dst = f
	}
	if err := encode(dst, r, size); err != nil {
		sp.Close()
		return nil, err
	}
	if buf != nil {
		sp.mem = buf.Bytes()
		sp.Len = int64(len(sp.mem))
		return &sp, nil
	}
	off, err := sp.file.Seek(0, io.SeekCurrent)
	if err != nil {
		sp.Close()
		return nil, err
	}
	sp.Len = off
	return &sp, nil
}

// encode writes exactly size bytes of r to dst as one zstd frame.
func encode(dst io.Writer, r io.Reader, size int64) error {
	enc := encoders.Get().(*zstd.Encoder)
	defer func() {
		enc.Reset(nil) // drop dst
		encoders.Put(enc)
	}()
	enc.Reset(dst)
	n, err := io.Copy(enc, io.LimitReader(r, size+1))
	if err == nil {
		err = enc.Close()
	}
	if err == nil && n != size {
		err = fmt.Errorf("read %d bytes where %d were announced", n, size)
	}
	return err
}

var decoders = sync.Pool{New: func() any {
	// smelt's frames use an 8 MiB window at most; a larger one is garbage
	// that would only cost memory.
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(32<<20))
	if err != nil {
		panic(err)
	}
	return d
}}

// decompressed streams the plain bytes of a zstd body. An error of the
// body itself (a timeout, a reset) is returned as it is; any other error
// of the decoder means the bytes are no zstd and matches ErrCorrupt.
type decompressed struct {
	body *bodyErr
	dec  *zstd.Decoder
	err  error
}

// bodyErr remembers the first error other than io.EOF its reader returned.
type bodyErr struct {
	io.ReadCloser
	err error
}

func (b *bodyErr) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func decompress(body io.ReadCloser) io.ReadCloser {
	return &decompressed{body: &bodyErr{ReadCloser: body}}
}

func (d *decompressed) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.dec == nil {
		// Reset reads the frame header: it is done on the first Read, so
		// that Get returns as soon as the answer starts.
		d.dec = decoders.Get().(*zstd.Decoder)
		if err := d.dec.Reset(d.body); err != nil {
			d.err = d.classify(err)
			return 0, d.err
		}
	}
	n, err := d.dec.Read(p)
	if err != nil && err != io.EOF {
		d.err = d.classify(err)
		err = d.err
	}
	return n, err
}

func (d *decompressed) classify(err error) error {
	if d.body.err != nil {
		return d.body.err
	}
	return fmt.Errorf("%w: not a zstd frame of smelt's: %v", ErrCorrupt, err)
}

func (d *decompressed) Close() error {
	if d.dec != nil {
		d.dec.Reset(nil)
		decoders.Put(d.dec)
		d.dec = nil
	}
	return d.body.Close()
}
