package kind

import "fmt"

// Nextest runs the tests with cargo-nextest; partitions = N splits it into
// N steps, each running one partition.
var Nextest = register(&Spec{
	Name:             "nextest",
	Order:            8,
	Keys:             []string{"partitions"},
	Tools:            []Tool{{Name: "cargo-nextest", VersionArgs: []string{"nextest", "--version"}}},
	KeepsArtifacts:   true,
	UsesDependencies: true,
	RunsTests:        true,
	BuildsOwn:        true,
	Partitioned:      true,
	Output:           TestCounts,
	Summary:          testCounts,
	Commands: func(s *Step, _ []*Step, part, of int) []Command {
		args := []string{"nextest", "run"}
		if of > 1 {
			args = append(args, "--partition", fmt.Sprintf("count:%d/%d", part, of))
		}
		return []Command{cargo(nil, args, flags(s, s.Args, "--cargo-profile", false), s.Args)}
	},
	Warmup: testWarmup,
})
