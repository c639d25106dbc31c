package kind

// Test runs the test suite with `cargo test`.
var Test = register(&Spec{
	Name:             "test",
	Order:            2,
	KeepsArtifacts:   true,
	UsesDependencies: true,
	RunsTests:        true,
	BuildsOwn:        true,
	Output:           TestCounts,
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
