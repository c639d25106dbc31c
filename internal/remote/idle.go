package remote

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// idleReader ends a download that stalls: when no byte arrives for d, it
// cancels the request's context, so the pending Read fails instead of
// waiting for as long as the caller's context allows.
type idleReader struct {
	r       io.ReadCloser
	d       time.Duration
	t       *time.Timer
	cancel  context.CancelFunc
	stalled *atomic.Bool
}

// withIdleTimeout derives a context for a download, and wraps the body
// read under it (via wrap, once the request is made) with the stall check.
func withIdleTimeout(ctx context.Context, d time.Duration) (context.Context, func(io.ReadCloser) io.ReadCloser, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	wrap := func(r io.ReadCloser) io.ReadCloser {
		stalled := new(atomic.Bool)
		t := time.AfterFunc(d, func() { stalled.Store(true); cancel() })
		return &idleReader{r: r, d: d, t: t, cancel: cancel, stalled: stalled}
	}
	return ctx, wrap, cancel
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.d)
	}
	if err != nil && err != io.EOF && r.stalled.Load() {
		// Not the caller's cancellation: say what happened.
		err = fmt.Errorf("no data for %s, the download stalled; check the remote's health", r.d)
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.t.Stop()
	err := r.r.Close()
	r.cancel()
	return err
}
