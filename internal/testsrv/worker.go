package testsrv

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Worker is a `smelt worker` process started for a test.
type Worker struct {
	Name, Dir, Log string // its name, its --dir, the file its output goes to
	Cmd            *exec.Cmd
	Exited         chan struct{} // closed when it has exited
}

// StartWorker runs bin (a smelt binary) as a worker of the engine at url,
// on dir ("": a new one), with its output in a log file. The test's cleanup
// stops it (SIGTERM, then SIGKILL after 10 s) and, if the test failed,
// prints its log.
func StartWorker(t testing.TB, bin, url, name, dir string) *Worker {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), name)
	}
	w := &Worker{Name: name, Dir: dir, Log: filepath.Join(t.TempDir(), name+".log"), Exited: make(chan struct{})}
	logf, err := os.Create(w.Log)
	if err != nil {
		t.Fatal(err)
	}
	w.Cmd = exec.Command(bin, "worker", "--engine", url, "--dir", dir)
	w.Cmd.Stdout, w.Cmd.Stderr = logf, logf
	if err := w.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.Cmd.Wait(); logf.Close(); close(w.Exited) }()
	t.Cleanup(func() {
		w.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.Exited:
		case <-time.After(10 * time.Second):
			w.Cmd.Process.Kill()
			<-w.Exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(w.Log)
			t.Logf("log of worker %s:\n%s", name, b)
		}
	})
	return w
}
