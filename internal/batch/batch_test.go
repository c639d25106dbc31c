package batch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A batch runs its commands in order, each with its own output files and
// status; a failure ends it unless the command may be followed anyway; the
// runner's exit is the last failure's, so that an engine caches no batch
// that failed.
func TestRun(t *testing.T) {
	sh := func(script string, cont bool) Command {
		return Command{Argv: []string{"sh", "-c", script}, Continue: cont}
	}
	for _, c := range []struct {
		name  string
		cmds  []Command
		exit  int
		exits []int    // per command that ran
		outs  []string // stdout+"|"+stderr per command that ran
	}{
		{"all succeed", []Command{sh("echo a", false), sh("echo b >&2", false)}, 0, []int{0, 0}, []string{"a\n|", "|b\n"}},
		{"a failure ends it", []Command{sh("echo a; exit 3", false), sh("echo b", false)}, 3, []int{3}, []string{"a\n|"}},
		{"a failure it may follow", []Command{sh("exit 3", true), sh("echo $X", false)}, 3, []int{3, 0}, []string{"|", "x\n|"}},
		{"the last failure's exit", []Command{sh("exit 3", true), sh("exit 5", true), sh("true", true)}, 5, []int{3, 5, 0}, []string{"|", "|", "|"}},
		{"a command that cannot start", []Command{{Argv: []string{"no-such-program-smelt"}, Continue: true}, sh("true", false)}, 127, []int{-1}, []string{"|"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			for i := range c.cmds {
				c.cmds[i].Env = []string{"X=x"}
			}
			args, err := Args("/proc/self/exe", Spec{Dir: dir, Commands: c.cmds})
			if err != nil {
				t.Fatal(err)
			}
			if args[1] != Arg {
				t.Fatalf("args %q", args)
			}
			if got := Run(args[2]); got != c.exit {
				t.Errorf("exit %d, want %d", got, c.exit)
			}
			sts, err := ReadStatus(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(sts) != len(c.exits) {
				t.Fatalf("%d commands ran, want %d: %+v", len(sts), len(c.exits), sts)
			}
			for i, st := range sts {
				if st.Exit != c.exits[i] {
					t.Errorf("command %d: exit %d, want %d", i, st.Exit, c.exits[i])
				}
				if st.Exit < 0 && !strings.Contains(st.Error, "not found") {
					t.Errorf("command %d: error %q", i, st.Error)
				}
				if st.Exit < 0 {
					continue
				}
				o, _ := os.ReadFile(Stdout(dir, i))
				e, _ := os.ReadFile(Stderr(dir, i))
				if got := string(o) + "|" + string(e); got != c.outs[i] {
					t.Errorf("command %d: output %q, want %q", i, got, c.outs[i])
				}
			}
		})
	}
}
