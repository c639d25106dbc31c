package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// MaxRecord bounds a result record or a layer manifest read from a remote,
// so that a remote answering garbage cannot fill the disk or the memory.
const MaxRecord = 256 << 20

// GetVerified is Get for callers: it streams the blob and, for objects and
// layers (named by the sha256 of their bytes), hashes them on the way. The
// read that reaches the end returns an error matching ErrCorrupt instead of
// io.EOF when the bytes do not hash to ref.ID or their length is not
// ref.Size: a caller writes to a temporary file and publishes it only after
// a clean io.EOF, so nothing unverified enters the local store. Result
// records are not hashed (their key is no hash of them): verify their
// signature with package trust.
func GetVerified(ctx context.Context, b Backend, ns Namespace, ref Ref) (io.ReadCloser, error) {
	if err := check(b.Location(), ns, ref); err != nil {
		return nil, err
	}
	rc, err := b.Get(ctx, ns, ref)
	if err != nil {
		return nil, err
	}
	v := &verifier{rc: rc, loc: b.Location(), ns: ns, ref: ref, max: MaxRecord}
	if ns != Results && ns != PackIndexes {
		v.h = sha256.New()
	}
	if ns == Objects && ref.Size >= 0 {
		v.max = ref.Size
	}
	return v, nil
}

type verifier struct {
	rc  io.ReadCloser
	loc string
	ns  Namespace
	ref Ref
	h   hash.Hash
	n   int64
	max int64
	err error
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.rc.Read(p)
	v.n += int64(n)
	if v.h != nil {
		v.h.Write(p[:n])
	}
	if v.n > v.max {
		v.err = v.corrupt(fmt.Sprintf("more than %d bytes", v.max))
		return n, v.err
	}
	if err == io.EOF {
		if v.ref.Size >= 0 && v.n != v.ref.Size {
			err = v.corrupt(fmt.Sprintf("%d bytes where %d were expected", v.n, v.ref.Size))
		} else if v.h != nil {
			if got := hex.EncodeToString(v.h.Sum(nil)); got != string(v.ref.ID) {
				err = v.corrupt("its bytes hash to " + got)
			}
		}
	} else if err != nil {
		err = fmt.Errorf("remote %s: read %s %s: %w", v.loc, v.ns, v.ref.ID, err)
	}
	v.err = err
	return n, err
}

func (v *verifier) corrupt(why string) error {
	return fmt.Errorf("remote %s: %s %s is corrupt (%s): %w; it is not used, and pushing it again repairs the remote", v.loc, v.ns, v.ref.ID, why, ErrCorrupt)
}

func (v *verifier) Close() error { return v.rc.Close() }

// ReadVerified reads a whole blob through GetVerified (layers and results,
// which are small).
func ReadVerified(ctx context.Context, b Backend, ns Namespace, ref Ref) ([]byte, error) {
	rc, err := GetVerified(ctx, b, ns, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
