package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
)

// fileBackend is a shared directory: PATH/NS/ab/ID, zstd-compressed, each
// written to PATH/tmp and renamed into place, so readers on other machines
// never see half a blob (rename is atomic on NFS too).
type fileBackend struct {
	dir   string
	loc   string
	stats *Stats
}

func openFile(u *url.URL, opts Options) (Backend, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("remote %s: a file URL names a local path: write file:///PATH (three slashes)", redact(u))
	}
	dir := filepath.FromSlash(u.Path)
	if dir == "" || !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("remote %s: a file URL needs an absolute path: file:///PATH", redact(u))
	}
	loc := "file://" + dir
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("remote %s: %w; create the directory or mount the share", loc, err)
	}
	return &fileBackend{dir: dir, loc: loc, stats: opts.Stats}, nil
}

func (b *fileBackend) Location() string { return b.loc }

func (b *fileBackend) path(ns Namespace, id ID) string {
	return filepath.Join(b.dir, filepath.FromSlash(blobPath(ns, id)))
}

func (b *fileBackend) Get(ctx context.Context, ns Namespace, ref Ref) (io.ReadCloser, error) {
	if err := check(b.loc, ns, ref); err != nil {
		return nil, err
	}
	b.stats.Requests.Add(1)
	f, err := os.Open(b.path(ns, ref.ID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remote %s: %s %s: %w", b.loc, ns, ref.ID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", b.loc, err)
	}
	return decompress(&countingReader{r: f, c: f, n: &b.stats.Down}), nil
}

func (b *fileBackend) Put(ctx context.Context, ns Namespace, ref Ref, r io.Reader) error {
	if err := checkPut(b.loc, ns, ref); err != nil {
		return err
	}
	b.stats.Requests.Add(1)
	dst := b.path(ns, ref.ID)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("remote %s: %w", b.loc, err)
	}
	tmp, err := os.CreateTemp(filepath.Join(b.dir, "tmp"), string(ref.ID[:8])+"-*")
	if err != nil {
		return fmt.Errorf("remote %s: %w; check that the directory is writable", b.loc, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600; the directory is shared.
	err = tmp.Chmod(0o644)
	if err == nil {
		err = encode(tmp, r, ref.Size)
	}
	if err == nil {
		var st os.FileInfo
		if st, err = tmp.Stat(); err == nil {
			b.stats.Up.Add(st.Size())
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("remote %s: put %s %s: %w", b.loc, ns, ref.ID, err)
	}
	return nil
}

func (b *fileBackend) Has(ctx context.Context, ns Namespace, refs []Ref) ([]bool, error) {
	out := make([]bool, len(refs))
	for i, ref := range refs {
		if err := check(b.loc, ns, ref); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b.stats.Requests.Add(1)
		_, err := os.Stat(b.path(ns, ref.ID))
		switch {
		case err == nil:
			out[i] = true
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("remote %s: %w", b.loc, err)
		}
	}
	return out, nil
}

func (b *fileBackend) Close() error { return nil }

// countingReader counts the bytes read into n.
type countingReader struct {
	r io.Reader
	c io.Closer
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}

func (c *countingReader) Close() error { return c.c.Close() }

func (b *fileBackend) putRaw(ctx context.Context, ns Namespace, id ID, r io.ReadSeeker, size int64) error {
	if err := checkPut(b.loc, ns, Ref{ID: id, Size: size}); err != nil {
		return err
	}
	b.stats.Requests.Add(1)
	dst := b.path(ns, id)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("remote %s: %w", b.loc, err)
	}
	tmp, err := os.CreateTemp(filepath.Join(b.dir, "tmp"), string(id[:8])+"-*")
	if err != nil {
		return fmt.Errorf("remote %s: %w; check that the directory is writable", b.loc, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o644)
	if err == nil {
		var n int64
		n, err = io.Copy(tmp, r)
		if err == nil && n != size {
			err = fmt.Errorf("read %d bytes where %d were announced", n, size)
		}
		b.stats.Up.Add(n)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("remote %s: put %s %s: %w", b.loc, ns, id, err)
	}
	return nil
}

func (b *fileBackend) getRange(ctx context.Context, ns Namespace, id ID, off, n int64) (io.ReadCloser, error) {
	if err := check(b.loc, ns, Ref{ID: id}); err != nil {
		return nil, err
	}
	b.stats.Requests.Add(1)
	f, err := os.Open(b.path(ns, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remote %s: %s %s: %w", b.loc, ns, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", b.loc, err)
	}
	return &countingReader{r: io.NewSectionReader(f, off, n), c: f, n: &b.stats.Down}, nil
}
