// Package worker is `smelt worker`: a bot of the Remote Workers API
// (google.devtools.remoteworkers.v1test2, as BuildGrid serves it) that
// takes leases of Remote Execution actions, runs them and reports their
// results.
//
// A lease's action is materialised from the worker's own cache of blobs
// (only what it lacks comes from the engine's CAS), run in a directory of
// its own under DIR/leases, in a PID namespace that dies with the worker
// or when the engine cancels the lease; its outputs, stdout and stderr go
// to the CAS (only the blobs the CAS lacks), its ActionResult back in the
// session. The bot id is kept in DIR, so a restarted worker takes its
// session back and the engine re-queues what the dead one held at once.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/genproto/googleapis/rpc/code"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"smelt/internal/proc"
	"smelt/internal/reapi"
	rwpb "smelt/internal/reapi/remoteworkers"
)

// Options of a worker.
type Options struct {
	Engine reapi.Engine
	Dir    string
	// Log gets one line per lease started and per lease ended, with
	// timestamps, and the session's events.
	Log io.Writer
	// Properties offered; nil: Probe's.
	Properties []Property
	// Poll is the deadline of a session update that waits for work
	// (BuildGrid waits 80% of it); Heartbeat how often a worker busy
	// with an action says it is alive.
	Poll, Heartbeat time.Duration
}

// Worker is one running bot.
type Worker struct {
	o     Options
	botID string
	bots  rwpb.BotsClient
	cas   *reapi.CAS
	cache *cache
	props []Property
	logMu sync.Mutex
	wake  chan struct{} // a lease ended
	// The last action's root, kept for the next one (see materialise).
	warmMu   sync.Mutex
	warmDir  string
	warmRoot map[string]knownFile
}

// lease is an action being run for the engine.
type lease struct {
	id     string
	cancel context.CancelFunc
	done   chan outcome
	out    *outcome // set once done
}

// Run serves leases until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Poll == 0 {
		o.Poll = 30 * time.Second
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 5 * time.Second
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", o.Dir, err)
	}
	// One worker per directory: two would share a bot id, and the engine
	// keeps one session per bot id.
	lock, err := os.OpenFile(filepath.Join(o.Dir, ".lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("another smelt worker uses %s: give each worker a directory of its own", o.Dir)
	}
	id, err := botID(o.Dir)
	if err != nil {
		return err
	}
	// Lease directories of a worker that died are of no use.
	if err := os.RemoveAll(filepath.Join(o.Dir, "leases")); err != nil {
		return fmt.Errorf("clean %s: %w", filepath.Join(o.Dir, "leases"), err)
	}
	conn, err := reapi.Dial(o.Engine)
	if err != nil {
		return err
	}
	defer conn.Close()
	w := &Worker{o: o, botID: id, wake: make(chan struct{}, 1), bots: rwpb.NewBotsClient(conn), cas: reapi.NewCAS(conn, o.Engine.Instance)}
	w.cache = &cache{dir: filepath.Join(o.Dir, "cas"), cas: w.cas}
	w.props = o.Properties
	if w.props == nil {
		w.props = Probe(ctx)
	}
	if ok, note := proc.Isolated(); !ok {
		w.logf("warning: %s", note)
	}
	var kv []string
	for _, p := range w.props {
		kv = append(kv, p.Key+"="+p.Value)
	}
	w.logf("bot %s on %s offers %s", id, o.Engine, strings.Join(kv, ", "))
	go w.offer(ctx, repb.NewActionCacheClient(conn))
	return w.loop(ctx)
}

// offer publishes the worker's offers now and every OfferRefresh.
func (w *Worker) offer(ctx context.Context, ac repb.ActionCacheClient) {
	warned := false
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := w.publish(cctx, ac)
		cancel()
		if err != nil && !warned && ctx.Err() == nil {
			w.logf("warning: %v (clients cannot tell which properties this worker offers; it still takes leases)", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(OfferRefresh):
		}
	}
}

func (w *Worker) logf(format string, args ...any) {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	fmt.Fprintf(w.o.Log, "%s smelt worker: %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}

// botID is the worker's stable id, kept in DIR/bot-id.
func botID(dir string) (string, error) {
	p := filepath.Join(dir, "bot-id")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	host, _ := os.Hostname()
	r := make([]byte, 6)
	rand.Read(r)
	id := fmt.Sprintf("%s-%s", host, hex.EncodeToString(r))
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	return id, os.Rename(tmp, p)
}

// loop keeps a session with the engine: created, then updated, created
// again (same bot id) when the engine forgot it.
func (w *Worker) loop(ctx context.Context) error {
	backoff := time.Second
	warned := false
	for ctx.Err() == nil {
		sess, err := w.create(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if !warned {
				w.logf("warning: cannot open a session on %s (%v); retrying", w.o.Engine, err)
				warned = true
			}
			sleep(ctx, backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		if warned {
			w.logf("session open on %s", w.o.Engine)
		}
		warned, backoff = false, time.Second
		err = w.serve(ctx, sess)
		if ctx.Err() == nil {
			w.logf("warning: session %s ended (%v); opening a new one", sess.Name, err)
			sleep(ctx, time.Second)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (w *Worker) create(ctx context.Context) (*rwpb.BotSession, error) {
	dev := &rwpb.Device{Handle: w.botID}
	for _, p := range w.props {
		dev.Properties = append(dev.Properties, &rwpb.Device_Property{Key: p.Key, Value: p.Value})
	}
	req := &rwpb.CreateBotSessionRequest{
		Parent: w.o.Engine.Instance,
		BotSession: &rwpb.BotSession{
			BotId:  w.botID,
			Status: rwpb.BotStatus_OK,
			Worker: &rwpb.Worker{Devices: []*rwpb.Device{dev}},
		},
	}
	cctx, cancel := context.WithTimeout(ctx, w.o.Poll)
	defer cancel()
	return w.bots.CreateBotSession(cctx, req)
}

// serve updates the session until the engine no longer knows it. Every
// update echoes the session with each lease's state; with no action
// running it waits for work (long poll), with one it is the heartbeat,
// and it goes at once when the action ends.
func (w *Worker) serve(ctx context.Context, sess *rwpb.BotSession) error {
	leases := map[string]*lease{}
	defer func() {
		for _, l := range leases {
			l.cancel()
			if l.out == nil {
				<-l.done
			}
		}
		if ctx.Err() == nil {
			return // the engine re-queues them when the next session opens
		}
		// Stopping: hand the leases back at once (UNAVAILABLE is one
		// of the codes BuildGrid retries on another bot), and take no
		// new ones.
		sess.Status = rwpb.BotStatus_BOT_TERMINATING
		for _, pl := range sess.Leases {
			if leases[pl.Id] != nil && pl.State == rwpb.LeaseState_ACTIVE {
				pl.State = rwpb.LeaseState_COMPLETED
				pl.Status = &spb.Status{Code: int32(code.Code_UNAVAILABLE), Message: "the worker was stopped"}
				pl.Result = nil
			}
		}
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := w.bots.UpdateBotSession(uctx, &rwpb.UpdateBotSessionRequest{Name: sess.Name, BotSession: sess}); err != nil {
			w.logf("warning: could not hand the leases back on stopping (%v); the engine re-queues them when the session expires", err)
		}
	}()
	fails := 0
	for {
		w.start(ctx, sess, leases)
		busy := false
		for _, l := range leases {
			busy = busy || l.out == nil
		}
		if busy {
			// Well within the session's expiry, which the engine
			// sets from its keepalive timeout.
			every := w.o.Heartbeat
			if exp := sess.GetExpireTime(); exp != nil {
				if left := time.Until(exp.AsTime()) / 3; left > 100*time.Millisecond {
					every = min(every, left)
				}
			}
			hb := time.NewTimer(every)
			for busy {
				select {
				case <-ctx.Done():
					hb.Stop()
					return ctx.Err()
				case <-hb.C:
					busy = false
				case <-w.wake:
					busy = false
				}
			}
			hb.Stop()
		}
		for _, l := range leases {
			if l.out == nil {
				select {
				case o := <-l.done:
					l.out = &o
				default:
				}
			}
		}
		// Report: the session as the engine sent it, with each
		// finished lease COMPLETED and its result.
		for _, pl := range sess.Leases {
			l := leases[pl.Id]
			if l == nil || l.out == nil {
				continue
			}
			pl.State = rwpb.LeaseState_COMPLETED
			pl.Status = l.out.status
			pl.Result = nil
			if l.out.result != nil {
				a, err := anypb.New(l.out.result)
				if err != nil {
					return err
				}
				pl.Result = a
			}
		}
		deadline := w.o.Poll
		if busy := len(sess.Leases) > 0; busy {
			deadline = min(deadline, 10*time.Second)
		}
		uctx, cancel := context.WithTimeout(ctx, deadline)
		next, err := w.bots.UpdateBotSession(uctx, &rwpb.UpdateBotSessionRequest{Name: sess.Name, BotSession: sess}, grpc.WaitForReady(false))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			switch status.Code(err) {
			case codes.DeadlineExceeded, codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.Internal:
				// Try again with the same session: the engine
				// re-sends what it had for us. An engine gone for
				// longer than the keepalive forgets the session
				// and the next update says so.
				fails++
				if fails == 3 {
					w.logf("warning: updates of session %s fail (%v); still trying", sess.Name, err)
				}
				sleep(ctx, min(time.Duration(fails)*500*time.Millisecond, 5*time.Second))
				continue
			}
			return err
		}
		fails = 0
		// A lease the engine no longer lists is cancelled (or was
		// completed and acknowledged): stop it, forget it.
		listed := map[string]bool{}
		for _, pl := range next.Leases {
			listed[pl.Id] = true
		}
		for id, l := range leases {
			if listed[id] {
				continue
			}
			if l.out == nil {
				w.logf("lease %s cancelled by the engine: stopping its action", id)
				l.cancel()
				<-l.done
			}
			delete(leases, id)
		}
		sess = next
	}
}

// start begins the ACTIVE leases of sess not yet running.
func (w *Worker) start(ctx context.Context, sess *rwpb.BotSession, leases map[string]*lease) {
	for _, pl := range sess.Leases {
		if pl.State != rwpb.LeaseState_ACTIVE || leases[pl.Id] != nil {
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		l := &lease{id: pl.Id, cancel: cancel, done: make(chan outcome, 1)}
		leases[pl.Id] = l
		payload := pl.Payload
		go func() {
			l.done <- w.run(lctx, pl.Id, payload)
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}()
	}
}

// run executes one lease's action and logs it.
func (w *Worker) run(ctx context.Context, id string, payload *anypb.Any) outcome {
	action := &repb.Action{}
	var digest *repb.Digest
	switch {
	case payload.MessageIs(action):
		if err := payload.UnmarshalTo(action); err != nil {
			return failed(code.Code_INVALID_ARGUMENT, "read the lease's action: %v", err)
		}
		_, digest, _ = reapi.Marshal(action)
	case payload.MessageIs(&repb.Digest{}):
		digest = &repb.Digest{}
		if err := payload.UnmarshalTo(digest); err != nil {
			return failed(code.Code_INVALID_ARGUMENT, "read the lease's action digest: %v", err)
		}
		if err := w.cache.readProto(ctx, digest, action); err != nil {
			return failed(code.Code_FAILED_PRECONDITION, "fetch the action: %v", err)
		}
	default:
		return failed(code.Code_INVALID_ARGUMENT, "lease payload %s is neither an Action nor its digest", payload.GetTypeUrl())
	}
	dir := filepath.Join(w.o.Dir, "leases", safe(id))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return failed(code.Code_INTERNAL, "%v", err)
	}
	defer os.RemoveAll(dir)
	start := time.Now().UTC()
	w.logf("start action=%s lease=%s", reapi.Key(digest), id)
	var st stats
	root := filepath.Join(dir, "root")
	warm := w.takeWarm(root)
	out := w.execute(ctx, action, dir, warm, &st)
	if st.warm != nil && ctx.Err() == nil {
		w.putWarm(root, st.warm)
	}
	end := time.Now().UTC()
	msg := "ok"
	if out.status.GetCode() != 0 {
		msg = codes.Code(out.status.GetCode()).String() + ": " + out.status.GetMessage()
	}
	w.logf("done action=%s start=%s end=%s exit=%d fetched=%d/%d (%d bytes) kept=%d uploaded=%d fetch=%s run=%s times=%q status=%q args=%q",
		reapi.Key(digest), start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano), st.exit,
		st.fetched, st.inputs, st.fetchedBytes, st.kept, st.uploaded, st.fetch.Round(time.Millisecond), st.execute.Round(time.Millisecond),
		strings.Join(st.phases, ", "), msg, firstArgs(st.args))
	return out
}

// takeWarm moves the last action's root, if any, to root and returns its
// files; nil when there is none (root is then made afresh).
func (w *Worker) takeWarm(root string) map[string]knownFile {
	w.warmMu.Lock()
	dir, files := w.warmDir, w.warmRoot
	w.warmDir, w.warmRoot = "", nil
	w.warmMu.Unlock()
	if dir == "" {
		return nil
	}
	if err := os.Rename(dir, root); err != nil {
		os.RemoveAll(dir)
		return nil
	}
	return files
}

// putWarm keeps an action's root (its files: files) for the next action,
// in place of any kept before. The leases directory, where it lies, is
// emptied when a worker starts: a root is kept only by the worker that
// knows its state.
func (w *Worker) putWarm(root string, files map[string]knownFile) {
	dir := filepath.Join(w.o.Dir, "leases", fmt.Sprintf(".warm-%d", time.Now().UnixNano()))
	if err := os.Rename(root, dir); err != nil {
		return
	}
	w.warmMu.Lock()
	old := w.warmDir
	w.warmDir, w.warmRoot = dir, files
	w.warmMu.Unlock()
	if old != "" {
		os.RemoveAll(old)
	}
}

func firstArgs(args []string) string {
	if len(args) > 4 {
		args = append(args[:4:4], "…")
	}
	return strings.Join(args, " ")
}

func safe(id string) string {
	return strings.NewReplacer("/", "_", "\\", "_", "..", "_").Replace(id)
}
