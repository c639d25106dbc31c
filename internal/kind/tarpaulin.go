package kind

// Tarpaulin measures line coverage with cargo-tarpaulin; its reports are
// its output, and fail-under fails it below a minimum.
//
// Not BuildsOwn: its warm-up is tarpaulin's own build, not a `cargo build`
// that a deps step could run on the real source (run.fusible).
var Tarpaulin = register(&Spec{
	Name:             "tarpaulin",
	Order:            6,
	Keys:             []string{"fail-under"},
	Tools:            []Tool{{Name: "cargo-tarpaulin", VersionArgs: []string{"tarpaulin", "--version"}}},
	KeepsArtifacts:   true,
	UsesDependencies: true,
	RunsTests:        true,
	Output:           TarpaulinReport,
	Commands: func(s *Step, _ []*Step, _, _ int) []Command {
		return []Command{cargo(nil, []string{"tarpaulin"}, flags(s, s.Args, "--profile", false),
			[]string{"--skip-clean", "--out", "Xml", "--out", "Lcov", "--out", "Html", "--out", "Json", "--output-dir", WorkDir + "/tarpaulin"}, s.Args)}
	},
	Warmup: func(h *Step) []Command {
		args := cargoPart(h.Args)
		return []Command{cargo(nil, []string{"tarpaulin", "--no-run", "--skip-clean"}, flags(h, args, "--profile", false), args)}
	},
})
