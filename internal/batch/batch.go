// Package batch runs several commands one after the other in one process,
// each with its own output files and exit status: a step's consecutive
// commands sent to a Remote Execution engine as one action, which pays the
// engine's fixed cost per action (upload, scheduling, materialising,
// bringing the result back) once instead of once per command.
//
// The runner is the smelt binary itself (Args names it), started in the
// step's sandbox on the worker; the client reads the commands' outputs and
// statuses from Dir after the action and handles each command as if it
// had run alone.
package batch

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Arg, as the first argument, makes the binary the runner.
const Arg = "__smelt_batch"

// Tool is the platform property (worker.KeyTool) of a worker that can run
// batches: one whose smelt has this runner.
const Tool = "smelt-batch-v1"

// Command is one command of a batch.
type Command struct {
	Argv []string `json:"argv"`
	// Env is added to the runner's environment (a later value of a
	// name wins).
	Env []string `json:"env,omitempty"`
	// Continue: a failure does not end the batch (the client decides
	// afterwards whether the step accepts it, as the deps step does for
	// its stubs).
	Continue bool `json:"continue,omitempty"`
}

// Spec is a batch: its commands, run in the runner's directory, and where
// their outputs go.
type Spec struct {
	Dir      string    `json:"dir"`
	Commands []Command `json:"commands"`
}

// Status is how one command ended.
type Status struct {
	Exit    int     `json:"exit"`
	Seconds float64 `json:"seconds"`
	// Error: the command could not be started (Exit is then -1).
	Error string `json:"error,omitempty"`
}

// Args is the command line that runs s with self (the smelt binary, as the
// machine running it names it).
func Args(self string, s Spec) ([]string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return []string{self, Arg, string(b)}, nil
}

// Stdout, Stderr and StatusFile are where command i's outputs and the
// statuses of the commands that ran are, under dir.
func Stdout(dir string, i int) string { return filepath.Join(dir, strconv.Itoa(i)+".out") }
func Stderr(dir string, i int) string { return filepath.Join(dir, strconv.Itoa(i)+".err") }
func StatusFile(dir string) string    { return filepath.Join(dir, "status.json") }

// ReadStatus reads the statuses of the commands that ran, in order.
func ReadStatus(dir string) ([]Status, error) {
	b, err := os.ReadFile(StatusFile(dir))
	if err != nil {
		return nil, err
	}
	var st []Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read %s: %w", StatusFile(dir), err)
	}
	return st, nil
}

func init() {
	if len(os.Args) > 2 && os.Args[1] == Arg {
		os.Exit(Run(os.Args[2]))
	}
}

// Run runs the batch specJSON and returns the runner's exit code: 0 when
// every command succeeded, else the last failure's (127 for one that could
// not start), so that an engine keeps no batch with a failure in its
// action cache, as it keeps no failed command.
func Run(specJSON string) int {
	var s Spec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		fmt.Fprintf(os.Stderr, "smelt batch: read the spec: %v\n", err)
		return 2
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "smelt batch: %v\n", err)
		return 2
	}
	var sts []Status
	code := 0
	for i, c := range s.Commands {
		st := runOne(c, s.Dir, i)
		sts = append(sts, st)
		b, _ := json.Marshal(sts)
		if err := os.WriteFile(StatusFile(s.Dir), b, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "smelt batch: %v\n", err)
			return 2
		}
		if st.Exit == 0 {
			continue
		}
		if st.Exit < 0 {
			return 127
		}
		code = st.Exit
		if !c.Continue {
			return code
		}
	}
	return code
}

func runOne(c Command, dir string, i int) Status {
	if len(c.Argv) == 0 {
		return Status{Exit: -1, Error: "no command"}
	}
	env := append(os.Environ(), c.Env...)
	path, err := lookPath(c.Argv[0], env)
	if err != nil {
		return Status{Exit: -1, Error: err.Error()}
	}
	out, err := os.Create(Stdout(dir, i))
	if err != nil {
		return Status{Exit: -1, Error: err.Error()}
	}
	defer out.Close()
	errf, err := os.Create(Stderr(dir, i))
	if err != nil {
		return Status{Exit: -1, Error: err.Error()}
	}
	defer errf.Close()
	cmd := exec.Command(path, c.Argv[1:]...)
	cmd.Args[0] = c.Argv[0]
	cmd.Env, cmd.Stdout, cmd.Stderr = env, out, errf
	start := time.Now()
	err = cmd.Run()
	st := Status{Seconds: time.Since(start).Seconds()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		st.Exit = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			st.Exit = 128 + int(ws.Signal()) // as the worker reports it
		}
	default:
		st.Exit, st.Error = -1, err.Error()
	}
	return st
}

// lookPath finds name as exec.LookPath would with env's PATH (its last).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, name)
		if info, err := os.Stat(p); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in $PATH", name)
}
