package worker_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"smelt/internal/reapi"
	"smelt/internal/testsrv"
	"smelt/internal/worker"
)

// client is the smallest REAPI client: it uploads an action's Command,
// input root and Action, then Executes it and reads the stream to done.
type client struct {
	conn *grpc.ClientConn
	cas  *reapi.CAS
	exec repb.ExecutionClient
}

func newClient(t *testing.T, url string) *client {
	e, err := reapi.ParseEngine(url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := reapi.Dial(e)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{conn: conn, cas: reapi.NewCAS(conn, e.Instance), exec: repb.NewExecutionClient(conn)}
}

type spec struct {
	args     []string
	inputs   map[string][]byte // path (at most one directory deep) -> bytes
	outputs  []string          // output_paths
	platform []worker.Property
	timeout  time.Duration
}

// upload puts what the action needs in the CAS and returns its digest.
func (c *client) upload(t *testing.T, s spec) *repb.Digest {
	t.Helper()
	var blobs []reapi.Blob
	sub := map[string]*repb.Directory{}
	root := &repb.Directory{}
	names := make([]string, 0, len(s.inputs))
	for n := range s.inputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data := s.inputs[n]
		d := reapi.Digest(data)
		blobs = append(blobs, reapi.Blob{Digest: d, Data: data})
		dir, file := filepath.Split(n)
		node := &repb.FileNode{Name: file, Digest: d}
		if dir == "" {
			root.Files = append(root.Files, node)
			continue
		}
		dir = strings.TrimSuffix(dir, "/")
		if sub[dir] == nil {
			sub[dir] = &repb.Directory{}
		}
		sub[dir].Files = append(sub[dir].Files, node)
	}
	dirs := make([]string, 0, len(sub))
	for n := range sub {
		dirs = append(dirs, n)
	}
	sort.Strings(dirs)
	for _, n := range dirs {
		data, d, err := reapi.Marshal(sub[n])
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, reapi.Blob{Digest: d, Data: data})
		root.Directories = append(root.Directories, &repb.DirectoryNode{Name: n, Digest: d})
	}
	rootData, rootDigest, err := reapi.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	platform := &repb.Platform{}
	for _, p := range s.platform {
		platform.Properties = append(platform.Properties, &repb.Platform_Property{Name: p.Key, Value: p.Value})
	}
	cmd := &repb.Command{
		Arguments:            s.args,
		EnvironmentVariables: []*repb.Command_EnvironmentVariable{{Name: "PATH", Value: "/usr/bin:/bin"}},
		OutputPaths:          s.outputs,
		Platform:             platform,
	}
	cmdData, cmdDigest, err := reapi.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	action := &repb.Action{CommandDigest: cmdDigest, InputRootDigest: rootDigest, Platform: platform}
	if s.timeout > 0 {
		action.Timeout = durationpb.New(s.timeout)
	}
	actionData, actionDigest, err := reapi.Marshal(action)
	if err != nil {
		t.Fatal(err)
	}
	blobs = append(blobs, reapi.Blob{Digest: rootDigest, Data: rootData}, reapi.Blob{Digest: cmdDigest, Data: cmdData}, reapi.Blob{Digest: actionDigest, Data: actionData})
	if _, err := c.cas.UploadMissing(context.Background(), blobs); err != nil {
		t.Fatal(err)
	}
	return actionDigest
}

// execute runs an uploaded action to its end.
func (c *client) execute(ctx context.Context, d *repb.Digest) (*repb.ExecuteResponse, error) {
	return reapi.Execute(ctx, c.conn, "", d, true, nil)
}

// workerProc is one `smelt worker` process.
type workerProc struct {
	name, dir, log string
	cmd            *exec.Cmd
	exited         chan struct{}
}

// startWorker runs a worker on dir ("": a new one).
func startWorker(t *testing.T, bin, url, name, dir string) *workerProc {
	sw := testsrv.StartWorker(t, bin, url, name, dir)
	w := &workerProc{name: sw.Name, dir: sw.Dir, log: sw.Log, cmd: sw.Cmd, exited: sw.Exited}
	return w
}

// run is one "done" line of a worker's log.
type run struct {
	worker     string
	action     string
	start, end time.Time
	exit       int
	fetched    int
	inputs     int
	status     string // "ok", or why the lease did not complete
	args       string
}

var doneLine = regexp.MustCompile(`smelt worker: done action=(\S+) start=(\S+) end=(\S+) exit=(-?\d+) fetched=(\d+)/(\d+) .* status="(.*)" args="(.*)"$`)

func (w *workerProc) runs(t *testing.T) []run {
	b, err := os.ReadFile(w.log)
	if err != nil {
		t.Fatal(err)
	}
	var out []run
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		m := doneLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		r := run{worker: w.name, action: m[1], status: m[7], args: m[8]}
		r.start, _ = time.Parse(time.RFC3339Nano, m[2])
		r.end, _ = time.Parse(time.RFC3339Nano, m[3])
		r.exit, _ = strconv.Atoi(m[4])
		r.fetched, _ = strconv.Atoi(m[5])
		r.inputs, _ = strconv.Atoi(m[6])
		out = append(out, r)
	}
	return out
}

func (w *workerProc) started(t *testing.T, action string) bool {
	b, _ := os.ReadFile(w.log)
	return bytes.Contains(b, []byte("start action="+action))
}

// find lists the completed runs of an action in the workers' logs.
func find(t *testing.T, ws []*workerProc, d *repb.Digest) []run {
	var out []run
	for _, w := range ws {
		for _, r := range w.runs(t) {
			if r.action == reapi.Key(d) && r.status == "ok" {
				out = append(out, r)
			}
		}
	}
	return out
}

// botLine is the bot id a worker's log names ("" before its session).
func botLine(t *testing.T, w *workerProc) string {
	b, _ := os.ReadFile(w.log)
	m := regexp.MustCompile(`smelt worker: bot (\S+) on `).FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// cwdUnder lists the processes whose working directory is in dir.
func cwdUnder(dir string) []string {
	var out []string
	cwds, _ := filepath.Glob("/proc/[0-9]*/cwd")
	for _, p := range cwds {
		if d, err := os.Readlink(p); err == nil && strings.HasPrefix(d, dir+"/") {
			out = append(out, p+" -> "+d)
		}
	}
	return out
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two smelt workers on a real BuildGrid (PostgreSQL scheduler): actions
// run with byte-correct outputs, in parallel on both, survive a worker
// killed mid-action, and an action no worker can serve is detected at
// once from the workers' published offers (BuildGrid itself only fails it
// at its queue timeout).
func TestWorkersOnBuildGrid(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, BuildGrid and two workers (not in -short)")
	}
	began := time.Now()
	bin := filepath.Join(t.TempDir(), "smelt")
	built := make(chan error, 1)
	go func() { // while BuildGrid starts
		out, err := exec.Command("go", "build", "-o", bin, "smelt/cmd/smelt").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("go build: %v\n%s", err, out)
		}
		built <- err
	}()
	const queueTimeout = 25 * time.Second
	eng := testsrv.BuildGrid(t, testsrv.Options{
		MatchKeys:        []string{worker.KeyRustc, worker.KeyTool},
		QueueTimeout:     queueTimeout,
		KeepaliveTimeout: 8 * time.Second,
	})
	t.Logf("BuildGrid up on %s after %s", eng.Addr, time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(eng.Log)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("BuildGrid's log (end):\n%s", b)
		}
	})
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	ws := []*workerProc{startWorker(t, bin, eng.URL, "w1", ""), startWorker(t, bin, eng.URL, "w2", "")}
	c := newClient(t, eng.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, w := range ws {
		waitFor(t, "worker "+w.name+" publishes its offers", 30*time.Second, func() bool {
			b, _ := os.ReadFile(w.log)
			return bytes.Contains(b, []byte(" offers "))
		})
	}
	offered := worker.Probe(ctx)

	// (d) An action needing a tool no worker has. BuildGrid queues it
	// (the key is one it matches on) and fails it UNAVAILABLE only at
	// its queue timeout; the offers name the missing property at once.
	// Started first, it waits while the others run.
	want := append(slices.Clone(offered[:2]), worker.Property{Key: worker.KeyTool, Value: "no-such-tool"})
	var dWG sync.WaitGroup
	var dErr error
	var dTook time.Duration
	dDigest := c.upload(t, spec{args: []string{"true"}, platform: want})
	dWG.Go(func() {
		start := time.Now()
		_, dErr = c.execute(ctx, dDigest)
		dTook = time.Since(start)
	})
	waitFor(t, "both workers' offers in the action cache", 30*time.Second, func() bool {
		missing, err := worker.Unoffered(ctx, c.conn, "", offered)
		return err == nil && len(missing) == 0
	})
	askStart := time.Now()
	missing, err := worker.Unoffered(ctx, c.conn, "", want)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(missing, []string{"tool=no-such-tool"}) {
		t.Errorf("unoffered %q, want exactly tool=no-such-tool (offered: %v)", missing, offered)
	}
	t.Logf("(d) unoffered properties found in %s: %v", time.Since(askStart).Round(time.Millisecond), missing)

	// (a) Inputs in, outputs out, byte for byte; a blob over the batch
	// limit travels by ByteStream both ways.
	big := make([]byte, 5<<20)
	rand.Read(big)
	in := []byte("hello worker\n")
	a := spec{
		args:    []string{"sh", "-c", "tr a-z A-Z < data/in.txt > out/up.txt && mkdir -p tree/sub && cp big.bin tree/sub/big.copy && echo leaf > tree/leaf && echo to-stdout && echo to-stderr >&2"},
		inputs:  map[string][]byte{"data/in.txt": in, "big.bin": big},
		outputs: []string{"out/up.txt", "tree", "absent"},
	}
	aDigest := c.upload(t, a)
	resp, err := c.execute(ctx, aDigest)
	if err != nil {
		t.Fatalf("(a) execute: %v", err)
	}
	res := resp.Result
	if res.ExitCode != 0 {
		t.Fatalf("(a) exit %d", res.ExitCode)
	}
	read := func(d *repb.Digest) []byte {
		b, err := c.cas.Read(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if got := string(read(res.StdoutDigest)); got != "to-stdout\n" {
		t.Errorf("(a) stdout %q", got)
	}
	if got := string(read(res.StderrDigest)); got != "to-stderr\n" {
		t.Errorf("(a) stderr %q", got)
	}
	if len(res.OutputFiles) != 1 || res.OutputFiles[0].Path != "out/up.txt" || string(read(res.OutputFiles[0].Digest)) != "HELLO WORKER\n" {
		t.Errorf("(a) output files %v", res.OutputFiles)
	}
	if len(res.OutputDirectories) != 1 || res.OutputDirectories[0].Path != "tree" {
		t.Fatalf("(a) output directories %v", res.OutputDirectories)
	}
	tree := &repb.Tree{}
	if err := c.cas.ReadProto(ctx, res.OutputDirectories[0].TreeDigest, tree); err != nil {
		t.Fatal(err)
	}
	if len(tree.Root.Files) != 1 || tree.Root.Files[0].Name != "leaf" || string(read(tree.Root.Files[0].Digest)) != "leaf\n" ||
		len(tree.Root.Directories) != 1 || len(tree.Children) != 1 || len(tree.Children[0].Files) != 1 ||
		!bytes.Equal(read(tree.Children[0].Files[0].Digest), big) {
		t.Errorf("(a) output tree %v", tree)
	}
	aRuns := find(t, ws, aDigest)
	if len(aRuns) != 1 || !strings.HasPrefix(aRuns[0].args, "sh -c") || aRuns[0].fetched != 2 || aRuns[0].inputs != 2 {
		t.Fatalf("(a) worker logs for %s: %+v, want one run that fetched its 2 inputs", reapi.Key(aDigest), aRuns)
	}
	t.Logf("(a) ran on %s in %s", aRuns[0].worker, aRuns[0].end.Sub(aRuns[0].start).Round(time.Millisecond))
	// An heir (one input changed) on the same worker fetches only that
	// one: the big blob is in the worker's cache.
	for i := 0; ; i++ {
		h := a
		h.inputs = map[string][]byte{"data/in.txt": []byte(fmt.Sprintf("heir %d\n", i)), "big.bin": big}
		hDigest := c.upload(t, h)
		if _, err := c.execute(ctx, hDigest); err != nil {
			t.Fatalf("(a) heir: %v", err)
		}
		r := find(t, ws, hDigest)
		if len(r) != 1 {
			t.Fatalf("(a) heir runs %+v", r)
		}
		if r[0].worker == aRuns[0].worker {
			if r[0].fetched != 1 {
				t.Errorf("(a) the heir on %s fetched %d of its inputs, want only the changed one", r[0].worker, r[0].fetched)
			}
			break
		}
		if i == 5 {
			t.Fatalf("(a) 6 heirs, none on %s", aRuns[0].worker)
		}
	}

	// (b) Two independent 2-second actions at once: one on each worker,
	// at overlapping times.
	var bDigests [2]*repb.Digest
	var bErrs [2]error
	var wg sync.WaitGroup
	for i := range bDigests {
		bDigests[i] = c.upload(t, spec{args: []string{"sh", "-c", fmt.Sprintf("sleep 2; echo b%d", i)}})
	}
	for i := range bDigests {
		wg.Go(func() { _, bErrs[i] = c.execute(ctx, bDigests[i]) })
	}
	wg.Wait()
	for i, err := range bErrs {
		if err != nil {
			t.Fatalf("(b) action %d: %v", i, err)
		}
	}
	r0, r1 := find(t, ws, bDigests[0]), find(t, ws, bDigests[1])
	if len(r0) != 1 || len(r1) != 1 {
		t.Fatalf("(b) runs %+v %+v", r0, r1)
	}
	if r0[0].worker == r1[0].worker {
		t.Errorf("(b) both ran on %s", r0[0].worker)
	}
	end, start := r0[0].end, r0[0].start
	if r1[0].end.Before(end) {
		end = r1[0].end
	}
	if r1[0].start.After(start) {
		start = r1[0].start
	}
	overlap := end.Sub(start)
	if overlap < time.Second {
		t.Errorf("(b) the two 2 s actions overlapped %s: %+v %+v", overlap, r0[0], r1[0])
	}
	t.Logf("(b) %s and %s overlapped %s", r0[0].worker, r1[0].worker, overlap.Round(time.Millisecond))

	// (f) An operation cancelled by its client: the engine drops the
	// lease, and the worker stops the action's processes.
	fDigest := c.upload(t, spec{args: []string{"sh", "-c", "sleep 60 & sleep 60"}})
	opName := make(chan string, 1)
	go reapi.Execute(ctx, c.conn, "", fDigest, true, func(name string) { opName <- name })
	var fWorker *workerProc
	waitFor(t, "(f) the action starts on a worker", 30*time.Second, func() bool {
		for _, w := range ws {
			if w.started(t, reapi.Key(fDigest)) {
				fWorker = w
				return true
			}
		}
		return false
	})
	waitFor(t, "(f) the action's processes run", 10*time.Second, func() bool { return len(cwdUnder(fWorker.dir)) >= 2 })
	name := <-opName
	cancelAt := time.Now()
	if _, err := longrunningpb.NewOperationsClient(c.conn).CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: name}); err != nil {
		t.Fatalf("(f) cancel %s: %v", name, err)
	}
	waitFor(t, "(f) the worker stops the cancelled action's processes", 15*time.Second, func() bool { return len(cwdUnder(fWorker.dir)) == 0 })
	t.Logf("(f) cancelled; %s stopped the action %s later", fWorker.name, time.Since(cancelAt).Round(time.Millisecond))
	waitFor(t, "(f) the worker logs the cancellation", 5*time.Second, func() bool {
		b, _ := os.ReadFile(fWorker.log)
		return bytes.Contains(b, []byte("cancelled by the engine"))
	})

	// (c) A worker SIGKILLed mid-action: the engine re-leases the action
	// to the other worker once the dead one's session expires.
	cDigest := c.upload(t, spec{args: []string{"sh", "-c", "sleep 5; echo survived > out.txt"}, outputs: []string{"out.txt"}})
	var cResp *repb.ExecuteResponse
	var cErr error
	wg.Go(func() { cResp, cErr = c.execute(ctx, cDigest) })
	var victim *workerProc
	waitFor(t, "(c) the action starts on a worker", 30*time.Second, func() bool {
		for _, w := range ws {
			if w.started(t, reapi.Key(cDigest)) {
				victim = w
				return true
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	victim.cmd.Process.Kill()
	<-victim.exited
	// Nothing of the killed worker's action outlives it (the action
	// would sleep 4 s more).
	for deadline := time.Now().Add(time.Second); len(cwdUnder(victim.dir)) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("(c) processes of the killed worker's action still run: %v", cwdUnder(victim.dir))
			break
		}
	}
	wg.Wait()
	if cErr != nil {
		t.Fatalf("(c) after %s was killed: %v", victim.name, cErr)
	}
	if cResp.Result.ExitCode != 0 || len(cResp.Result.OutputFiles) != 1 || string(read(cResp.Result.OutputFiles[0].Digest)) != "survived\n" {
		t.Errorf("(c) result %v", cResp.Result)
	}
	rc := find(t, ws, cDigest)
	if len(rc) != 1 || rc[0].worker == victim.name {
		t.Errorf("(c) runs %+v, want one on the worker not killed (%s was)", rc, victim.name)
	} else {
		t.Logf("(c) %s killed; the action completed on %s %s later", victim.name, rc[0].worker, rc[0].end.Sub(killed).Round(time.Millisecond))
	}

	// (e) The killed worker, restarted on its directory, is the same bot
	// and takes work again; stopped (SIGTERM) mid-action, it hands the
	// lease back at once: the other worker starts it well before the
	// stopped one's session would have expired.
	firstID := botLine(t, victim)
	restarted := startWorker(t, bin, eng.URL, victim.name, victim.dir)
	for i, w := range ws {
		if w == victim {
			ws[i] = restarted
		}
	}
	waitFor(t, "(e) the restarted worker opens its session", 30*time.Second, func() bool { return botLine(t, restarted) != "" })
	if id := botLine(t, restarted); id != firstID {
		t.Errorf("(e) bot id %q after the restart, was %q", id, firstID)
	}
	eDigest := c.upload(t, spec{args: []string{"sh", "-c", "sleep 3; echo handed-back"}})
	var eErr error
	wg.Go(func() { _, eErr = c.execute(ctx, eDigest) })
	var stopped *workerProc
	waitFor(t, "(e) the action starts on a worker", 30*time.Second, func() bool {
		for _, w := range ws {
			if w.started(t, reapi.Key(eDigest)) {
				stopped = w
				return true
			}
		}
		return false
	})
	time.Sleep(300 * time.Millisecond)
	stopAt := time.Now()
	stopped.cmd.Process.Signal(syscall.SIGTERM)
	<-stopped.exited
	wg.Wait()
	if eErr != nil {
		t.Fatalf("(e) after %s was stopped: %v", stopped.name, eErr)
	}
	re := find(t, ws, eDigest)
	if len(re) != 1 || re[0].worker == stopped.name {
		t.Fatalf("(e) runs %+v, want one on the worker not stopped (%s was)", re, stopped.name)
	}
	if d := re[0].start.Sub(stopAt); d > 4*time.Second {
		t.Errorf("(e) the other worker started the action %s after the stop: not handed back, expired", d)
	}
	t.Logf("(e) %s stopped; %s started the action %s later", stopped.name, re[0].worker, re[0].start.Sub(stopAt).Round(time.Millisecond))

	dWG.Wait()
	if status.Code(dErr) != codes.Unavailable || dTook < queueTimeout-time.Second {
		t.Errorf("(d) execute of an action no worker serves: %v after %s, want UNAVAILABLE at the queue timeout (%s)", dErr, dTook, queueTimeout)
	}
	t.Logf("(d) BuildGrid failed it after %s: %v", dTook.Round(time.Millisecond), dErr)
	t.Logf("total %s", time.Since(began).Round(time.Millisecond))
}
