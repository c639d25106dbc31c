package kind

// Step is one [step.NAME] after the [common] merge: the settings a kind's
// commands are made from. Package config reads it from smelt.toml (and
// calls it config.Step); it lives here so that a kind's file can build
// commands from it without importing config.
type Step struct {
	Name string
	Kind string
	// Inherits names the step whose target/ it starts from (TOML key
	// "artifacts"); "" = none. Its JSON name is the one keys were made with.
	Inherits          string   `json:"Artifacts"`
	Args              []string // extra args for the kind's cargo command (DefaultArgs(kind) if unset)
	Profile           string   // cargo profile; default "release"
	Features          []string
	AllFeatures       bool
	NoDefaultFeatures bool
	Target            string            // target triple, "" = host
	CargoArgs         []string          // extra args given to every cargo command of the step
	Env               map[string]string // extra environment for the step (never nil after Parse: empty map)
	Include           []string          // extra globs (slash paths relative to the workspace root, `**` allowed) kept in the cleaned source
	Exclude           []string          // globs removed from the cleaned source
	Line              int               // line of the [step.NAME] header in the file (0 for the built-in default)
	Toolchain         string            // rustup toolchain name (common key "toolchain"); "" = the project's default
	FailUnder         float64           // step key "fail-under": minimum line coverage in percent (kinds coverage, tarpaulin); 0 = no minimum
	Partitions        int               // step key "partitions": split a nextest step into N partition steps (kind nextest); 0 or 1 = none
	Run               []string          // step key "run": the command of kind "command", as argv; a TOML string s means ["sh", "-c", s]
	Outputs           []string          // step key "outputs": globs (relative to the workspace root, ** allowed) naming the files a command step produces
	Base              string            // the step's name in the file, before matrix expansion (== Name when there is no matrix)
	Row               string            // the matrix row label ("" without a matrix)
}
