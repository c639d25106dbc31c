package kind

// Doc builds the workspace's documentation; the HTML is its output.
var Doc = register(&Spec{
	Name:             "doc",
	Order:            4,
	KeepsArtifacts:   true,
	UsesDependencies: true,
	Output:           DocHTML,
	Commands:         one("doc", "--no-deps"),
	Warmup:           func(h *Step) []Command { return []Command{warm(h, nil, "doc", "--no-deps")} },
})
