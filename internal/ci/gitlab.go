package ci

import (
	"fmt"
	"strings"
)

// GitLab writes a .gitlab-ci.yml running jobs.
func GitLab(jobs []Job, o Options) string {
	var b strings.Builder
	b.WriteString(header("smelt ci gitlab", o, `# Settings > CI/CD > Variables:
#   SMELT_REMOTE        the remote cache's URL
#   SMELT_TRUST         the public key (NAME:BASE64) results must be signed with
#   SMELT_SIGNING_KEY   the private key: type File (GitLab writes it to a file and
#                       sets the variable to its path), protected (only the
#                       default branch sees it)
#   the remote's credentials, those its backend needs (masked): SMELT_REMOTE_TOKEN
#                       for an http(s):// or grpc(s):// remote; AWS_ACCESS_KEY_ID,
#                       AWS_SECRET_ACCESS_KEY, AWS_REGION (and AWS_ENDPOINT_URL_S3
#                       for an S3-compatible server) for an s3:// one
#   SMELT_GIT           the git repository smelt is built from, unless set below
#   SMELT_REF           its branch, tag or commit (default: main), unless set below
`))
	git, ref := "$SMELT_GIT", "main"
	if o.SmeltGit != "" {
		git = o.SmeltGit
	}
	if o.SmeltRef != "" {
		ref = o.SmeltRef
	}
	b.WriteString("\nstages: [smelt, check]\n\n")
	b.WriteString("variables:\n  CARGO_TERM_COLOR: always\n")
	if o.SmeltGit != "" {
		fmt.Fprintf(&b, "  SMELT_GIT: %s\n", yamlQuote(git))
	}
	if o.SmeltRef != "" {
		fmt.Fprintf(&b, "  SMELT_REF: %s\n", yamlQuote(ref))
	}
	b.WriteString(`
smelt:
  stage: smelt
  # smelt's go.mod names the Go it needs; the go command fetches it when this
  # one is older.
  image: golang:latest
  script:
    - SMELT_REF="${SMELT_REF:-main}"
`)
	for _, l := range buildSmelt("/tmp", "$CI_PROJECT_DIR/.smelt/bin/smelt") {
		fmt.Fprintf(&b, "    - %s\n", yamlQuote(l))
	}
	b.WriteString(`  artifacts:
    paths: [.smelt/bin/smelt]
    expire_in: 1 day

.smelt-step:
  stage: check
  image: rust:latest
  rules:
    # Push to the cache only from the default branch; read-only elsewhere.
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
      variables:
        SMELT_PUSH: "1"
    - when: on_success
  before_script:
    - export PATH="$CI_PROJECT_DIR/.smelt/bin:$PATH"
    - if [ "$SMELT_PUSH" != 1 ]; then unset SMELT_SIGNING_KEY; fi
`)
	for _, j := range jobs {
		fmt.Fprintf(&b, "\n%s:\n  extends: .smelt-step\n  needs:\n    - job: smelt\n      artifacts: true\n", j.ID)
		for _, n := range j.Needs {
			fmt.Fprintf(&b, "    - job: %s\n      artifacts: false\n", n)
		}
		b.WriteString("  script:\n")
		for _, c := range j.rustup(o.Toolchain) {
			fmt.Fprintf(&b, "    - %s\n", yamlQuote(c))
		}
		if len(j.Tools) > 0 {
			// Prebuilt binaries through cargo-binstall: cargo install would
			// compile them for minutes.
			b.WriteString("    - " + yamlQuote("curl -L --proto '=https' --tlsv1.2 -sSf https://raw.githubusercontent.com/cargo-bins/cargo-binstall/main/install-from-binstall-release.sh | bash") + "\n")
			fmt.Fprintf(&b, "    - %s\n", yamlQuote("cargo binstall --no-confirm --locked "+strings.Join(j.Tools, " ")))
		}
		fmt.Fprintf(&b, "    - %s\n", yamlQuote("smelt check "+shellQuote(j.Step)))
	}
	return b.String()
}
