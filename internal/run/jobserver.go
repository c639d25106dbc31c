package run

import (
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
// are cores: each cargo holds one implicit token and takes the others from
// the jobserver's fifo.
type jobserver struct {
	path string
	f    *os.File
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
	return &jobserver{path: path, f: f}, nil
}

// env is what a cargo process needs to find the jobserver.
func (j *jobserver) env() string {
	return "CARGO_MAKEFLAGS=-j --jobserver-auth=fifo:" + j.path
}

func (j *jobserver) close() {
	j.f.Close()
	os.RemoveAll(filepath.Dir(j.path))
}
