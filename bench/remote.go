package main

// Cases of the remote cache (issue 17: remote, bytes) and of remote
// execution (issue 18: exec). Their servers are real and run on loopback,
// started by the harness: a shared directory (file://), versitygw (S3)
// when installed, and BuildGrid with PostgreSQL and two `smelt worker`s.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"smelt/internal/testsrv"
	"smelt/internal/worker"
)

// coldSmelt holds each project's cold `smelt check` times of this run,
// which the remote and exec cases compare against when the cold case ran.
var coldSmelt = map[string][]float64{}

// smeltHas reports whether the smelt binary's usage mentions flag (a
// feature being merged may not be in the binary measured).
func smeltHas(flag string) bool {
	out, _ := exec.Command(smeltBin, "-h").CombinedOutput()
	return strings.Contains(string(out), flag)
}

// smeltAt runs smelt on a project directory and store of the caller's
// choice, with extra environment (nil: the harness's).
func smeltAt(tag, dir, store string, env []string, args ...string) result {
	args = append(args, "-C", dir, "--store", store, "-j", fmt.Sprint(*flagJobs))
	return timeCmdEnv("smelt-"+tag, "", env, smeltBin, args...)
}

// events parses smelt's --json output: the last event of each kind.
func events(out string) map[string]map[string]any {
	evs := map[string]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			if k, ok := ev["event"].(string); ok {
				evs[k] = ev
			}
		}
	}
	return evs
}

// stepTimes lists each step's status and seconds from the --json output's
// finish events ("deps built 1.23s, ..."), for the record.
func stepTimes(out string) string {
	var parts []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Event, Step, Status string
			Seconds             float64
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "finish" {
			parts = append(parts, fmt.Sprintf("%s %s %.2fs", ev.Step, ev.Status, ev.Seconds))
		}
	}
	return strings.Join(parts, ", ")
}

func evInt(evs map[string]map[string]any, kind, field string) int64 {
	if v, ok := evs[kind][field].(float64); ok {
		return int64(v)
	}
	return -1
}

// ---------------------------------------------------------------- servers

// remoteCache is one remote cache the remote cases use.
type remoteCache struct {
	kind string   // file or s3
	url  string   // what --remote gets
	env  []string // environment smelt needs for it (S3's AWS_*)
}

// servers started by the harness, stopped at exit (stopServers).
var stops []func()

func stopServers() {
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	stops = nil
}

// startProc starts a server in its own process group (killed with the
// harness too), waits until addr accepts connections and registers its
// stop.
func startProc(cmd *exec.Cmd, addr, logPath string, wait time.Duration) error {
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); lf.Close() }()
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			stops = append(stops, stop)
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited (%v) before listening on %s; log %s", cmd.Path, err, addr, logPath)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("%s did not listen on %s within %s; log %s", cmd.Path, addr, wait, logPath)
		}
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// s3Server is versitygw (posix backend) on loopback, started once per
// harness run: its environment for smelt, "" env when not installed.
var s3Server struct {
	started bool
	env     []string
	note    string
	addr    string
}

func isFile(p string) bool { _, err := os.Stat(p); return err == nil }

func startS3() {
	if s3Server.started {
		return
	}
	s3Server.started = true
	bin := testsrv.Versitygw()
	if bin == "" {
		s3Server.note = "versitygw not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0): S3 not measured"
		return
	}
	dir := filepath.Join(*flagWork, "s3")
	must(os.RemoveAll(dir))
	root, iam := filepath.Join(dir, "gw"), filepath.Join(dir, "iam")
	must(os.MkdirAll(root, 0o755))
	must(os.MkdirAll(iam, 0o755))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	const key, secret = "benchkey", "benchsecret"
	cmd := exec.Command(bin, "--access", key, "--secret", secret, "--port", addr, "--iam-dir", iam, "--quiet", "posix", root)
	if err := startProc(cmd, addr, filepath.Join(logDir, "versitygw.log"), 15*time.Second); err != nil {
		s3Server.note = "versitygw did not start: " + err.Error()
		return
	}
	s3Server.addr = addr
	s3Server.env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+key, "AWS_SECRET_ACCESS_KEY="+secret, "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL_S3=http://"+addr, "AWS_ENDPOINT_URL=",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"), "AWS_PROFILE=")
	// The bucket, as a team's set-up would create it.
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr), UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}, nil
		})})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("smelt-bench")}); err != nil {
		s3Server.note = "versitygw: create bucket: " + err.Error()
		s3Server.env = nil
	}
}

// remoteSetup is a project's remote caches, each filled by side A: the
// project's own store runs `smelt check --push` into it (building what it
// lacks), signed with a key made by `smelt key generate`.
type remoteSetup struct {
	caches []remoteCache
	pub    string // NAME:BASE64
	pushed map[string]result
	notes  []string
	failed string // why side A could not fill the remotes ("" if it did)
}

var setups = map[string]*remoteSetup{}

func setupRemotes(p *project) *remoteSetup {
	if s := setups[p.label]; s != nil {
		return s
	}
	s := &remoteSetup{pushed: map[string]result{}}
	setups[p.label] = s
	keyFile := filepath.Join(p.root, "bench-signing.key")
	os.Remove(keyFile)
	out, err := exec.Command(smeltBin, "key", "generate", "bench-"+p.label, "-o", keyFile).Output()
	if err != nil {
		s.failed = fmt.Sprintf("smelt key generate failed: %v", err)
		return s
	}
	s.pub = strings.TrimSpace(string(out))
	dir := filepath.Join(p.root, "remote-file")
	must(os.RemoveAll(dir))
	must(os.MkdirAll(dir, 0o755))
	s.caches = append(s.caches, remoteCache{kind: "file", url: "file://" + dir})
	startS3()
	if s3Server.env != nil {
		s.caches = append(s.caches, remoteCache{kind: "s3", url: "s3://smelt-bench/" + p.label, env: s3Server.env})
	} else {
		s.notes = append(s.notes, s3Server.note)
	}
	for _, c := range s.caches {
		logf("   side A: smelt check --push into %s", c.url)
		r := timeCmdEnv("smelt-push-"+c.kind, "", c.env, smeltBin,
			smeltArgs(p, "check", "--json", "--push", "--remote", c.url, "--signing-key", keyFile)...)
		evs := events(r.out)
		r.detail["uploaded"] = fmt.Sprint(evInt(evs, "remote", "uploaded"))
		r.detail["pushed"] = fmt.Sprint(evInt(evs, "remote", "pushed"))
		r.detail["command"] = fmt.Sprintf("smelt check --json --push --remote %s --signing-key %s -C %s --store %s", c.url, keyFile, p.smeltDir, p.store)
		record(p, "remote-push", c.kind, 1, r, false)
		if !r.ok || evInt(evs, "remote", "pushed") <= 0 {
			s.failed = fmt.Sprintf("side A's push into %s failed or pushed nothing (log %s)", c.url, r.detail["log"])
			logf("   !! %s", s.failed)
			return s
		}
		s.pushed[c.kind] = r
	}
	return s
}

// pulled is one measurement of side B.
type pulled struct {
	check, build     result
	secs             float64
	downCheck        int64
	downBuild        int64
	nPulled, nBuilt  int64
	resultDir        string
	resultBytes      int64
	ok               bool
	checkCmd, bldCmd string
}

// pullRun is side B: a fresh store at another path, the project copied
// to another path, `smelt check` from the warm remote and then
// `smelt build` (time = both).
func pullRun(p *project, s *remoteSetup, c remoteCache, rep int) pulled {
	base := filepath.Join(p.root, "remote-b", fmt.Sprintf("%s-%d", c.kind, rep))
	must(os.RemoveAll(base))
	must(os.MkdirAll(base, 0o755))
	proj, store := filepath.Join(base, "project"), filepath.Join(base, "store")
	mustRun("", "cp", "-a", p.smeltDir, proj)
	os.Remove(filepath.Join(proj, "result"))
	os.RemoveAll(filepath.Join(proj, "target"))
	rargs := []string{"--json", "--remote", c.url, "--trust", s.pub}
	var pr pulled
	pr.check = smeltAt("pull-check-"+c.kind, proj, store, c.env, append([]string{"check"}, rargs...)...)
	pr.build = smeltAt("pull-build-"+c.kind, proj, store, c.env, append([]string{"build"}, rargs...)...)
	pr.checkCmd = fmt.Sprintf("smelt check %s -C %s --store %s -j %d", strings.Join(rargs, " "), proj, store, *flagJobs)
	pr.bldCmd = strings.Replace(pr.checkCmd, "smelt check", "smelt build", 1)
	ce, be := events(pr.check.out), events(pr.build.out)
	pr.secs = pr.check.secs + pr.build.secs
	pr.downCheck, pr.downBuild = evInt(ce, "remote", "downloaded"), evInt(be, "remote", "downloaded")
	pr.nPulled, pr.nBuilt = evInt(ce, "summary", "pulled"), evInt(ce, "summary", "built")
	pr.resultDir = filepath.Join(proj, "result")
	if d, err := filepath.EvalSymlinks(pr.resultDir); err == nil {
		pr.resultBytes = du(d)
	}
	binOK := isFile(filepath.Join(pr.resultDir, "bin", p.bin))
	pr.ok = pr.check.ok && pr.build.ok && pr.nBuilt == 0 && pr.nPulled > 0 && pr.downCheck >= 0 && binOK
	d := pr.check.detail
	d["build_log"] = pr.build.detail["log"]
	d["check_seconds"], d["build_seconds"] = fmt.Sprintf("%.3f", pr.check.secs), fmt.Sprintf("%.3f", pr.build.secs)
	d["downloaded_check"], d["downloaded_build"] = fmt.Sprint(pr.downCheck), fmt.Sprint(pr.downBuild)
	d["pulled"], d["built"] = fmt.Sprint(pr.nPulled), fmt.Sprint(pr.nBuilt)
	d["result_bin"] = fmt.Sprint(binOK)
	d["remote"] = c.url
	d["command"] = pr.checkCmd + " && " + pr.bldCmd
	if !pr.ok {
		logf("   !! side B on %s: pulled %d, built %d, downloaded %d, result/bin/%s %v (logs %s, %s)",
			c.kind, pr.nPulled, pr.nBuilt, pr.downCheck, p.bin, binOK, pr.check.detail["log"], pr.build.detail["log"])
	}
	return pr
}

// pulls keeps side B's runs by project and cache, for the bytes case.
var pulls = map[string]map[string][]pulled{}

func keepPull(p *project, kind string, pr pulled) {
	if pulls[p.label] == nil {
		pulls[p.label] = map[string][]pulled{}
	}
	pulls[p.label][kind] = append(pulls[p.label][kind], pr)
}

// coldFresh is a cold `smelt check` in a new store of its own (the
// project's store stays side A's).
func coldFresh(p *project, tag string, rep int) result {
	store := filepath.Join(p.root, "cold-fresh", fmt.Sprint(rep))
	must(os.RemoveAll(store))
	r := smeltAt(tag, p.smeltDir, store, nil, "check", "--json")
	r.detail["steps"] = stepTimes(r.out)
	return r
}

// ---------------------------------------------------------------- cases

func caseRemote(p *project) {
	logf("-- remote cache: fresh store + warm remote vs cold (%d reps)", *flagReps)
	if !smeltHas("--remote") {
		skipRow(p, "8. fresh store + warm remote (check + build) vs cold", "≤ 0.1×",
			"skipped: this smelt has no --remote flag (the remote-cache wiring is not in the binary measured)")
		return
	}
	s := setupRemotes(p)
	if s.failed != "" {
		skipRow(p, "8. fresh store + warm remote (check + build) vs cold", "≤ 0.1×", "skipped: "+s.failed)
		return
	}
	cmp, reused := coldSmelt[p.label], len(coldSmelt[p.label]) > 0
	secs := map[string][]float64{}
	okAll := map[string]bool{}
	cmds := map[string]string{}
	coldOK := true
	if !reused {
		cmp = nil
	}
	for rep := 1; rep <= *flagReps; rep++ {
		// Without the cold case, one cold run per repetition serves as
		// every remote's comparison; it goes first in odd repetitions.
		cold := func() {
			if reused {
				return
			}
			r := coldFresh(p, "remote-cold", rep)
			record(p, "remote-cold", "smelt-cold", rep, r, rep%2 == 1)
			logf("   remote rep %d: cold smelt check %.2fs", rep, r.secs)
			cmp = append(cmp, r.secs)
			coldOK = coldOK && r.ok
		}
		if rep%2 == 1 {
			cold()
		}
		for _, c := range s.caches {
			pr := pullRun(p, s, c, rep)
			record(p, "remote-"+c.kind, "smelt", rep, result{secs: pr.secs, ok: pr.ok, detail: pr.check.detail}, rep%2 == 0)
			logf("   remote %s rep %d: fresh store %.2fs (check %.2fs + build %.2fs), downloaded %s + %s", c.kind, rep,
				pr.secs, pr.check.secs, pr.build.secs, human(pr.downCheck), human(pr.downBuild))
			keepPull(p, c.kind, pr)
			secs[c.kind] = append(secs[c.kind], pr.secs)
			okAll[c.kind] = (rep == 1 || okAll[c.kind]) && pr.ok
			cmds[c.kind] = pr.checkCmd + " && " + pr.bldCmd
		}
		if rep%2 == 0 {
			cold()
		}
	}
	note := "cold = a cold `smelt check` in a fresh store of its own, one per repetition, run before (odd repetitions) or after (even) the remote runs"
	if reused {
		note = "cold = the cold case's `smelt check` times of this run"
	}
	for _, c := range s.caches {
		what := map[string]string{"file": "file:// (a shared directory)", "s3": "s3:// (versitygw " + s3Server.addr + ", posix backend)"}[c.kind]
		n := fmt.Sprintf("remote %s; side A: `smelt check --push` from the project's store; side B: `%s`; %s", what, cmds[c.kind], note)
		if c.kind == s.caches[len(s.caches)-1].kind && len(s.notes) > 0 {
			n += "; " + strings.Join(s.notes, "; ")
		}
		addRow(p, "8. fresh store + warm remote "+c.kind+" (check + build) vs cold", "≤ 0.1×", secs[c.kind], cmp, 0.1, 0, okAll[c.kind] && coldOK, n)
	}
	os.RemoveAll(filepath.Join(p.root, "cold-fresh"))
}

func caseBytes(p *project) {
	logf("-- bytes downloaded from the remote vs crane's chain")
	if !smeltHas("--remote") {
		skipRow(p, "9. bytes downloaded by a fully cached smelt check", "< 1 MB",
			"skipped: this smelt has no --remote flag (the remote-cache wiring is not in the binary measured)")
		return
	}
	s := setupRemotes(p)
	if s.failed != "" {
		skipRow(p, "9. bytes downloaded by a fully cached smelt check", "< 1 MB", "skipped: "+s.failed)
		return
	}
	crane, craneRaw, perStep, err := craneChain(p)
	if err != nil {
		skipRow(p, "9. bytes downloaded by a fully cached smelt check", "< 1 MB", "skipped: crane's chain: "+err.Error())
		return
	}
	for _, c := range s.caches {
		runs := pulls[p.label][c.kind]
		if len(runs) == 0 {
			pr := pullRun(p, s, c, 1)
			record(p, "bytes-"+c.kind, "smelt", 1, result{secs: pr.secs, ok: pr.ok, detail: pr.check.detail}, true)
			keepPull(p, c.kind, pr)
			runs = []pulled{pr}
		}
		var dc, db []int64
		ok := true
		for _, pr := range runs {
			dc, db = append(dc, pr.downCheck), append(db, pr.downBuild)
			ok = ok && pr.ok
		}
		mc, mb := medianInt(dc), medianInt(db)
		pr := runs[0]
		meas = append(meas, Measurement{Project: p.label, Case: "bytes-" + c.kind, Side: "smelt", Bytes: mc, OK: ok,
			Detail: map[string]string{"downloaded_check": fmt.Sprint(dc), "downloaded_build": fmt.Sprint(db),
				"crane_chain_zstd": itoa(crane), "crane_chain_raw": itoa(craneRaw), "crane_per_step": perStep, "command": pr.checkCmd + " && " + pr.bldCmd}})
		met := map[bool]string{true: "yes", false: "no"}[ok && mc >= 0 && mc < 1e6]
		if !ok {
			met = "no (a command failed or a step was not pulled; see results.json)"
		}
		common := fmt.Sprintf("remote %s; from the summary's `remote` event (--json) of `%s` (%d run(s): %v bytes); crane = `tar --zstd` of each step's files new or changed against its parent's target/: %s (%s uncompressed)",
			c.url, pr.checkCmd, len(runs), dc, perStep, human(craneRaw))
		rows = append(rows, Row{Project: p.label, Case: "9. bytes downloaded: fully cached smelt check, fresh store (" + c.kind + ")", Goal: "< 1 MB",
			Smelt: human(mc), Cmp: human(crane) + " crane chain", Ratio: float64(mc) / float64(max64(crane, 1)), Met: met, Note: common})
		rows = append(rows, Row{Project: p.label, Case: "9b. bytes downloaded: smelt build after it (" + c.kind + ")", Goal: "< crane chain",
			Smelt: human(mb), Cmp: human(crane) + " crane chain", Ratio: float64(mb) / float64(max64(crane, 1)),
			Met:  map[bool]string{true: "yes", false: "no"}[ok && mb >= 0 && mb < crane],
			Note: fmt.Sprintf("`%s` (%v bytes); the linked result/ is %s uncompressed", pr.bldCmd, db, human(pr.resultBytes))})
	}
}

// craneChain is what crane stores for the chain (installCargoArtifactsMode
// use-zstd): per step, a zstd tar of the files of its target/ that are new
// or changed against the target/ it inherited. Each step's target/ is
// written by `smelt restore --link STEP DIR` from side A's store and
// compared by content with its parent's; the tars are made with
// `tar --zstd` (zstd's default level 3). Returns the compressed and raw
// totals and a per-step note.
func craneChain(p *project) (zst, raw int64, note string, err error) {
	dir := filepath.Join(p.root, "crane")
	must(os.RemoveAll(dir))
	must(os.MkdirAll(dir, 0o755))
	defer os.RemoveAll(dir)
	var parts []string
	prev := map[string]fileState{}
	for _, st := range []string{"deps", "clippy", "test", "crate"} {
		tdir := filepath.Join(dir, st)
		r := runSmelt(p, "crane-restore-"+st, "restore", "--link", st, tdir)
		if !r.ok {
			return 0, 0, "", fmt.Errorf("smelt restore --link %s %s failed (log %s)", st, tdir, r.detail["log"])
		}
		cur := scanTree(tdir, nil)
		var list []string
		var n int64
		for k, v := range cur {
			if old, ok := prev[k]; !ok || old.hash != v.hash {
				list = append(list, k)
				n += v.size
			}
		}
		sort.Strings(list)
		lf := filepath.Join(dir, st+".list")
		must(os.WriteFile(lf, []byte(strings.Join(list, "\x00")), 0o644))
		tf := filepath.Join(dir, st+".tar.zst")
		if out, err := exec.Command("tar", "--zstd", "-cf", tf, "-C", tdir, "--null", "-T", lf).CombinedOutput(); err != nil {
			return 0, 0, "", fmt.Errorf("tar --zstd of %s: %v: %s", st, err, out)
		}
		fi, err := os.Stat(tf)
		if err != nil {
			return 0, 0, "", err
		}
		zst += fi.Size()
		raw += n
		parts = append(parts, fmt.Sprintf("%s %s (%d files, %s raw)", st, human(fi.Size()), len(list), human(n)))
		prev = cur
	}
	return zst, raw, strings.Join(parts, ", "), nil
}

func caseExec(p *project) {
	logf("-- remote execution (BuildGrid + 2 smelt workers) vs local (%d reps)", *flagReps)
	cas := "10. remote execution: BuildGrid + 2 smelt workers vs local, cold"
	if !smeltHas("--executor") {
		skipRow(p, cas, "≤ 1.2×", "skipped: this smelt has no --executor flag (remote execution is not in the binary measured)")
		return
	}
	var secs, cmp []float64
	okAll := true
	var cmd, perWorker string
	for rep := 1; rep <= *flagReps; rep++ {
		// A new engine (PostgreSQL + BuildGrid: its action cache is in
		// memory) and new workers each repetition, so that nothing is an
		// action-cache hit or already in a worker's cache; untimed.
		eng, workers, stop, err := startEngine(p, rep)
		if err != nil {
			stop()
			skipRow(p, cas, "≤ 1.2×", "skipped: "+err.Error())
			return
		}
		store := filepath.Join(p.root, "exec-store", fmt.Sprint(rep))
		must(os.RemoveAll(store))
		run := func() result {
			r := smeltAt("exec", p.smeltDir, store, nil, "check", "--json", "--executor", eng)
			evs := events(r.out)
			built := evInt(evs, "summary", "built")
			var done []string
			total := 0
			for _, w := range workers {
				n := strings.Count(string(readFileQuiet(w)), "smelt worker: done action=")
				total += n
				done = append(done, fmt.Sprintf("%s: %d", filepath.Base(filepath.Dir(w)), n))
			}
			perWorker = strings.Join(done, ", ")
			r.detail["steps"] = stepTimes(r.out)
			r.detail["built"], r.detail["actions_per_worker"], r.detail["worker_logs"] = fmt.Sprint(built), perWorker, strings.Join(workers, " ")
			// Every step that ran must have run on a worker.
			r.ok = r.ok && built > 0 && total >= int(built)
			if total < int(built) {
				logf("   !! %d steps built but the workers ran %d actions (%s)", built, total, perWorker)
			}
			return r
		}
		cmd = fmt.Sprintf("smelt check --json --executor %s -C %s --store %s -j %d", eng, p.smeltDir, store, *flagJobs)
		// The local run alongside, not the cold case's: the goal is
		// within 20%, about what the load here moves a run by between
		// cases.
		rs, rc := pair(p, "exec", rep, run, func() result { return coldFresh(p, "exec-local", rep) }, "smelt-local")
		cmp = append(cmp, rc.secs)
		okAll = okAll && rc.ok
		rs.detail["command"] = cmd
		secs = append(secs, rs.secs)
		okAll = okAll && rs.ok
		stop()
		must(os.RemoveAll(store))
	}
	note := "local = a cold `smelt check` in a fresh store, run alongside (alternating which goes first)"
	if cold := coldSmelt[p.label]; len(cold) > 0 {
		note += fmt.Sprintf("; the cold case's smelt check: median %.2fs %s", median(cold), fmtList(cold))
	}
	addRow(p, cas, "≤ 1.2×", secs, cmp, 1.2, 0, okAll,
		fmt.Sprintf("`%s`, fresh store, a new engine and new workers per repetition (started untimed); actions per worker (last rep) %s; %s", cmd, perWorker, note))
	os.RemoveAll(filepath.Join(p.root, "cold-fresh"))
}

// startEngine starts PostgreSQL and BuildGrid through internal/testsrv
// (the tests' recipe, with the harness standing in for the test) and two
// `smelt worker`s, and waits until both publish their offers. It returns
// the engine's URL and the workers' logs.
func startEngine(p *project, rep int) (url string, logs []string, stop func(), err error) {
	tb := &harnessTB{}
	stop = tb.close
	stops = append(stops, tb.close) // on a fatal error too: pg_ctl's PostgreSQL outlives the harness
	defer func() {
		if v := recover(); v != nil {
			s, ok := v.(tbStop)
			if !ok {
				panic(v)
			}
			err = fmt.Errorf("BuildGrid could not be started: %s", s.msg)
		}
	}()
	t := time.Now()
	// A CAS big enough for a pipeline's inputs and outputs at once (the
	// tests' 512M would evict blobs of ripgrep's target/ mid-run); it is
	// memory only as far as it fills.
	eng := testsrv.BuildGrid(tb, testsrv.Options{MatchKeys: []string{worker.KeyRustc, worker.KeyTool}, CASSize: "6144M"})
	logf("   BuildGrid on %s after %s", eng.Addr, time.Since(t).Round(time.Millisecond))
	for _, name := range []string{"w1", "w2"} {
		dir := filepath.Join(p.root, "exec-workers", fmt.Sprintf("%d-%s", rep, name))
		must(os.RemoveAll(dir))
		must(os.MkdirAll(dir, 0o755))
		lp := filepath.Join(dir, "worker.log")
		lf, err := os.Create(lp)
		must(err)
		cmd := exec.Command(smeltBin, "worker", "--engine", eng.URL, "--dir", filepath.Join(dir, "w"))
		cmd.Stdout, cmd.Stderr = lf, lf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			lf.Close()
			return "", nil, stop, fmt.Errorf("start smelt worker: %w", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); lf.Close(); close(exited) }()
		tb.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		})
		logs = append(logs, lp)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, l := range logs {
		for !strings.Contains(string(readFileQuiet(l)), " offers ") {
			if time.Now().After(deadline) {
				return "", nil, stop, fmt.Errorf("worker %s published no offers within 60 s", l)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return eng.URL, logs, stop, nil
}

// skipRow records a case that could not run, with why.
func skipRow(p *project, cas, goal, why string) {
	logf("   %s", why)
	rows = append(rows, Row{Project: p.label, Case: cas, Goal: goal, Smelt: "—", Cmp: "—", Met: "skipped", Note: why})
}

func medianInt(v []int64) int64 {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return int64(median(f))
}

// ---------------------------------------------------------------- testing.TB

// harnessTB lets the harness call internal/testsrv, written for tests:
// Fatal and Skip stop the set-up (a panic that startEngine recovers),
// Cleanup's functions run at close. The embedded interface is nil: a
// method testsrv starts calling that is not defined here fails loudly.
type harnessTB struct {
	testing.TB
	cleanups []func()
}

type tbStop struct{ msg string }

func (h *harnessTB) Helper()                 {}
func (h *harnessTB) Name() string            { return "bench" }
func (h *harnessTB) Failed() bool            { return false }
func (h *harnessTB) Logf(f string, a ...any) { logf("   "+f, a...) }
func (h *harnessTB) Log(a ...any)            { logf("   %s", fmt.Sprint(a...)) }
func (h *harnessTB) Fatal(a ...any)          { panic(tbStop{fmt.Sprint(a...)}) }
func (h *harnessTB) Fatalf(f string, a ...any) {
	panic(tbStop{fmt.Sprintf(f, a...)})
}
func (h *harnessTB) Errorf(f string, a ...any) { panic(tbStop{fmt.Sprintf(f, a...)}) }
func (h *harnessTB) Skip(a ...any)             { panic(tbStop{fmt.Sprint(a...)}) }
func (h *harnessTB) Skipf(f string, a ...any)  { panic(tbStop{fmt.Sprintf(f, a...)}) }
func (h *harnessTB) Cleanup(f func())          { h.cleanups = append(h.cleanups, f) }
func (h *harnessTB) Context() context.Context  { return context.Background() }
func (h *harnessTB) TempDir() string {
	d, err := os.MkdirTemp("", "smelt-bench-")
	must(err)
	h.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (h *harnessTB) close() {
	for i := len(h.cleanups) - 1; i >= 0; i-- {
		h.cleanups[i]()
	}
	h.cleanups = nil
}
