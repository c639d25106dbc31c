package kind

import "slices"

// CommandKind runs the user's own program (run = ...) with the network
// off; the files its outputs globs name are its output, and appear in its
// heirs' source.
//
// Not BuildsOwn: the program may build anything or nothing; the deps step
// warms up a plain `cargo build` for it, and that is all it can know.
var CommandKind = register(&Spec{
	Name:             "command",
	Order:            11,
	Keys:             []string{"run", "outputs"},
	Requires:         []string{"run"},
	KeepsArtifacts:   true,
	UsesDependencies: true,
	UserCommand:      true,
	Output:           Declared,
	Commands: func(s *Step, _ []*Step, _, _ int) []Command {
		if len(s.Run) == 0 {
			return nil
		}
		return []Command{{Program: s.Run[0], Args: append(slices.Clone(s.Run[1:]), s.Args...)}}
	},
	Warmup: func(h *Step) []Command { return []Command{warm(h, nil, "build")} },
})
