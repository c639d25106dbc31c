package kind

// Deps builds the dependencies alone, on a skeleton of the workspace (its
// manifests with stub sources), so that its key and result depend on the
// manifests only. It runs the warm-ups of the steps that inherit from it,
// so that they find every dependency built with their own flags.
var Deps = register(&Spec{
	Name:             "deps",
	Order:            0,
	KeepsArtifacts:   true,
	UsesDependencies: true,
	Skeleton:         true,
	Commands: func(s *Step, heirs []*Step, _, _ int) []Command {
		var cmds []Command
		add := func(c Command) {
			for _, have := range cmds {
				if have.String() == c.String() {
					return
				}
			}
			cmds = append(cmds, c)
		}
		for _, h := range heirs {
			for _, c := range Warmup(h) {
				add(c)
			}
		}
		if len(cmds) == 0 {
			// Nothing inherits from it: prepare for the usual heirs.
			add(cargo(nil, []string{"check", "--keep-going"}, std(s, nil), []string{"--all-targets"}))
			add(cargo(nil, []string{"build", "--keep-going"}, std(s, nil)))
		}
		for i := range cmds {
			cmds[i].Args = append(cmds[i].Args, s.Args...)
		}
		return cmds
	},
})
