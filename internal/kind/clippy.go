package kind

// Clippy lints with `cargo clippy`, denying warnings unless args say
// otherwise.
var Clippy = register(&Spec{
	Name:             "clippy",
	Order:            1,
	DefaultArgs:      []string{"--all-targets", "--", "--deny", "warnings"},
	Component:        "clippy",
	KeepsArtifacts:   true,
	UsesDependencies: true,
	Commands:         one("clippy"),
	// clippy reuses the dependencies that `cargo check` builds.
	Warmup: func(h *Step) []Command { return []Command{warm(h, nil, "check")} },
})
