package kind

// Doctest runs the documentation tests (`cargo test --doc`).
//
// RunsTests but not BuildsOwn, on purpose: its warm-up, `cargo build
// --tests`, builds the dependencies that `cargo test --doc` needs, but of
// the workspace's own code it builds the test targets, which doctest never
// runs (rustdoc compiles the doc tests against the library as it runs
// them). Run fused on the real source, that warm-up would build targets the
// step does not use, and a seed of them would give it nothing.
var Doctest = register(&Spec{
	Name:             "doctest",
	Order:            9,
	KeepsArtifacts:   true,
	UsesDependencies: true,
	RunsTests:        true,
	Output:           TestCounts,
	Summary:          testCounts,
	Commands:         one("test", "--doc"),
	Warmup:           func(h *Step) []Command { return []Command{warm(h, nil, "build", "--tests")} },
})
