package run

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"smelt/internal/store"
)

// jobserver is a GNU make jobserver shared by every cargo that a run starts,
// so that steps running side by side never run more compilers than there
// are cores. There are as many tokens as cores: one implicit (smelt's own)
// and the others in the fifo. Each cargo believes it holds an implicit token
// of its own and takes the others from the fifo; so that this holds, smelt
// takes a token for each process it starts (acquire) and gives it back when
// the process ends.
type jobserver struct {
	path     string
	f        *os.File
	implicit chan struct{} // holds smelt's implicit token while it is free
}

func newJobserver(st *store.Store) (*jobserver, error) {
	dir, err := st.TempDir("jobserver-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("create jobserver: %w", err)
	}
	// Opened read-write so the fifo never sees end-of-file while the run lasts.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("open jobserver: %w", err)
	}
	if n := runtime.NumCPU() - 1; n > 0 {
		if _, err := f.Write([]byte(strings.Repeat("+", n))); err != nil {
			f.Close()
			os.RemoveAll(dir)
			return nil, err
		}
	}
	j := &jobserver{path: path, f: f, implicit: make(chan struct{}, 1)}
	j.implicit <- struct{}{}
	return j, nil
}

// acquire takes a token for one process, waiting until the implicit token
// or one from the fifo is free, and returns the function that gives it back.
func (j *jobserver) acquire(ctx context.Context) (release func(), err error) {
	select {
	case <-j.implicit:
		return func() { j.implicit <- struct{}{} }, nil
	default:
	}
	got := make(chan byte, 1)
	go func() {
		b := make([]byte, 1)
		if n, _ := j.f.Read(b); n == 1 {
			got <- b[0]
		}
		close(got)
	}()
	// A read still pending when another token came first returns its token
	// as soon as it gets one (or ends when the fifo is closed).
	abandon := func() {
		go func() {
			if b, ok := <-got; ok {
				j.f.Write([]byte{b})
			}
		}()
	}
	select {
	case b, ok := <-got:
		if !ok {
			return nil, fmt.Errorf("jobserver closed")
		}
		return func() { j.f.Write([]byte{b}) }, nil
	case <-j.implicit:
		abandon()
		return func() { j.implicit <- struct{}{} }, nil
	case <-ctx.Done():
		abandon()
		return nil, ctx.Err()
	}
}

// env is what a cargo process needs to find the jobserver.
func (j *jobserver) env() string {
	return "CARGO_MAKEFLAGS=-j --jobserver-auth=fifo:" + j.path
}

func (j *jobserver) close() {
	j.f.Close()
	os.RemoveAll(filepath.Dir(j.path))
}
