package kind

// Package builds the workspace's final output; the binaries cargo reports
// are its output, and STEP.MEMBER builds one member's alone.
var Package = register(&Spec{
	Name:             "package",
	Order:            5,
	KeepsArtifacts:   true,
	UsesDependencies: true,
	BuildsOwn:        true,
	Members:          true,
	Output:           Binaries,
	Commands: func(s *Step, _ []*Step, _, _ int) []Command {
		c := cargo(nil, []string{"build", "--message-format=json-render-diagnostics"}, std(s, s.Args), s.Args)
		c.JSON = true
		return []Command{c}
	},
	Warmup: func(h *Step) []Command { return []Command{warm(h, nil, "build")} },
})
