package kind

import (
	"fmt"
	"regexp"
	"strconv"
)

// Test runs the test suite with `cargo test`.
var Test = register(&Spec{
	Name:             "test",
	Order:            2,
	KeepsArtifacts:   true,
	UsesDependencies: true,
	RunsTests:        true,
	BuildsOwn:        true,
	Output:           TestCounts,
	Summary:          testCounts,
	Commands:         one("test"),
	Warmup:           testWarmup,
})

// testWarmup: `cargo test` (and nextest, which runs `cargo test --no-run`)
// builds what `cargo build --tests` does and, when no target is named, the
// examples too (to see that they compile); only `cargo build` keeps going
// past the stubs.
func testWarmup(h *Step) []Command {
	return []Command{warm(h, nil, testBuild(cargoPart(h.Args))...)}
}

var (
	reTestResult = regexp.MustCompile(`test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored`)
	reNextest    = regexp.MustCompile(`Summary \[[^\]]*\]\s+(\d+) tests? run: (\d+) passed(?:[^,\n]*)?(?:, (\d+) failed)?(?:, (\d+) skipped)?`)
)

// testCounts adds up the test harness's (or nextest's) result lines in a
// step's log.
func testCounts(log []byte) string {
	atoi := func(b []byte) int { n, _ := strconv.Atoi(string(b)); return n }
	var passed, failed, ignored, skipped int
	for _, m := range reTestResult.FindAllSubmatch(log, -1) {
		passed, failed, ignored = passed+atoi(m[1]), failed+atoi(m[2]), ignored+atoi(m[3])
	}
	for _, m := range reNextest.FindAllSubmatch(log, -1) {
		// nextest's skipped tests are those of other partitions (or filtered).
		passed, failed, skipped = passed+atoi(m[2]), failed+atoi(m[3]), skipped+atoi(m[4])
	}
	s := fmt.Sprintf("%d tests passed", passed)
	if ignored > 0 {
		s += fmt.Sprintf(", %d ignored", ignored)
	}
	if skipped > 0 {
		s += fmt.Sprintf(", %d skipped", skipped)
	}
	if failed > 0 {
		s += fmt.Sprintf(", %d failed", failed)
	}
	return s
}
