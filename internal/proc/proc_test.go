package proc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// running reports whether a process with this exact argument runs.
func running(arg string) bool {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("\x00"+arg+"\x00")) {
			return true
		}
	}
	return false
}

// Canceling a supervised command ends its whole tree, a background
// process of its shell included.
func TestCancelEndsTheTree(t *testing.T) {
	if ok, note := Isolated(); !ok {
		t.Skip(note)
	}
	arg := fmt.Sprintf("%d.%d", 600+os.Getpid()%100, time.Now().UnixNano()%1000) // unique
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "sh", "-c", "sleep "+arg+" & wait")
	Supervise(cmd, syscall.SIGKILL)
	done := make(chan error, 1)
	go func() { done <- Run(cmd) }()
	deadline := time.Now().Add(10 * time.Second)
	for !running(arg) {
		if time.Now().After(deadline) {
			t.Fatal("the background sleep never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a canceled command reported success")
	}
	for deadline := time.Now().Add(5 * time.Second); running(arg); {
		if time.Now().After(deadline) {
			t.Fatal("the background sleep outlived its canceled command")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
