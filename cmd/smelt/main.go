// Command smelt builds a Cargo project as a graph of cached steps.
// It is a thin layer over smelt's packages: flags in, a report out.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"smelt/internal/config"
	"smelt/internal/depsrc"
	"smelt/internal/kind"
	"smelt/internal/plan"
	"smelt/internal/run"
	"smelt/internal/store"
	"smelt/internal/ui"
)

const usage = `smelt builds a Cargo project as a graph of cached steps.

Usage:
  smelt check [STEP...]      run every check of smelt.toml (or the named steps)
  smelt build [NAME]         build the default output, a step, or a workspace member's
                             binaries (cargo build -p MEMBER, a step of its own), and link
                             ./result to it (result/bin/NAME runs)
  smelt fetch                fetch and verify the dependency sources (Cargo.lock)
  smelt why [STEP...]        say, without running anything, which steps would run and why
  smelt log STEP             print the log of a step's last run
  smelt restore STEP DIR     write the target/ a step left behind into DIR (building it if needed;
                             --link: compiled crates as hard links into the store, which cargo
                             never writes in place; a write through one is found and rebuilt)
  smelt init [--sequential]  write a commented smelt.toml (default pipeline, or the seed's chain)
  smelt gc [--older-than D]  drop results unused for D days (default 30) and all that only they need
  smelt graph [STEP...]      draw the steps and what each inherits (--format dot|mermaid|svg, default
                             dot; svg needs Graphviz; --status: colour each step by what smelt why says)
  smelt ci github|gitlab     write a CI workflow running each check as a job of its own, sharing the
                             remote cache (-o PATH, - for stdout; --force overwrites; --smelt-from
                             URL#REF: the git repository smelt is built from in CI)
  smelt push [STEP...]       bring the steps (default: the checks) up to date and upload them,
                             signed, to the first remote cache (needs a signing key)
  smelt pull [STEP...]       bring the steps up to date from the remote caches where they have
                             them, with their bytes (target/ and outputs), for working offline
  smelt key generate NAME -o FILE
                             write a new signing key to FILE (mode 0600) and print its public
                             key NAME:BASE64, for the remote cache's trusted keys
  smelt store verify [--repair]  re-hash the whole store (objects, layers, results, vendored
                             crates); --repair drops what is damaged and what was built from it
  smelt worker --engine grpc://HOST:PORT[/INSTANCE] --dir DIR
                             run actions for a Remote Execution engine (BuildGrid) as one of its workers

Flags (before or after the command):
  -C DIR        the project (default: the current directory)
  -j N          steps run at once (default: number of CPUs)
  --executor grpc://HOST:PORT[/INSTANCE]
                the steps' commands run on that Remote Execution engine's
                workers (default: $SMELT_EXECUTOR, else executor in [remote])
  --fail-fast   stop at the first failure
  --store DIR   the store (default: $SMELT_STORE, else $XDG_CACHE_HOME/smelt)
  --json        print JSON events instead of text
  -o PATH       where smelt build links the result (default: ./result in the project)
  -q, --quiet   print only failures
  -v, --verbose also print what the steps' commands print, each line after the step's name

Remote cache (see README "Remote cache"):
  --remote URL        read results from this cache (repeatable, in order; default: $SMELT_REMOTE,
                      space-separated, else url in [remote]): file:///PATH, http(s)://HOST/PREFIX,
                      s3://BUCKET/PREFIX, grpc(s)://HOST:PORT[/INSTANCE]
  --push              upload what this run has, signed, to the first remote ($SMELT_PUSH=1, push = true)
  --signing-key FILE  the key pushes are signed with ($SMELT_SIGNING_KEY)
  --trust NAME:BASE64 use results signed by this key (repeatable; also $SMELT_TRUST and
                      trusted-public-keys in [remote])
`

type options struct {
	dir, store, out  string
	jobs             int
	failFast, asJSON bool
	quiet, verbose   bool
	sequential       bool
	force            bool
	link             bool
	repair           bool
	olderThan        int
	format           string // graph
	status           bool   // graph
	smeltFrom        string // ci
	executor         string // grpc://HOST:PORT[/INSTANCE]: steps' commands run there
	remote           remoteFlags
	pullBytes        bool // pull: download the results' bytes too
}

func main() {
	os.Exit(mainErr(os.Args[1:]))
}

func mainErr(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(usage)
		return 0
	}
	if args[0] == "worker" { // flags of its own
		return workerMain(args[1:])
	}
	fl := flag.NewFlagSet("smelt", flag.ContinueOnError)
	var o options
	fl.StringVar(&o.dir, "C", ".", "project directory")
	fl.StringVar(&o.store, "store", "", "store directory")
	fl.StringVar(&o.out, "o", "", "result link")
	fl.IntVar(&o.jobs, "j", runtime.NumCPU(), "parallel steps")
	fl.BoolVar(&o.failFast, "fail-fast", false, "stop at the first failure")
	fl.BoolVar(&o.asJSON, "json", false, "JSON output")
	fl.BoolVar(&o.quiet, "quiet", false, "print only failures")
	fl.BoolVar(&o.quiet, "q", false, "print only failures")
	fl.BoolVar(&o.verbose, "verbose", false, "print the commands' output")
	fl.BoolVar(&o.verbose, "v", false, "print the commands' output")
	fl.BoolVar(&o.sequential, "sequential", false, "init: the seed's sequential chain")
	fl.BoolVar(&o.force, "force", false, "init, ci: overwrite the file")
	fl.IntVar(&o.olderThan, "older-than", 30, "gc: days a result may go unused")
	fl.BoolVar(&o.repair, "repair", false, "store verify: drop what is damaged")
	fl.BoolVar(&o.link, "link", false, "restore: hard-link compiled crates from the store instead of copying")
	fl.StringVar(&o.format, "format", "dot", "graph: dot, mermaid or svg")
	fl.BoolVar(&o.status, "status", false, "graph: each step's state in the store")
	fl.StringVar(&o.executor, "executor", "", "a Remote Execution engine that runs the steps")
	fl.StringVar(&o.smeltFrom, "smelt-from", "", "ci: git repository (URL#REF) smelt is built from")
	fl.Var(&o.remote.urls, "remote", "remote cache URL (repeatable)")
	fl.Var(&o.remote.trust, "trust", "trusted public key NAME:BASE64 (repeatable)")
	fl.BoolVar(&o.remote.push, "push", false, "upload results to the first remote cache")
	fl.StringVar(&o.remote.signingKey, "signing-key", "", "secret key file for signing pushed results")
	fl.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	// Accept flags after positional arguments too (`smelt build app -j 1`),
	// and -jN as make and cargo do.
	var pos []string
	var rest []string
	for _, a := range args {
		if len(a) > 2 && strings.HasPrefix(a, "-j") && a[2] >= '0' && a[2] <= '9' {
			rest = append(rest, "-j", a[2:])
			continue
		}
		rest = append(rest, a)
	}
	for {
		if err := fl.Parse(rest); err != nil {
			return 2
		}
		if fl.NArg() == 0 {
			break
		}
		pos = append(pos, fl.Arg(0))
		rest = fl.Args()[1:]
	}
	// The command is the first word that is not a flag, so flags may come
	// before it too (`smelt -C app check`).
	if len(pos) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	cmd := pos[0]
	pos = pos[1:]
	if o.quiet && o.verbose {
		fmt.Fprintln(os.Stderr, "smelt: --quiet and --verbose contradict each other: pass one of them")
		return 2
	}
	if o.jobs < 1 {
		fmt.Fprintf(os.Stderr, "smelt: -j %d: the number of steps run at once must be at least 1\n", o.jobs)
		return 2
	}
	if o.olderThan < 0 {
		fmt.Fprintf(os.Stderr, "smelt: --older-than %d: the number of days must be 0 or more (0 drops every result)\n", o.olderThan)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	code := 0
	switch cmd {
	case "check":
		code, err = check(ctx, o, pos)
	case "build":
		code, err = build(ctx, o, pos)
	case "fetch":
		err = fetch(ctx, o)
	case "why":
		err = why(ctx, o, pos)
	case "log":
		err = showLog(o, pos)
	case "restore":
		code, err = restore(ctx, o, pos)
	case "init":
		err = initConfig(o)
	case "gc":
		err = gc(o)
	case "graph":
		err = graphCmd(ctx, o, pos)
	case "ci":
		err = ciCmd(o, pos)
	case "key":
		err = key(o, pos)
	case "store":
		code, err = storeCmd(o, pos)
	case "push":
		code, err = pushCmd(ctx, o, pos)
	case "pull":
		code, err = pullCmd(ctx, o, pos)
	default:
		fmt.Fprintf(os.Stderr, "smelt: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "smelt: interrupted; the store is consistent, nothing half-written was kept")
			return 130
		}
		fmt.Fprintf(os.Stderr, "smelt: %v\n", err)
		return 1
	}
	return code
}

// setup finds the project, reads its configuration and opens the store.
func setup(o options) (string, *config.Config, *store.Store, error) {
	root, err := run.FindRoot(o.dir)
	if err != nil {
		return "", nil, nil, err
	}
	cfg, err := config.Load(filepath.Join(root, "smelt.toml"))
	if errors.Is(err, fs.ErrNotExist) {
		cfg, err = config.Default(), nil
	}
	if err != nil {
		return "", nil, nil, err
	}
	dir := o.store
	if dir == "" {
		if dir, err = store.DefaultDir(); err != nil {
			return "", nil, nil, err
		}
	}
	st, err := store.Open(dir)
	if err != nil {
		return "", nil, nil, err
	}
	return root, cfg, st, nil
}

// runSteps runs the named steps; finish, if not nil, then uses their
// results (see run.Options.Finish).
func runSteps(ctx context.Context, o options, verb string, names []string, finish func(*run.Report, *config.Config, *store.Store, string) error) (*run.Report, *config.Config, *store.Store, string, error) {
	root, cfg, st, err := setup(o)
	if err != nil {
		return nil, nil, nil, "", err
	}
	if len(names) == 0 {
		names = cfg.Checks
	}
	names = resolve(cfg, names)
	mode := ui.Normal
	if o.quiet {
		mode = ui.Quiet
	} else if o.verbose {
		mode = ui.Verbose
	}
	p := ui.New(os.Stderr, o.asJSON, mode)
	defer p.Close()
	st.Warn = func(msg string) { p.Warn("%s", msg) }
	where := "built-in default pipeline"
	if cfg.File != "" {
		where = filepath.Base(cfg.File)
	}
	p.Info("smelt %s %s (%s)", verb, root, where)
	start := time.Now()
	remotes, err := openRemotes(ctx, o, cfg, st, st.Warn)
	if err != nil {
		return nil, nil, nil, "", err
	}
	if remotes != nil {
		defer remotes.Close()
	}
	opt := run.Options{Store: st, Jobs: o.jobs, FailFast: o.failFast, Observer: p, Remotes: remotes, Executor: executorURL(o, cfg)}
	if finish != nil {
		opt.Finish = func(rep *run.Report) error { return finish(rep, cfg, st, root) }
	}
	rep, err := run.Run(ctx, root, cfg, names, opt)
	if err != nil {
		return nil, nil, nil, "", err
	}
	if o.pullBytes && remotes != nil && !rep.Failed() {
		if err := run.FetchBytes(st, rep); err != nil {
			return nil, nil, nil, "", err
		}
		rep.Down, rep.Up = remotes.Bytes()
		rep.Requests = remotes.Requests()
	}
	p.Summary(verb, rep, time.Since(start))
	if remotes != nil {
		remoteSummary(o, rep, remotes.Pushing())
	}
	if ctx.Err() != nil {
		return rep, cfg, st, root, ctx.Err()
	}
	return rep, cfg, st, root, nil
}

func check(ctx context.Context, o options, names []string) (int, error) {
	return checkVerb(ctx, o, "check", names)
}

// checkVerb is check, reported as verb (push, pull).
func checkVerb(ctx context.Context, o options, verb string, names []string) (int, error) {
	rep, _, _, _, err := runSteps(ctx, o, verb, names, nil)
	if err != nil {
		return 1, err
	}
	if rep.Failed() {
		return 1, nil
	}
	return 0, nil
}

// build builds NAME — a step, or a workspace member's binaries (`cargo
// build -p MEMBER` with the default output's settings) — and links the
// result.
func build(ctx context.Context, o options, pos []string) (int, error) {
	if len(pos) > 1 {
		return 2, fmt.Errorf("build takes at most one name, got %s", strings.Join(pos, " "))
	}
	_, cfg, _, err := setup(o)
	if err != nil {
		return 1, err
	}
	stepName, member := cfg.Default, ""
	if _, m, ok := config.SplitMember(stepName); ok && cfg.Steps[stepName] == nil {
		member = m // [outputs] default = "package.app"
	}
	if len(pos) == 1 {
		if names, err := cfg.Resolve(pos[0]); err == nil {
			stepName, member = names[0], "" // under a matrix, a base name means its first row
		} else if _, m, ok := config.SplitMember(pos[0]); ok {
			stepName, member = pos[0], m // package.app
		} else {
			member = pos[0]
			// The member's binaries alone: a step of its own, with the
			// default package step's settings and `-p MEMBER`.
			base := cfg.Default
			if b, _, ok := config.SplitMember(base); ok && cfg.Steps[base] == nil {
				base = b
			}
			stepName = plan.MemberStep(base, member)
			if err := isMember(o, cfg, member); err != nil {
				return 1, err // a typo, most likely: said before the rest
			}
			if def := cfg.Steps[base]; def == nil || !kind.Get(def.Kind).Members {
				return 1, fmt.Errorf("smelt build %s builds a member with the default output's settings, but the default output (%q) is not a step of kind package: set [outputs] default to one", member, cfg.Default)
			}
		}
	}
	if member != "" && (len(pos) == 0 || pos[0] != member) {
		// package.MEMBER named, here or as [outputs] default: check the
		// member before building anything.
		if err := isMember(o, cfg, member); err != nil {
			return 1, err
		}
	}
	if stepName == "" {
		return 1, fmt.Errorf("smelt.toml has no [outputs] default and no step of kind package: name the step to build")
	}
	// The output is linked under the run's hold on the store, so that a
	// damaged object met on the way is rebuilt (run.Options.Finish).
	var dir, link string
	var linkErr error
	rep, _, _, _, err := runSteps(ctx, o, "build", []string{stepName}, func(rep *run.Report, _ *config.Config, st *store.Store, root string) error {
		r := rep.Step(stepName)
		if rep.Failed() || r == nil || r.Result == nil {
			return nil
		}
		link = o.out
		if link == "" {
			link = filepath.Join(root, "result")
		}
		var err error
		dir, err = run.LinkResult(st, r.Result, member, link)
		if errors.Is(err, store.ErrDamaged) {
			return err
		}
		linkErr = err
		return nil
	})
	if err != nil {
		return 1, err
	}
	if linkErr != nil {
		return 1, linkErr
	}
	if r := rep.Step(stepName); rep.Failed() || r == nil || r.Result == nil || dir == "" {
		return 1, nil
	}
	say(o, map[string]any{"event": "result", "link": link, "path": dir}, "result: %s -> %s", link, dir)
	return 0, nil
}

// isMember checks that name is a member of the project's workspace.
func isMember(o options, cfg *config.Config, name string) error {
	root, err := run.FindRoot(o.dir)
	if err != nil {
		return err
	}
	members, err := run.Members(root)
	if err != nil {
		return err
	}
	if slices.Contains(members, name) {
		return nil
	}
	steps := sortedKeys(cfg.Steps)
	hint := ""
	if near := config.Nearest(name, append(steps, members...)); near != "" {
		hint = fmt.Sprintf("; did you mean %s?", near)
	}
	return fmt.Errorf("%s is neither a step (%s) nor a workspace member (%s)%s",
		name, strings.Join(steps, ", "), strings.Join(members, ", "), hint)
}

// restore builds a step if needed and writes its target/ into a directory.
func restore(ctx context.Context, o options, pos []string) (int, error) {
	if len(pos) != 2 {
		return 2, fmt.Errorf("restore takes a step and a directory: smelt restore STEP DIR")
	}
	var name string
	var restoreErr error
	var took time.Duration
	rep, _, _, _, err := runSteps(ctx, o, "restore", pos[:1], func(rep *run.Report, cfg *config.Config, st *store.Store, _ string) error {
		name = resolve(cfg, pos[:1])[0]
		r := rep.Step(name)
		if rep.Failed() || r == nil || r.Result == nil {
			return nil
		}
		start := time.Now()
		err := run.RestoreArtifacts(st, r.Result, pos[1], o.link)
		if errors.Is(err, store.ErrDamaged) {
			return err
		}
		took, restoreErr = time.Since(start), err
		return nil
	})
	if err != nil {
		return 1, err
	}
	if restoreErr != nil {
		return 1, restoreErr
	}
	if r := rep.Step(name); rep.Failed() || r == nil || r.Result == nil {
		return 1, nil
	}
	secs := took.Seconds()
	say(o, map[string]any{"event": "restored", "step": name, "dir": pos[1], "seconds": secs},
		"restored %s's target/ into %s in %.3fs", name, pos[1], secs)
	return 0, nil
}

func fetch(ctx context.Context, o options) error {
	root, _, st, err := setup(o)
	if err != nil {
		return err
	}
	s, err := run.Fetch(ctx, st, root)
	if err != nil {
		return err
	}
	say(o, map[string]any{"event": "fetched", "dir": s.Dir}, "dependency sources: %s", s.Dir)
	return nil
}

func why(ctx context.Context, o options, names []string) error {
	root, cfg, st, err := setup(o)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		names = cfg.Checks
	}
	lines, err := run.Why(ctx, root, cfg, resolve(cfg, names), st)
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Println(l)
	}
	return nil
}

func showLog(o options, pos []string) error {
	if len(pos) != 1 {
		return fmt.Errorf("log takes one step name")
	}
	root, cfg, st, err := setup(o)
	if err != nil {
		return err
	}
	g, err := plan.New(cfg)
	if err != nil {
		return err
	}
	if _, ok := g.Node(pos[0]); !ok {
		if rows, err := cfg.Resolve(pos[0]); err == nil {
			return fmt.Errorf("step %s runs as %s: name one of them", pos[0], strings.Join(rows, ", "))
		}
		return g.Unknown(pos[0])
	}
	path := run.LogPath(st, root, pos[0])
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("step %s has no log yet: it has not run in this project with this store", pos[0])
	}
	os.Stdout.Write(data)
	return nil
}

// openStore opens the store of --store (or the default) without a project.
func openStore(o options) (*store.Store, error) {
	dir := o.store
	var err error
	if dir == "" {
		if dir, err = store.DefaultDir(); err != nil {
			return nil, err
		}
	}
	return store.Open(dir)
}

func gc(o options) error {
	st, err := openStore(o)
	if err != nil {
		return err
	}
	stats, err := run.GC(st, time.Duration(o.olderThan)*24*time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gc: removed %d results, %d layers, %d objects (%.1f MB), %d cached directories\n",
		stats.Results, stats.Layers, stats.Objects, float64(stats.Bytes)/1e6, stats.Other)
	return nil
}

// say reports what a command did: a line of text, or under --json one
// JSON event, so that the JSON stream holds nothing else.
func say(o options, event map[string]any, format string, args ...any) {
	if o.asJSON {
		b, _ := json.Marshal(event)
		fmt.Fprintf(os.Stderr, "%s\n", b)
		return
	}
	if !o.quiet {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

// storeCmd runs `smelt store verify [--repair]`.
func storeCmd(o options, pos []string) (int, error) {
	if len(pos) != 1 || pos[0] != "verify" {
		return 2, fmt.Errorf("usage: smelt store verify [--repair]")
	}
	st, err := openStore(o)
	if err != nil {
		return 1, err
	}
	rep, err := st.Verify(o.repair, run.WorkRoot(st))
	if err != nil {
		return 1, err
	}
	crates, pool, err := depsrc.VerifyPool(st, o.repair)
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(os.Stderr, "store %s: %d objects, %d layers, %d results, %d vendored crates checked\n",
		st.Dir, rep.Objects, rep.Layers, rep.Results, crates)
	if rep.Damage == nil && len(pool) == 0 {
		fmt.Fprintln(os.Stderr, "store verify: no damage found")
		return 0, nil
	}
	if rep.Damage != nil {
		for _, o := range rep.Damage.Objects {
			fmt.Fprintf(os.Stderr, "damaged: store object %s\n", o)
		}
		for _, l := range rep.Damage.Layers {
			fmt.Fprintf(os.Stderr, "damaged: store layer %s\n", l)
		}
	}
	for _, d := range pool {
		fmt.Fprintf(os.Stderr, "damaged: vendored crate %s: %s\n", d.Crate, d.Why)
	}
	if !o.repair {
		fmt.Fprintf(os.Stderr, "store verify: %d results need damaged entries: run `smelt store verify --repair` to drop them (the next run builds them again)\n", rep.Users)
		return 1, nil
	}
	fmt.Fprintf(os.Stderr, "store verify --repair: dropped the damaged entries, %d results that needed them, %d working-directory links to them, and %d vendored crates; the next run builds them again\n",
		rep.Users, rep.Links, len(pool))
	return 0, nil
}

func initConfig(o options) error {
	root, err := run.FindRoot(o.dir)
	if err != nil {
		return err
	}
	path := filepath.Join(root, "smelt.toml")
	if _, err := os.Stat(path); err == nil && !o.force {
		return fmt.Errorf("%s already exists: pass --force to overwrite it", path)
	}
	text := config.DefaultTOML()
	if o.sequential {
		text = config.SequentialTOML()
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", path)
	return nil
}

// resolve expands base step names under a matrix to every row's step.
// Names the configuration does not know (a nextest partition such as
// "tests#2", or a typo) go to the planner, which knows or rejects them.
func resolve(cfg *config.Config, names []string) []string {
	var out []string
	for _, n := range names {
		if r, err := cfg.Resolve(n); err == nil {
			out = append(out, r...)
		} else {
			out = append(out, n)
		}
	}
	return out
}

func sortedKeys(m map[string]*config.Step) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// executorURL is the Remote Execution engine that runs the steps'
// commands: --executor, else SMELT_EXECUTOR, else executor in [remote]
// ("" for none: they run here).
func executorURL(o options, cfg *config.Config) string {
	if o.executor != "" {
		return o.executor
	}
	if v := os.Getenv("SMELT_EXECUTOR"); v != "" {
		return v
	}
	return cfg.Remote.Executor
}
