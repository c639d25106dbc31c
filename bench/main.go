// Command bench measures smelt against plain cargo (and cargo-chef) on real
// projects and writes bench/results.md and bench/results.json.
//
// It never asserts on timings: it measures, takes medians and says whether
// each goal is met. See bench/README.md.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	flagCases    = flag.String("cases", "all", "comma-separated cases: cold,cached,edit,dep,growth,restore,verify,remote,bytes,exec (or all)")
	flagProjects = flag.String("projects", "crate,ripgrep,workspace", "comma-separated projects: crate (the published crate), ripgrep (ripgrep 14.1.1's workspace, from its published crates), workspace (testdata/workspace)")
	flagReps     = flag.Int("reps", 3, "repetitions per timed case")
	flagColdReps = flag.Int("cold-reps", 0, "repetitions of the cold case (0: same as -reps)")
	flagWork     = flag.String("work", "/tmp/smelt-bench", "work directory (wiped for each project at start)")
	flagCrate    = flag.String("crate", "diskus@0.8.0", "published binary crate NAME@VERSION (must ship Cargo.lock)")
	flagSmelt    = flag.String("smelt", "", "smelt binary to use (default: go build ./cmd/smelt into the work dir)")
	flagGrowth   = flag.Int("growth-steps", 10, "successive one-line edits in the store-growth case")
	flagJobs     = flag.Int("j", 2, "smelt -j")
	flagOut      = flag.String("out", "", "results.md path (default: bench/results.md next to this program)")
	flagJSON     = flag.String("json", "", "results.json path (default: bench/results.json)")
)

// Measurement is one raw measurement, as recorded in results.json.
type Measurement struct {
	Project string            `json:"project"`
	Case    string            `json:"case"`
	Side    string            `json:"side"` // smelt, cargo, chef, cp, ...
	Rep     int               `json:"rep"`
	Seconds float64           `json:"seconds,omitempty"`
	Bytes   int64             `json:"bytes,omitempty"`
	First   bool              `json:"ran_first,omitempty"`
	OK      bool              `json:"ok"`
	Detail  map[string]string `json:"detail,omitempty"`
}

// Row is one line of the results table.
type Row struct {
	Project, Case, Goal string
	Smelt, Cmp          string
	SmeltV, CmpV        float64
	Ratio               float64
	Met                 string
	Note                string
}

type project struct {
	name      string // crate name or "workspace"
	label     string
	role      string // what the project stands for in the targets, for the verdict
	fixture   bool   // testdata's fixture: its ratios measure fixed cost (see verdict)
	root      string // work/<label>
	smeltDir  string
	cargoDir  string
	chefDir   string
	store     string
	editFile  string // relative .rs file edited in the edit/growth cases
	depToml   string // relative Cargo.toml that gets the added dependency
	bin       string // binary for the correctness check
	depLocks  []depVariant
	clippy    []string // the clippy step's args, on both sides (default --all-targets)
	baseToml  []byte
	baseLock  []byte
	editCount int
}

type depVariant struct {
	version    string
	toml, lock []byte
}

var (
	projects  []*project // in the order run
	meas      []Measurement
	rows      []Row
	notes     []string
	smeltBin  string
	repoRoot  string
	runID     = time.Now().Format("150405")
	logDir    string
	haveChef  bool
	dropCache bool
)

func main() {
	flag.Parse()
	start := time.Now()
	wd, _ := os.Getwd()
	repoRoot = findRepo(wd)
	if *flagOut == "" {
		*flagOut = filepath.Join(repoRoot, "bench", "results.md")
	}
	if *flagJSON == "" {
		*flagJSON = filepath.Join(repoRoot, "bench", "results.json")
	}
	if *flagColdReps == 0 {
		*flagColdReps = *flagReps
	}
	must(os.MkdirAll(*flagWork, 0o755))
	logDir = filepath.Join(*flagWork, "logs")
	must(os.MkdirAll(logDir, 0o755))
	smeltBin = *flagSmelt
	if smeltBin == "" {
		smeltBin = filepath.Join(*flagWork, "smelt")
		cmd := exec.Command("go", "build", "-o", smeltBin, "./cmd/smelt")
		cmd.Dir = repoRoot
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		must(cmd.Run())
	}
	dropCache = tryDropCaches()
	cases := map[string]bool{}
	for _, c := range strings.Split(*flagCases, ",") {
		cases[strings.TrimSpace(c)] = true
	}
	all := cases["all"]
	want := func(c string) bool { return all || cases[c] }

	for _, pname := range strings.Split(*flagProjects, ",") {
		pname = strings.TrimSpace(pname)
		var p *project
		switch pname {
		case "crate":
			p = prepareCrate(*flagCrate)
		case "ripgrep":
			p = prepareRipgrep()
		case "workspace":
			p = prepareWorkspace()
		default:
			fatalf("unknown project %q", pname)
		}
		logf("== project %s (%s)", p.label, p.root)
		projects = append(projects, p)
		prepareDepVariants(p)
		// The cold case first: it leaves both sides warm for the others.
		if want("cold") {
			caseCold(p)
		}
		if want("cached") || want("edit") || want("dep") || want("growth") || want("restore") || want("verify") {
			warm(p)
		}
		if want("cached") {
			caseCached(p)
		}
		if want("edit") {
			caseEdit(p)
		}
		if want("dep") {
			caseDep(p)
		}
		if want("growth") {
			caseGrowth(p)
		}
		if want("restore") {
			caseRestore(p)
		}
		if want("verify") {
			caseVerify(p)
		}
		// The remote cases last: side A pushes the project's store as the
		// cases above left it.
		if want("remote") {
			caseRemote(p)
		}
		if want("bytes") {
			caseBytes(p)
		}
		if want("exec") {
			caseExec(p)
		}
		os.RemoveAll(filepath.Join(p.root, "remote-b"))
		os.RemoveAll(filepath.Join(p.root, "exec-workers"))
		writeResults(time.Since(start)) // after each project, so a crash keeps something
	}
	stopServers()
	writeResults(time.Since(start))
	logf("done in %s; wrote %s and %s", time.Since(start).Round(time.Second), *flagOut, *flagJSON)
}

// ---------------------------------------------------------------- projects

const smeltTOML = `# The seed's sequential chain, as benchmarked by bench/.
[common]
profile = "release"

[step.deps]
kind = "deps"

[step.clippy]
kind = "clippy"
artifacts = "deps"
args = ["--all-targets"]

[step.test]
kind = "test"
artifacts = "clippy"

[step.crate]
kind = "package"
artifacts = "test"

[outputs]
default = "crate"
checks = ["clippy", "test", "crate"]
`

func newProject(label string) *project {
	root := filepath.Join(*flagWork, label)
	must(os.RemoveAll(root))
	must(os.MkdirAll(root, 0o755))
	return &project{label: label, root: root,
		smeltDir: filepath.Join(root, "smelt"), cargoDir: filepath.Join(root, "cargo"),
		chefDir: filepath.Join(root, "chef"), store: filepath.Join(root, "store")}
}

func prepareCrate(spec string) *project {
	name, version, ok := strings.Cut(spec, "@")
	if !ok {
		fatalf("-crate wants NAME@VERSION, got %q", spec)
	}
	p := newProject(name)
	p.role = "the published binary crate"
	p.name = name
	file := fetchCrate(name, version)
	for _, d := range []string{p.smeltDir, p.cargoDir} {
		unpackCrate(file, name, version, d)
	}
	if _, err := os.Stat(filepath.Join(p.cargoDir, "Cargo.lock")); err != nil {
		fatalf("%s ships no Cargo.lock", spec)
	}
	p.editFile = findMain(p.cargoDir)
	p.depToml = "Cargo.toml"
	p.bin = binName(p.cargoDir, name)
	finishPrepare(p)
	return p
}

// fetchCrate downloads NAME-VERSION.crate from crates.io into the work
// directory, once, and returns its path.
func fetchCrate(name, version string) string {
	file := filepath.Join(*flagWork, name+"-"+version+".crate")
	if _, err := os.Stat(file); err != nil {
		url := fmt.Sprintf("https://static.crates.io/crates/%s/%s-%s.crate", name, name, version)
		mustRun("", "curl", "-sSfL", "-o", file, url)
	}
	return file
}

// unpackCrate unpacks a .crate file's NAME-VERSION/ directory as dst.
func unpackCrate(file, name, version, dst string) {
	tmp := dst + ".unpack"
	must(os.MkdirAll(tmp, 0o755))
	mustRun("", "tar", "xzf", file, "-C", tmp)
	must(os.Rename(filepath.Join(tmp, name+"-"+version), dst))
	must(os.RemoveAll(tmp))
}

// ripgrepMembers are ripgrep 14.1.1's workspace members (directory under
// crates/, package, the version its published Cargo.lock pins).
var ripgrepMembers = [][3]string{
	{"globset", "globset", "0.4.15"},
	{"grep", "grep", "0.3.2"},
	{"cli", "grep-cli", "0.1.11"},
	{"matcher", "grep-matcher", "0.1.7"},
	{"pcre2", "grep-pcre2", "0.1.8"},
	{"printer", "grep-printer", "0.2.2"},
	{"regex", "grep-regex", "0.1.13"},
	{"searcher", "grep-searcher", "0.1.14"},
	{"ignore", "ignore", "0.4.23"},
}

// prepareRipgrep assembles ripgrep 14.1.1's workspace (ten packages) from
// its published crates: each package's original Cargo.toml (the
// Cargo.toml.orig that cargo publish keeps) in its place under crates/,
// so the members depend on each other by path as in the repository. The
// lock is ripgrep's published one, updated by cargo for the members'
// dev-dependencies (three crates added), kept in bench/ so every run
// builds the same versions. The edit is in grep-searcher, which grep-printer
// and grep use, and ripgrep through grep.
func prepareRipgrep() *project {
	p := newProject("ripgrep")
	p.role = "the published workspace"
	p.name = "ripgrep"
	crates := append([][3]string{{"", "ripgrep", "14.1.1"}}, ripgrepMembers...)
	for _, d := range []string{p.smeltDir, p.cargoDir} {
		for _, c := range crates {
			dst := d
			if c[0] != "" {
				dst = filepath.Join(d, "crates", c[0])
			}
			unpackCrate(fetchCrate(c[1], c[2]), c[1], c[2], dst)
			must(os.Rename(filepath.Join(dst, "Cargo.toml.orig"), filepath.Join(dst, "Cargo.toml")))
		}
		must(os.WriteFile(filepath.Join(d, "Cargo.lock"), readFile(filepath.Join(repoRoot, "bench", "ripgrep-14.1.1-workspace.lock")), 0o644))
	}
	p.editFile = "crates/searcher/src/lib.rs"
	p.depToml = "Cargo.toml"
	p.bin = "rg"
	// Every target but benches: globset's need nightly (#![feature(test)]).
	// clippy 1.95 denies unused_io_amount in grep-printer 0.2.2: lints are
	// warnings here, as a team would set them until fixed.
	p.clippy = []string{"--lib", "--bins", "--tests", "--examples", "--", "--cap-lints", "warn"}
	finishPrepare(p)
	return p
}

// cutArgs splits args at the first sep (tool is nil without one).
func cutArgs(args []string, sep string) (own, tool []string) {
	for i, a := range args {
		if a == sep {
			return args[:i], append([]string{}, args[i+1:]...)
		}
	}
	return args, nil
}

func prepareWorkspace() *project {
	p := newProject("workspace")
	p.role, p.fixture = "the repository's fixture, testdata/workspace: two members, two dependencies", true
	p.name = "workspace"
	for _, d := range []string{p.smeltDir, p.cargoDir} {
		mustRun("", "cp", "-a", filepath.Join(repoRoot, "testdata", "workspace"), d)
		os.RemoveAll(filepath.Join(d, "target"))
		os.Remove(filepath.Join(d, "smelt.toml"))
		os.Remove(filepath.Join(d, "result"))
	}
	p.editFile = "app/src/main.rs"
	p.depToml = "app/Cargo.toml"
	p.bin = "app"
	finishPrepare(p)
	return p
}

func finishPrepare(p *project) {
	// The edit line: one line whose value changes at every edit (a unique
	// value, so that neither cargo nor smelt's store has seen it before).
	for _, d := range []string{p.smeltDir, p.cargoDir} {
		f := filepath.Join(d, p.editFile)
		data, err := os.ReadFile(f)
		must(err)
		data = append(data, []byte("\n"+editLine("base")+"\n")...)
		must(os.WriteFile(f, data, 0o644))
	}
	toml := smeltTOML
	if p.clippy != nil {
		q, _ := json.Marshal(p.clippy)
		toml = strings.Replace(toml, `args = ["--all-targets"]`, "args = "+string(q), 1)
	}
	must(os.WriteFile(filepath.Join(p.smeltDir, "smelt.toml"), []byte(toml), 0o644))
	// One initial fetch (network) so that every later cargo command runs
	// --offline; smelt vendors from the same registry cache.
	mustRun(p.cargoDir, "cargo", "fetch", "--locked")
	p.baseToml = readFile(filepath.Join(p.cargoDir, p.depToml))
	p.baseLock = readFile(filepath.Join(p.cargoDir, "Cargo.lock"))
}

func editLine(v string) string {
	// #[used] keeps the string in the binary: every edit changes the
	// program, as a real one-line edit does, not only cargo's metadata.
	return fmt.Sprintf("#[used] static SMELT_BENCH_EDIT: &str = %q;", v)
}

var editRE = regexp.MustCompile(`(?m)^#\[used\] static SMELT_BENCH_EDIT: &str = ".*";$`)

// edit changes the edit line in both copies to a value never used before.
func edit(p *project) string {
	p.editCount++
	v := fmt.Sprintf("%s-%d", runID, p.editCount)
	for _, d := range []string{p.smeltDir, p.cargoDir} {
		f := filepath.Join(d, p.editFile)
		data := readFile(f)
		if !editRE.Match(data) {
			fatalf("edit line missing in %s", f)
		}
		data = editRE.ReplaceAll(data, []byte(editLine(v)))
		must(os.WriteFile(f, data, 0o644))
	}
	return v
}

// prepareDepVariants resolves, once and online, the lock file for each
// added-dependency variant (fnv at a different version per repetition, so
// that each repetition is new to smelt's store too).
func prepareDepVariants(p *project) {
	versions := []string{"1.0.7", "1.0.6", "1.0.5", "1.0.4", "1.0.3", "1.0.2", "1.0.1", "1.0.0"}
	n := *flagReps
	if n > len(versions) {
		n = len(versions)
	}
	tmp := filepath.Join(p.root, "depprep")
	for _, v := range versions[:n] {
		must(os.RemoveAll(tmp))
		mustRun("", "cp", "-a", p.cargoDir, tmp)
		toml := append(append([]byte{}, p.baseToml...), []byte(fmt.Sprintf("\n[dependencies.fnv]\nversion = \"=%s\"\n", v))...)
		must(os.WriteFile(filepath.Join(tmp, p.depToml), toml, 0o644))
		mustRun(tmp, "cargo", "fetch") // minimal lock update + download, online, once
		p.depLocks = append(p.depLocks, depVariant{version: v, toml: toml, lock: readFile(filepath.Join(tmp, "Cargo.lock"))})
	}
	must(os.RemoveAll(tmp))
}

func setDeps(p *project, toml, lock []byte) {
	for _, d := range []string{p.smeltDir, p.cargoDir} {
		must(os.WriteFile(filepath.Join(d, p.depToml), toml, 0o644))
		must(os.WriteFile(filepath.Join(d, "Cargo.lock"), lock, 0o644))
	}
}

// ---------------------------------------------------------------- commands

func smeltArgs(p *project, args ...string) []string {
	return append(args, "-C", p.smeltDir, "--store", p.store, "-j", strconv.Itoa(*flagJobs))
}

// cargoChain is the cargo side: smelt's steps build the whole workspace
// (`--workspace` unless the step selects packages), so cargo does too.
func cargoChain(p *project) [][]string {
	args := p.clippy
	if args == nil {
		args = []string{"--all-targets"}
	}
	own, tool := cutArgs(args, "--")
	clippy := append(append([]string{"clippy", "--release"}, own...), "--workspace", "--offline")
	if tool != nil {
		clippy = append(append(clippy, "--"), tool...)
	}
	return [][]string{
		clippy,
		{"test", "--release", "--workspace", "--offline"},
		{"build", "--release", "--workspace", "--offline"},
	}
}

type result struct {
	secs   float64
	ok     bool
	out    string
	detail map[string]string
}

// timeCmd runs a command, logs its output and returns the wall time.
func timeCmd(tag, dir string, name string, args ...string) result {
	return timeCmdEnv(tag, dir, nil, name, args...)
}

// timeCmdEnv is timeCmd with an environment (nil: the harness's).
func timeCmdEnv(tag, dir string, env []string, name string, args ...string) result {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	t := time.Now()
	err := cmd.Run()
	secs := time.Since(t).Seconds()
	lf := filepath.Join(logDir, fmt.Sprintf("%s-%s.log", time.Now().Format("150405.000"), tag))
	os.WriteFile(lf, []byte(fmt.Sprintf("$ (cd %s && %s %s)\n# %.3fs err=%v\n%s", dir, name, strings.Join(args, " "), secs, err, buf.String())), 0o644)
	if err != nil {
		logf("   !! %s failed (%v); log %s", tag, err, lf)
	}
	return result{secs: secs, ok: err == nil, out: buf.String(), detail: map[string]string{"log": lf}}
}

func runSmelt(p *project, tag string, args ...string) result {
	start := time.Now()
	r := timeCmd("smelt-"+tag, "", smeltBin, smeltArgs(p, args...)...)
	r.detail["ran"] = ranSteps(r.out)
	// Where each step that ran spent its time (the last line of its log).
	logs, _ := filepath.Glob(filepath.Join(p.store, "logs", "*", "*.log"))
	for _, l := range logs {
		if fi, err := os.Stat(l); err != nil || fi.ModTime().Before(start) {
			continue
		}
		for _, line := range strings.Split(string(readFileQuiet(l)), "\n") {
			if t, ok := strings.CutPrefix(line, "# smelt: time: "); ok {
				r.detail["time:"+strings.TrimSuffix(filepath.Base(l), ".log")] = t
			}
		}
	}
	return r
}

// runCargoChain runs the three cargo commands; the time is their sum.
func runCargoChain(p *project, tag string) result {
	total := result{ok: true, detail: map[string]string{}}
	for _, a := range cargoChain(p) {
		r := timeCmd("cargo-"+tag+"-"+a[0], p.cargoDir, "cargo", a...)
		total.secs += r.secs
		total.ok = total.ok && r.ok
		total.detail[a[0]] = fmt.Sprintf("%.3f", r.secs)
	}
	return total
}

// ranSteps extracts, from smelt's text output, the lines that are not
// cache hits (best effort: for the record only).
func ranSteps(out string) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && len(lines) < 12 {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, " | ")
}

// pair runs smelt and the comparison side by side, alternating which goes first.
func pair(p *project, cas string, rep int, fs func() result, fc func() result, cmpSide string) (result, result) {
	var rs, rc result
	smeltFirst := rep%2 == 1
	if smeltFirst {
		rs, rc = fs(), fc()
	} else {
		rc, rs = fc(), fs()
	}
	record(p, cas, "smelt", rep, rs, smeltFirst)
	record(p, cas, cmpSide, rep, rc, !smeltFirst)
	logf("   %s rep %d: smelt %.2fs  %s %.2fs", cas, rep, rs.secs, cmpSide, rc.secs)
	return rs, rc
}

func record(p *project, cas, side string, rep int, r result, first bool) {
	meas = append(meas, Measurement{Project: p.label, Case: cas, Side: side, Rep: rep, Seconds: round3(r.secs), First: first, OK: r.ok, Detail: r.detail})
}

// warm brings both sides to a warm state of the current source (untimed).
func warm(p *project) {
	logf("-- warm-up (untimed)")
	runSmelt(p, "warm", "check")
	runCargoChain(p, "warm")
	timeCmd("cargo-warm-check", p.cargoDir, "cargo", "check", "--release", "--offline")
}

// ---------------------------------------------------------------- cases

func caseCold(p *project) {
	logf("-- cold (%d reps)", *flagColdReps)
	var s, c []float64
	okAll := true
	// The previous state is moved aside, not deleted, until the case
	// ends: ext4 makes an inode allocation scan the inodes freed within
	// the last minute (recently_deleted in perf: 44% of all CPU samples
	// while smelt unpacked 8,000 files just after `rm -rf` of the old
	// store), which would charge each side for the other's deletions.
	trash := filepath.Join(p.root, "cold-trash")
	aside := func(dir string) {
		if _, err := os.Stat(dir); err == nil {
			must(os.MkdirAll(trash, 0o755))
			must(os.Rename(dir, filepath.Join(trash, fmt.Sprintf("%d", time.Now().UnixNano()))))
		}
	}
	for rep := 1; rep <= *flagColdReps; rep++ {
		rs, rc := pair(p, "cold", rep,
			func() result { aside(p.store); return runSmelt(p, "cold", "check") },
			func() result {
				aside(filepath.Join(p.cargoDir, "target"))
				return runCargoChain(p, "cold")
			},
			"cargo")
		s, c = append(s, rs.secs), append(c, rc.secs)
		okAll = okAll && rs.ok && rc.ok
	}
	if okAll {
		coldSmelt[p.label] = s
	}
	must(os.RemoveAll(trash))
	addRow(p, "3. cold (empty store / empty target/)", "≤ 1.05×", s, c, 1.05, 0, okAll,
		"the previous store / target/ moved aside before each run, deleted after the last")
}

func caseCached(p *project) {
	logf("-- cached (%d reps)", *flagReps)
	var s, c []float64
	okAll := true
	for rep := 1; rep <= *flagReps; rep++ {
		rs, rc := pair(p, "cached", rep,
			func() result { return runSmelt(p, "cached", "check") },
			func() result {
				return timeCmd("cargo-noop-check", p.cargoDir, "cargo", "check", "--release", "--offline")
			}, "cargo")
		s, c = append(s, rs.secs), append(c, rc.secs)
		okAll = okAll && rs.ok && rc.ok
	}
	addRow(p, "1. cached (smelt check vs no-op cargo check --release)", "≤ cargo and < 0.3 s", s, c, 1.0, 0.3, okAll, "")
}

func caseEdit(p *project) {
	logf("-- edit (%d reps)", *flagReps)
	var s, c []float64
	okAll := true
	for rep := 1; rep <= *flagReps; rep++ {
		v := edit(p)
		rs, rc := pair(p, "edit", rep,
			func() result { return runSmelt(p, "edit", "check") },
			func() result { return runCargoChain(p, "edit") }, "cargo")
		rs.detail["edit"] = v
		s, c = append(s, rs.secs), append(c, rc.secs)
		okAll = okAll && rs.ok && rc.ok
	}
	addRow(p, "2. edit one line of "+p.editFile, "≤ 1.10×", s, c, 1.10, 0, okAll, "")
}

func caseDep(p *project) {
	logf("-- dependency added (%d reps)", *flagReps)
	haveChef = haveChef || ensureChef()
	chefOK := haveChef
	if chefOK {
		// cargo-chef's own copy, cooked once from the base recipe (untimed).
		must(os.RemoveAll(p.chefDir))
		must(os.MkdirAll(p.chefDir, 0o755))
		r := chefPrepare(p)
		chefOK = r.ok && chefCook(p, "warm").ok
	}
	var s, c, ch []float64
	okAll := true
	for rep := 1; rep <= *flagReps && rep <= len(p.depLocks); rep++ {
		dv := p.depLocks[rep-1]
		setDeps(p, dv.toml, dv.lock)
		if chefOK {
			chefPrepare(p)
		}
		rs, rc := pair(p, "dep", rep,
			func() result { return runSmelt(p, "dep", "check") },
			func() result { return runCargoChain(p, "dep") }, "cargo")
		rs.detail["fnv"] = dv.version
		s, c = append(s, rs.secs), append(c, rc.secs)
		okAll = okAll && rs.ok && rc.ok
		if chefOK {
			r := chefCook(p, "dep")
			record(p, "dep", "chef-cook", rep, r, false)
			logf("   dep rep %d: cargo chef cook --release %.2fs", rep, r.secs)
			ch = append(ch, r.secs)
		}
		// Back to the base dependencies, untimed, so that the next
		// repetition adds a dependency again from a warm target/.
		setDeps(p, p.baseToml, p.baseLock)
		runSmelt(p, "dep-revert", "check")
		runCargoChain(p, "dep-revert")
		if chefOK {
			chefPrepare(p)
			chefCook(p, "revert")
		}
	}
	note := ""
	if chefOK {
		note = fmt.Sprintf("cargo chef cook --release (deps only, its own warm target/): median %.2fs (%s)", median(ch), fmtList(ch))
		rows = append(rows, Row{Project: p.label, Case: "4b. dependency added: cargo chef cook --release (extra)", Goal: "—",
			Smelt: fmtSecs(median(s)), Cmp: fmtSecs(median(ch)), SmeltV: median(s), CmpV: median(ch), Ratio: median(s) / median(ch), Met: "(info)",
			Note: "comparison = cargo chef cook only (dependencies, not the crate)"})
	} else {
		note = "cargo-chef unavailable: no chef column"
	}
	addRow(p, "4. dependency added (fnv, a new version each rep)", "≤ 1.10×", s, c, 1.10, 0, okAll, note)
}

func chefPrepare(p *project) result {
	recipe := filepath.Join(p.chefDir, "recipe.json")
	return timeCmd("chef-prepare", p.cargoDir, "cargo", "chef", "prepare", "--recipe-path", recipe)
}

func chefCook(p *project, tag string) result {
	return timeCmd("chef-cook-"+tag, p.chefDir, "cargo", "chef", "cook", "--release", "--offline", "--recipe-path", "recipe.json")
}

// caseGrowth: successive one-line edits with smelt check; the store's growth
// vs a crane-style full snapshot of each step's target/ vs the bytes that
// actually changed in each step's target/.
func caseGrowth(p *project) {
	n := *flagGrowth
	logf("-- store growth (%d edits)", n)
	steps := []string{"clippy", "test", "crate"}
	// One untimed edit first: the steps' working directories hold whatever
	// state they last ran (after the dependency case, a cached revert leaves
	// them at the added-dependency state), so the baseline is taken after a
	// real edit run of the current dependencies.
	edit(p)
	runSmelt(p, "growth-baseline", "check")
	prev := map[string]map[string]fileState{}
	for _, st := range steps {
		prev[st] = scanTree(stepTarget(p, st), nil)
	}
	var totGrowth, totGrowthNoWork, totCrane, totChanged int64
	var secs []float64
	okAll := true
	for i := 1; i <= n; i++ {
		before, beforeWork := du(p.store), du(filepath.Join(p.store, "work"))
		v := edit(p)
		r := runSmelt(p, "growth", "check")
		okAll = okAll && r.ok
		after, afterWork := du(p.store), du(filepath.Join(p.store, "work"))
		var crane, changed int64
		for _, st := range steps {
			cur := scanTree(stepTarget(p, st), prev[st])
			size, ch := diffTrees(prev[st], cur)
			crane += size
			changed += ch
			prev[st] = cur
		}
		g := after - before
		gnw := (after - afterWork) - (before - beforeWork)
		totGrowth += g
		totGrowthNoWork += gnw
		totCrane += crane
		totChanged += changed
		secs = append(secs, r.secs)
		meas = append(meas, Measurement{Project: p.label, Case: "growth", Side: "smelt", Rep: i, Seconds: round3(r.secs), Bytes: g, OK: r.ok,
			Detail: map[string]string{"edit": v, "store_growth": itoa(g), "store_growth_excluding_work": itoa(gnw),
				"crane_full_snapshots": itoa(crane), "changed_bytes": itoa(changed), "store_total": itoa(after), "work_total": itoa(afterWork)}})
		logf("   edit %d: %.2fs store +%s (excl. work/ +%s), crane-style %s, changed %s", i, r.secs, human(g), human(gnw), human(crane), human(changed))
	}
	ratio := float64(totGrowth) / float64(max64(totChanged, 1))
	met := "no"
	if ratio <= 1.2 && okAll {
		met = "yes"
	}
	rows = append(rows, Row{Project: p.label, Case: fmt.Sprintf("5. store growth over %d edits (du -sb store)", n), Goal: "≤ 1.2× changed bytes",
		Smelt: human(totGrowth), Cmp: human(totChanged) + " changed", Ratio: ratio, Met: met,
		Note: fmt.Sprintf("crane-style full snapshots: %s (smelt/crane %.3f); store growth excluding work/: %s (%.2f× changed); median smelt check %.2fs",
			human(totCrane), float64(totGrowth)/float64(max64(totCrane, 1)), human(totGrowthNoWork), float64(totGrowthNoWork)/float64(max64(totChanged, 1)), median(secs))})
}

// stepTarget is the target/ a step's working directory keeps in the store.
func stepTarget(p *project, step string) string {
	m, _ := filepath.Glob(filepath.Join(p.store, "work", "*", step, "src", "target"))
	if len(m) == 0 {
		return filepath.Join(p.store, "work", "missing", step)
	}
	return m[0]
}

func caseRestore(p *project) {
	logf("-- restore (%d reps)", *flagReps)
	best, bestSize := "", int64(-1)
	for _, st := range []string{"deps", "clippy", "test", "crate"} {
		if sz := du(stepTarget(p, st)); sz > bestSize {
			best, bestSize = st, sz
		}
	}
	// A reference copy of that target/, restored by smelt (untimed), is
	// what cp -a copies.
	ref := filepath.Join(p.root, "restore-ref")
	must(os.RemoveAll(ref))
	rr := runSmelt(p, "restore-ref", "restore", best, ref)
	size := du(ref)
	var s, c []float64
	okAll := rr.ok
	re := regexp.MustCompile(`restored .* in ([0-9.]+)s`)
	for rep := 1; rep <= *flagReps; rep++ {
		dst := filepath.Join(p.root, "restore-out")
		rs, rc := pair(p, "restore", rep,
			func() result {
				must(os.RemoveAll(dst))
				dropCaches()
				r := runSmelt(p, "restore", "restore", "--link", best, dst)
				if m := re.FindStringSubmatch(r.out); m != nil {
					r.detail["wall"] = fmt.Sprintf("%.3f", r.secs)
					r.secs, _ = strconv.ParseFloat(m[1], 64)
				} else {
					r.ok = false
				}
				return r
			},
			func() result {
				must(os.RemoveAll(dst))
				dropCaches()
				return timeCmd("cp-a", "", "cp", "-a", ref, dst)
			}, "cp -a")
		s, c = append(s, rs.secs), append(c, rc.secs)
		okAll = okAll && rs.ok && rc.ok
	}
	os.RemoveAll(filepath.Join(p.root, "restore-out"))
	cache := "caches dropped before each copy (sync; echo 3 > /proc/sys/vm/drop_caches)"
	if !dropCache {
		cache = "warm page cache (could not drop caches)"
	}
	sizeNote := fmt.Sprintf("step %s, target/ %s", best, human(size))
	if size < 1<<30 {
		sizeNote += " (under 1 GB)"
	}
	addRow(p, "6. restore biggest step's target/ (smelt restore vs cp -a)", "≤ 0.5×", s, c, 0.5, 0, okAll, sizeNote+"; "+cache+"; smelt time = its \"restored … in Xs\"")
}

func caseVerify(p *project) {
	logf("-- correctness")
	link := filepath.Join(p.smeltDir, "result")
	b := runSmelt(p, "build", "build")
	timeCmd("cargo-verify-build", p.cargoDir, "cargo", "build", "--release", "--offline")
	sb := filepath.Join(link, "bin", p.bin)
	cb := filepath.Join(p.cargoDir, "target", "release", p.bin)
	verdict := "same"
	var details []string
	same := b.ok
	if !b.ok {
		verdict = "smelt build failed"
	}
	for _, args := range [][]string{{"--version"}, {"--help"}} {
		so, se := exec.Command(sb, args...).CombinedOutput()
		co, ce := exec.Command(cb, args...).CombinedOutput()
		eq := bytes.Equal(so, co) && (se == nil) == (ce == nil)
		same = same && eq
		details = append(details, fmt.Sprintf("`%s %s`: %s (%d bytes)", p.bin, strings.Join(args, " "), map[bool]string{true: "equal", false: "DIFFERENT"}[eq], len(co)))
	}
	if !same && b.ok {
		verdict = "DIFFERENT"
	}
	logf("   verdict: %s; %s", verdict, strings.Join(details, "; "))
	meas = append(meas, Measurement{Project: p.label, Case: "verify", Side: "both", OK: same, Detail: map[string]string{"verdict": verdict, "smelt_bin": sb, "cargo_bin": cb, "checks": strings.Join(details, "; ")}})
	met := "no"
	if same {
		met = "yes"
	}
	rows = append(rows, Row{Project: p.label, Case: "7. correctness: result/bin vs target/release", Goal: "same behaviour", Smelt: "—", Cmp: "—", Met: met, Note: verdict + ": " + strings.Join(details, "; ")})
}

func addRow(p *project, cas, goal string, s, c []float64, maxRatio, maxAbs float64, ok bool, note string) {
	ms, mc := median(s), median(c)
	ratio := ms / mc
	met := ratio <= maxRatio
	if maxAbs > 0 {
		met = met && ms < maxAbs
	}
	m := map[bool]string{true: "yes", false: "no"}[met && ok]
	if !ok {
		m = "no (a command failed; see results.json)"
	}
	if note != "" {
		note += "; "
	}
	note += fmt.Sprintf("smelt %s / cmp %s", fmtList(s), fmtList(c))
	rows = append(rows, Row{Project: p.label, Case: cas, Goal: goal, Smelt: fmtSecs(ms), Cmp: fmtSecs(mc), SmeltV: ms, CmpV: mc, Ratio: ratio, Met: m, Note: note})
}

// ---------------------------------------------------------------- files

type fileState struct {
	size  int64
	mtime int64
	ino   uint64
	hash  [32]byte
}

// scanTree lists regular files with size and content hash; a file whose
// size and mtime match prev keeps prev's hash (cargo rewrites what it
// rebuilds), so only new or touched files are read.
func scanTree(root string, prev map[string]fileState) map[string]fileState {
	out := map[string]fileState{}
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		fsx := fileState{size: info.Size(), mtime: info.ModTime().UnixNano()}
		if old, ok := prev[rel]; ok && old.size == fsx.size && old.mtime == fsx.mtime {
			fsx.hash = old.hash
		} else {
			fsx.hash = hashFile(path)
		}
		out[rel] = fsx
		return nil
	})
	return out
}

func hashFile(path string) [32]byte {
	var h [32]byte
	f, err := os.Open(path)
	if err != nil {
		return h
	}
	defer f.Close()
	s := sha256.New()
	io.Copy(s, f)
	copy(h[:], s.Sum(nil))
	return h
}

// diffTrees returns the total size of cur and the bytes of files in cur
// that are new or whose content differs from prev.
func diffTrees(prev, cur map[string]fileState) (total, changed int64) {
	for k, v := range cur {
		total += v.size
		if old, ok := prev[k]; !ok || old.hash != v.hash {
			changed += v.size
		}
	}
	return
}

func du(path string) int64 {
	out, err := exec.Command("du", "-sb", path).Output()
	if err != nil {
		return 0
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n
}

func tryDropCaches() bool {
	exec.Command("sync").Run()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200) == nil
}

func dropCaches() {
	if dropCache {
		tryDropCaches()
	}
}

func ensureChef() bool {
	if exec.Command("cargo", "chef", "--version").Run() == nil {
		return true
	}
	logf("cargo-chef missing: cargo install --locked cargo-chef")
	cmd := exec.Command("cargo", "install", "--locked", "cargo-chef")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		notes = append(notes, "cargo-chef could not be installed: "+err.Error())
		return false
	}
	return true
}

func findMain(dir string) string {
	for _, c := range []string{"src/main.rs", "src/bin/main.rs"} {
		if _, err := os.Stat(filepath.Join(dir, c)); err == nil {
			return c
		}
	}
	fatalf("no src/main.rs in %s", dir)
	return ""
}

var binRE = regexp.MustCompile(`(?s)\[\[bin\]\]\s*name\s*=\s*"([^"]+)"`)

func binName(dir, def string) string {
	if m := binRE.FindSubmatch(readFile(filepath.Join(dir, "Cargo.toml"))); m != nil {
		return string(m[1])
	}
	return def
}

// ---------------------------------------------------------------- output

func writeResults(elapsed time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "# smelt benchmark results\n\n")
	fmt.Fprintf(&b, "Produced by:\n\n```sh\n%s\n```\n\n", commandLine())
	fmt.Fprintf(&b, "Run took %s. Medians of %d repetition(s) (cold: %d); smelt and its comparison run interleaved in the same run, alternating which goes first. Raw measurements: `bench/results.json`. Timings are measurements, not assertions.\n\n",
		elapsed.Round(time.Second), *flagReps, *flagColdReps)
	fmt.Fprintf(&b, "## Machine\n\n")
	for _, kv := range machine() {
		fmt.Fprintf(&b, "- %s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(&b, "\n## Results\n\n")
	fmt.Fprintf(&b, "| project | case | smelt (median) | comparison (median) | smelt/comparison | goal | met |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		ratio := "—"
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.3f", r.Ratio)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Project, r.Case, r.Smelt, r.Cmp, ratio, r.Goal, r.Met)
	}
	fmt.Fprintf(&b, "\n## Verdict\n\n")
	for _, l := range verdict() {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	fmt.Fprintf(&b, "\n## Notes per row\n\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "- **%s / %s**: %s\n", r.Project, r.Case, r.Note)
	}
	fmt.Fprintf(&b, "\n## Method\n\n%s\n", method)
	for _, n := range notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	must(os.WriteFile(*flagOut, []byte(b.String()), 0o644))
	js, _ := json.MarshalIndent(map[string]any{"command": commandLine(), "machine": machine(), "reps": *flagReps, "cold_reps": *flagColdReps,
		"elapsed_seconds": elapsed.Seconds(), "measurements": meas}, "", "  ")
	must(os.WriteFile(*flagJSON, js, 0o644))
}

// verdict says, per project, whether every goal is met and which are not.
// The targets are about real projects: a published binary crate
// and a published workspace. The fixture's whole pipeline takes a second or
// two, so its ratios weigh smelt's fixed cost per step (its restores,
// snapshots and extra cargo starts, a few hundredths of a second each)
// against almost no build work; its misses are reported, not hidden.
func verdict() []string {
	var out []string
	for _, p := range projects {
		var miss []string
		for _, r := range rows {
			if r.Project == p.label && r.Met == "no" {
				m := r.Case
				if r.Ratio > 0 {
					m += fmt.Sprintf(" (%.3f)", r.Ratio)
				}
				miss = append(miss, m)
			}
		}
		var skipped []string
		for _, r := range rows {
			if r.Project == p.label && r.Met == "skipped" {
				skipped = append(skipped, r.Case)
			}
		}
		v := "every goal met"
		if len(miss) > 0 {
			v = "missed: " + strings.Join(miss, "; ")
		}
		if len(skipped) > 0 {
			v += "; not measured: " + strings.Join(skipped, "; ")
		}
		if p.fixture {
			v += ". Its cold pipeline takes a second or two, so its ratios measure smelt's fixed cost per step rather than build work; the targets are judged on the published crate and workspace"
		}
		out = append(out, fmt.Sprintf("**%s** (%s): %s.", p.label, p.role, v))
	}
	return out
}

const method = `- smelt runs ` + "`smelt check -C DIR --store STORE -j 2`" + ` with the sequential chain deps → clippy (` + "`--all-targets`" + `) → test → package, profile release (see ` + "`smeltTOML`" + ` in bench/main.go). The cargo side runs ` + "`cargo clippy --release --all-targets --workspace`, `cargo test --release --workspace`, `cargo build --release --workspace`" + ` (all ` + "`--offline`" + `; smelt's steps take the whole workspace too) on its own copy; its time is the sum of the three. On ripgrep clippy takes ` + "`--lib --bins --tests --examples -- --cap-lints warn`" + ` on both sides instead of ` + "`--all-targets`" + `: globset's benches need nightly, and clippy 1.95 denies a lint in grep-printer 0.2.2.
- Both copies share the same cargo registry (one ` + "`cargo fetch --locked`" + ` online at preparation, then offline); smelt vendors from that cache.
- Cold: before each run the side's previous store / target/ is renamed aside, and all of them are deleted after the case's last run, so that neither side's file creations pay for the other's deletions (ext4 scans the inodes freed in the last minute when it allocates one).
- Edits append one line ` + "`#[used] static SMELT_BENCH_EDIT: &str = \"…\";`" + ` (kept in the binary) to the edited file at preparation and change its value at each edit to a value never used before (so that every repetition is a real change for cargo and for smelt's store).
- Dependency added: ` + "`[dependencies.fnv] version = \"=1.0.N\"`" + ` with a different N per repetition (locks resolved once, online, at preparation); after each repetition both sides go back to the base dependencies untimed. cargo-chef: ` + "`cargo chef prepare`" + ` (untimed) then ` + "`cargo chef cook --release --offline`" + ` timed, in its own directory whose target/ is warm from the previous cook.
- Store growth: ` + "`du -sb`" + ` of the store before/after each ` + "`smelt check`" + ` (hard links counted once). Crane-style = sum over the clippy, test and package steps of the full size of that step's target/ (its working directory in the store) after the run. Changed = sum over those steps of the sizes of files new or different in content from that step's target/ after the previous run.
- Remote cache (8, 9): side A is the project's own store running ` + "`smelt check --push --remote R --signing-key K`" + ` (K from ` + "`smelt key generate`" + `), which builds what it lacks and pushes every result, untimed. R is a shared directory (` + "`file:///`" + `) and, when versitygw is installed, an S3 bucket on versitygw (posix backend) started on loopback by the harness, with the AWS_* variables pointing smelt at it. Side B copies the project to another path and, in a fresh store at another path, runs ` + "`smelt check --remote R --trust NAME:KEY`" + ` (every step must be pulled, none built) then ` + "`smelt build`" + ` (result/bin must exist); its time is the sum, compared with a cold ` + "`smelt check`" + ` (the cold case's times when it ran in the same run, else one in a fresh store measured alongside). Bytes are the ` + "`downloaded`" + ` field of the ` + "`remote`" + ` event of each command's ` + "`--json`" + ` output (bytes on the wire). Crane's chain: each step's target/ written by ` + "`smelt restore --link STEP DIR`" + ` from side A's store; the files new or different in content from its parent's (deps from nothing) put in one ` + "`tar --zstd`" + ` per step (crane's installCargoArtifactsMode use-zstd keeps only what changed against the inherited artifacts); the sum of the tars. Not counted on crane's side: the package's output (result/), which crane stores as a derivation output besides.
- Remote execution (10): each repetition starts a new PostgreSQL + BuildGrid 0.9.1 (internal/testsrv's recipe: its action cache is in memory, so nothing is a cache hit) and two ` + "`smelt worker`" + `s with new directories, untimed; then ` + "`smelt check --executor grpc://…`" + ` in a fresh store is timed. Every step that ran must have run on a worker (the workers' ` + "`done action=`" + ` log lines). Compared with a cold local ` + "`smelt check`" + ` in a fresh store run alongside in each repetition, alternating which goes first.
- Restore: ` + "`smelt restore --link STEP DIR`" + ` (the path a step's own restore takes: compiled crates hard-linked from the store, the rest copied; time from its \"restored … in Xs\" line; wall time incl. the cached check in results.json) vs ` + "`cp -a`" + ` of a copy of the same target/, each into a fresh directory.
`

func machine() [][2]string {
	out := func(name string, args ...string) string {
		o, err := exec.Command(name, args...).Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(o))
	}
	mem := "?"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0])
	}
	load := strings.TrimSpace(string(readFileQuiet("/proc/loadavg")))
	return [][2]string{{"nproc", out("nproc")}, {"memory", mem}, {"uname -r", out("uname", "-r")}, {"cargo -V", out("cargo", "-V")},
		{"go version", out("go", "version")}, {"date", time.Now().Format(time.RFC3339)}, {"load average at write", load},
		{"crate", *flagCrate}, {"GOMAXPROCS", strconv.Itoa(runtime.GOMAXPROCS(0))}}
}

func commandLine() string {
	args := []string{"go run ./bench"}
	flag.Visit(func(f *flag.Flag) { args = append(args, fmt.Sprintf("-%s=%s", f.Name, f.Value.String())) })
	return "cd " + repoRoot + " && " + strings.Join(args, " ")
}

// ---------------------------------------------------------------- helpers

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64{}, v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtSecs(v float64) string { return fmt.Sprintf("%.2f s", v) }

func fmtList(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.2f", x))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func human(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	f := float64(n)
	u := "B"
	for _, x := range []string{"KiB", "MiB", "GiB"} {
		if f < 1024 {
			break
		}
		f /= 1024
		u = x
	}
	s := fmt.Sprintf("%.1f %s", f, u)
	if u == "B" {
		s = fmt.Sprintf("%d B", n)
	}
	if neg {
		s = "-" + s
	}
	return s
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
func itoa(n int64) string      { return strconv.FormatInt(n, 10) }
func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func findRepo(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.Contains(data, []byte("module smelt")) {
			return d
		}
		if filepath.Dir(d) == d {
			fatalf("run from inside the smelt module")
		}
	}
}

func mustRun(dir, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
}

func readFile(p string) []byte {
	data, err := os.ReadFile(p)
	must(err)
	return data
}

func readFileQuiet(p string) []byte { data, _ := os.ReadFile(p); return data }

func must(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

func fatalf(f string, a ...any) {
	stopServers()
	fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...)
	os.Exit(1)
}

func logf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "[%s] "+f+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}
