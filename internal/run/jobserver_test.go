package run

import (
	"context"
	"runtime"
	"testing"
	"time"

	"smelt/internal/store"
)

// The jobserver hands out exactly one token per core, blocks the next
// process until one is given back, and loses no token to a canceled wait.
func TestJobserverTokens(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	j, err := newJobserver(st)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	ctx := context.Background()
	var releases []func()
	for i := 0; i < runtime.NumCPU(); i++ {
		r, err := j.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	// All taken: a wait ends only by cancellation.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := j.acquire(short); err == nil {
		t.Fatalf("acquired token %d of %d", runtime.NumCPU()+1, runtime.NumCPU())
	}
	// A token given back goes to the next waiter.
	got := make(chan func())
	go func() {
		r, err := j.acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	releases[0]()
	select {
	case r := <-got:
		releases[0] = r
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter did not get the token given back")
	}
	for _, r := range releases {
		r()
	}
	// Every token is back, the one the canceled wait may have read too.
	time.Sleep(10 * time.Millisecond)
	for i := 0; i < runtime.NumCPU(); i++ {
		wait, cancel := context.WithTimeout(ctx, 2*time.Second)
		if _, err := j.acquire(wait); err != nil {
			t.Fatalf("token %d of %d lost: %v", i+1, runtime.NumCPU(), err)
		}
		cancel()
	}
}
