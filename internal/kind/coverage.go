package kind

// Coverage runs the tests instrumented and reports line coverage with the
// toolchain's llvm-cov; fail-under fails it below a minimum.
var Coverage = register(&Spec{
	Name:             "coverage",
	Order:            7,
	Keys:             []string{"fail-under"},
	LLVMTools:        true,
	Component:        "llvm-tools", // llvm-profdata and llvm-cov matching rustc's LLVM
	KeepsArtifacts:   true,
	UsesDependencies: true,
	RunsTests:        true,
	BuildsOwn:        true,
	Output:           LLVMCoverage,
	Commands: func(s *Step, _ []*Step, _, _ int) []Command {
		env := CoverageEnv(s)
		build := cargo(env, []string{"test", "--no-run", "--message-format=json-render-diagnostics"}, std(s, s.Args), cargoPart(s.Args))
		build.JSON = true
		return []Command{build, cargo(env, []string{"test"}, std(s, s.Args), s.Args)}
	},
	Warmup: func(h *Step) []Command {
		return []Command{warm(h, CoverageEnv(h), testBuild(cargoPart(h.Args))...)}
	},
})

// CoverageEnv instruments every crate for the coverage kind. The deps step
// builds with it too when a coverage step inherits from it, so dependencies
// are compiled once, instrumented.
func CoverageEnv(s *Step) map[string]string {
	rf := "-C instrument-coverage"
	if v := s.Env["RUSTFLAGS"]; v != "" {
		rf = v + " " + rf
	}
	return map[string]string{"RUSTFLAGS": rf, "LLVM_PROFILE_FILE": WorkDir + "/profraw/%p-%m.profraw"}
}
