package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"smelt/internal/batch"
	"smelt/internal/cargo"
	"smelt/internal/kind"
	"smelt/internal/sandbox"
)

// batchDir is where, in the step's working directory, a batch's runner
// leaves its commands' outputs (read and removed after the action).
const batchDir = ".smelt-batch"

// batch runs the step's consecutive commands cmds (expanded) as one action
// on the executor, then handles each as command does after it ran: its
// log, its output, whether the step accepts its failure, in order, up to
// the first failure the step does not accept. On the worker they run as
// they would here, one after the other in the same directory; only a deps
// step's runner goes on after a failure (the step accepts its stubs' and,
// fused, its own code's failures; one it does not accept fails it all the
// same). It returns errLocal when they are to run one by one instead.
func (sr *stepRun) batch(ctx context.Context, cmds []cargo.Command) error {
	k := kind.Get(sr.n.Step.Kind)
	if k.UserCommand {
		return errLocal
	}
	out := filepath.Join(sr.view.realDir, batchDir)
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	spec := batch.Spec{Dir: path.Join(sr.view.dir, batchDir)}
	cmds = append([]cargo.Command(nil), cmds...)
	for i, c := range cmds {
		c = withMessages(sr.n.Step.Kind, c)
		cmds[i] = c
		spec.Commands = append(spec.Commands, batch.Command{Argv: append([]string{c.Program}, c.Args...), Env: envList(c.Env), Continue: k.Skeleton})
	}
	argv, err := batch.Args(sandbox.Self, spec)
	if err != nil {
		return err
	}
	a, err := sr.runAction(ctx, argv, append([]string(nil), sr.env...), []string{batch.Tool},
		sr.alias(fmt.Sprintf("smelt-step-batch-v1 %s %d %d", sr.key, sr.ncmd+1, len(cmds))))
	if err == errUnoffered {
		return errLocal // one action per command
	}
	if err != nil {
		return err
	}
	sr.ncmd += len(cmds)
	defer os.RemoveAll(out)
	x := sr.e.exec
	// The runner's own complaints, if any.
	var runner bytes.Buffer
	x.writeOutput(ctx, a.res.StderrRaw, a.res.StderrDigest, &runner)
	sts, err := batch.ReadStatus(out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var ran float64
	for i, c := range cmds {
		fmt.Fprintf(sr.logf, "\n$ %s\n", c.String())
		if i >= len(sts) {
			return fmt.Errorf("the batch of the step's commands ended on %s before `%s` ran (exit %d): %s", a.who, c.String(), a.res.ExitCode, bytes.TrimSpace(runner.Bytes()))
		}
		st := sts[i]
		stdout, stderr, flush := sr.streams(c.JSON)
		data, err := os.ReadFile(batch.Stdout(out, i))
		if err != nil {
			return fmt.Errorf("read the output of `%s` from %s: %w", c.String(), a.who, err)
		}
		stdout.Write(data)
		errData, err := os.ReadFile(batch.Stderr(out, i))
		if err != nil {
			return fmt.Errorf("read the output of `%s` from %s: %w", c.String(), a.who, err)
		}
		stderr.Write(errData)
		flush()
		var cerr error
		switch {
		case st.Exit < 0:
			cerr = errors.New(st.Error)
		case st.Exit > 0:
			// Kept below, once every failure is accepted.
			cerr = remoteExit{code: st.Exit, worker: a.who}
		}
		if err := sr.commandEnd(ctx, c, string(errData), cerr); err != nil {
			return err
		}
		if !a.cached {
			// As the worker measured it; a cached result's are another run's.
			sr.phases = append(sr.phases, fmt.Sprintf("%s %.3fs", c.Program+" "+firstArg(c.Args), st.Seconds))
			ran += st.Seconds
		}
	}
	if a.keep != nil {
		// Every failure was one the step accepts.
		a.keep()
	}
	// The rest of the action's time: the engine's, the worker's.
	now := time.Now()
	sr.phases = append(sr.phases, fmt.Sprintf("executor %.3fs", now.Sub(sr.mark).Seconds()-ran))
	sr.mark = now
	return nil
}
