package kind

// Deny checks licenses, bans and sources with cargo-deny. It compiles
// nothing, so it keeps no target/.
var Deny = register(&Spec{
	Name:             "deny",
	Order:            10,
	Tools:            []Tool{{Name: "cargo-deny", VersionArgs: []string{"--version"}}},
	UsesDependencies: true,
	Commands: func(s *Step, _ []*Step, _, _ int) []Command {
		args := s.Args
		if len(args) == 0 {
			args = []string{"licenses", "bans", "sources"}
		}
		return []Command{cargo(nil, []string{"deny", "--offline", "--workspace", "check"}, args)}
	},
})
