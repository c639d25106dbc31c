package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// httpBackend speaks plain GET/PUT/HEAD under PREFIX: PREFIX/NS/ab/ID,
// zstd-compressed. nginx's WebDAV module serves it (PUT needs
// `create_full_put_path on`, or the directories are made with MKCOL, which
// this backend falls back to on 409 Conflict or nginx's 500). Existence is
// parallel HEADs: plain HTTP has no batch query.
//
// bazel-remote's HTTP interface is not this layout (it wants plain blobs
// under /cas/ and ActionResults under /ac/): reach bazel-remote with
// grpc://, which it serves too.
type httpBackend struct {
	base   string // scheme://host/prefix, no trailing slash
	loc    string
	client *http.Client
	token  string
	opts   Options
	made   sync.Map // collections made by MKCOL
}

func openHTTP(u *url.URL, opts Options) (Backend, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("remote %s: no host: write http(s)://HOST/PREFIX", redact(u))
	}
	v := *u
	v.RawQuery, v.Fragment = "", ""
	v.Path = strings.TrimSuffix(v.Path, "/")
	v.RawPath = ""
	token := opts.Token
	if token == "" {
		token = os.Getenv("SMELT_REMOTE_TOKEN")
	}
	return &httpBackend{
		base:   v.String(),
		loc:    redact(&v),
		client: &http.Client{Transport: newTransport(opts)},
		token:  token,
		opts:   opts,
	}, nil
}

// newTransport bounds the dial and the wait for an answer's headers by
// opts.Timeout, and counts requests; a download's body may take longer.
func newTransport(opts Options) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = opts.Timeout
	t.ResponseHeaderTimeout = opts.Timeout
	t.ExpectContinueTimeout = time.Second
	t.MaxIdleConnsPerHost = opts.Parallel
	return countingTransport{t, opts.Stats}
}

type countingTransport struct {
	rt    http.RoundTripper
	stats *Stats
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.stats.Requests.Add(1)
	return c.rt.RoundTrip(r)
}

func (b *httpBackend) Location() string { return b.loc }

func (b *httpBackend) url(ns Namespace, id ID) string { return b.base + "/" + blobPath(ns, id) }

func (b *httpBackend) do(ctx context.Context, method, u string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("remote %s: %s: %w; check that the server is up and the URL is right", b.loc, method, unwrapURLError(err))
	}
	return resp, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusError turns an unexpected answer into an error that says what to do.
func (b *httpBackend) statusError(op string, ns Namespace, id ID, resp *http.Response) error {
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	what := fmt.Sprintf("remote %s: %s %s %s: %s", b.loc, op, ns, id, resp.Status)
	if s := strings.TrimSpace(string(snippet)); s != "" && !strings.HasPrefix(s, "<") {
		what += " (" + s + ")"
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return errors.New(what + "; check SMELT_REMOTE_TOKEN and that this token may " + map[bool]string{true: "write", false: "read"}[op == "put"])
	case http.StatusMethodNotAllowed:
		return errors.New(what + "; the server does not accept " + strings.ToUpper(op) + ": enable WebDAV (nginx: dav_methods PUT) or use a read-only remote")
	}
	return errors.New(what)
}

func (b *httpBackend) Get(ctx context.Context, ns Namespace, ref Ref) (io.ReadCloser, error) {
	if err := check(b.loc, ns, ref); err != nil {
		return nil, err
	}
	ctx, idle, cancel := withIdleTimeout(ctx, b.opts.Timeout)
	resp, err := b.do(ctx, http.MethodGet, b.url(ns, ref.ID), nil, 0)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return decompress(idle(&countingReader{r: resp.Body, c: resp.Body, n: &b.opts.Stats.Down})), nil
	}
	defer cancel()
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("remote %s: %s %s: %w", b.loc, ns, ref.ID, ErrNotFound)
	}
	return nil, b.statusError("get", ns, ref.ID, resp)
}

func (b *httpBackend) Put(ctx context.Context, ns Namespace, ref Ref, r io.Reader) error {
	if err := checkPut(b.loc, ns, ref); err != nil {
		return err
	}
	sp, err := compress(r, ref.Size)
	if err != nil {
		return fmt.Errorf("remote %s: put %s %s: %w", b.loc, ns, ref.ID, err)
	}
	defer sp.Close()
	return b.putBody(ctx, ns, ref.ID, func() io.Reader { return sp.Reader() }, sp.Len)
}

// putRaw stores a pack as it is (its frames are compressed already).
func (b *httpBackend) putRaw(ctx context.Context, ns Namespace, id ID, r io.ReadSeeker, size int64) error {
	if err := checkPut(b.loc, ns, Ref{ID: id, Size: size}); err != nil {
		return err
	}
	return b.putBody(ctx, ns, id, func() io.Reader { r.Seek(0, io.SeekStart); return r }, size)
}

// putBody PUTs size bytes of body() (called again for a retry).
func (b *httpBackend) putBody(ctx context.Context, ns Namespace, id ID, body func() io.Reader, size int64) error {
	put := func() (*http.Response, error) {
		// The timeout grows by a second a MiB: an upload slower than
		// 1 MiB/s counts as stalled.
		ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout+time.Duration(size>>20)*time.Second)
		defer cancel()
		resp, err := b.do(ctx, http.MethodPut, b.url(ns, id), body(), size)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := put()
	if err == nil && (resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusInternalServerError) {
		// WebDAV without create_full_put_path: make the parent collections
		// (nginx answers 500, RFC 4918 servers 409) and try again.
		if err = b.mkcol(ctx, ns, id); err == nil {
			resp, err = put()
		}
	}
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return b.statusError("put", ns, id, resp)
	}
	b.opts.Stats.Up.Add(size)
	return nil
}

// getRange GETs bytes [off, off+n) of a blob stored by putRaw. A server
// that ignores Range (answers 200 with the whole blob) is read past off.
func (b *httpBackend) getRange(ctx context.Context, ns Namespace, id ID, off, n int64) (io.ReadCloser, error) {
	if err := check(b.loc, ns, Ref{ID: id}); err != nil {
		return nil, err
	}
	ctx, idle, cancel := withIdleTimeout(ctx, b.opts.Timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url(ns, id), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("remote %s: GET: %w; check that the server is up and the URL is right", b.loc, unwrapURLError(err))
	}
	body := idle(&countingReader{r: resp.Body, c: resp.Body, n: &b.opts.Stats.Down})
	switch resp.StatusCode {
	case http.StatusPartialContent:
		return body, nil
	case http.StatusOK:
		if _, err := io.CopyN(io.Discard, body, off); err != nil {
			body.Close()
			return nil, fmt.Errorf("remote %s: get %s %s: %w", b.loc, ns, id, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(body, n), body}, nil
	}
	defer body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("remote %s: %s %s: %w", b.loc, ns, id, ErrNotFound)
	}
	return nil, b.statusError("get", ns, id, resp)
}

// mkcol makes the collections from the prefix down to a blob's parent,
// skipping those it made before.
func (b *httpBackend) mkcol(ctx context.Context, ns Namespace, id ID) error {
	u, err := url.Parse(b.url(ns, id))
	if err != nil {
		return err
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	dir := u.Scheme + "://" + u.Host
	for _, part := range parts[:len(parts)-1] {
		dir += "/" + part
		if _, ok := b.made.Load(dir); ok {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
		resp, err := b.do(ctx, "MKCOL", dir+"/", nil, 0)
		cancel()
		if err != nil {
			return err
		}
		resp.Body.Close()
		// 405: it exists already.
		if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusMethodNotAllowed {
			return fmt.Errorf("remote %s: MKCOL %s: %s; let the server create directories (nginx: create_full_put_path on)", b.loc, dir, resp.Status)
		}
		b.made.Store(dir, true)
	}
	return nil
}

func (b *httpBackend) Has(ctx context.Context, ns Namespace, refs []Ref) ([]bool, error) {
	out := make([]bool, len(refs))
	for _, ref := range refs {
		if err := check(b.loc, ns, ref); err != nil {
			return nil, err
		}
	}
	err := parallel(ctx, len(refs), b.opts.Parallel, func(ctx context.Context, i int) error {
		resp, err := b.do(ctx, http.MethodHead, b.url(ns, refs[i].ID), nil, 0)
		if err != nil {
			return err
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			out[i] = true
		case http.StatusNotFound:
		default:
			return b.statusError("head", ns, refs[i].ID, resp)
		}
		return nil
	})
	return out, err
}

func (b *httpBackend) Close() error {
	b.client.CloseIdleConnections()
	return nil
}
