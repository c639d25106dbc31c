package kind

// Fmt checks formatting with rustfmt: it needs no compiled code and no
// dependencies, so it keeps no target/ and starts from none.
var Fmt = register(&Spec{
	Name:      "fmt",
	Order:     3,
	Component: "rustfmt",
	Commands: func(s *Step, _ []*Step, _, _ int) []Command {
		return []Command{cargo(nil, []string{"fmt", "--all", "--check"}, s.Args)}
	},
})
