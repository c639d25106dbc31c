package remote

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// stallServer answers a GET with the start of a zstd blob, then sends
// nothing more: a remote that stalls mid-download.
func stallServer(t *testing.T) string {
	t.Helper()
	var frame bytes.Buffer
	if err := encode(&frame, bytes.NewReader(blob(7, 1<<20)), 1<<20); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10000000")
		w.WriteHeader(http.StatusOK)
		w.Write(frame.Bytes()[:frame.Len()/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.URL
}

// TestStalledDownload: a download that stops midway fails after the
// timeout without new bytes, not when the caller gives up.
func TestStalledDownload(t *testing.T) {
	base := stallServer(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_S3", base)
	for _, url := range []string{base + "/cache", "s3://bucket/cache"} {
		t.Run(url[:strings.Index(url, ":")], func(t *testing.T) {
			const timeout = time.Second
			b, err := Open(context.Background(), url, Options{Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			start := time.Now()
			// The caller's own deadline is far: only the stall check ends it.
			ctx, cancel := context.WithTimeout(context.Background(), 10*timeout)
			defer cancel()
			_, err = ReadVerified(ctx, b, Objects, Ref{ID: hashOf(blob(7, 1<<20)), Size: 1 << 20})
			took := time.Since(start)
			if err == nil {
				t.Fatal("a stalled download succeeded")
			}
			if took > timeout+time.Second {
				t.Fatalf("the stalled download failed after %s; want about %s", took, timeout)
			}
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
		})
	}
}
