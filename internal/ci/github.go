package ci

import (
	"fmt"
	"strings"
)

// GitHub writes a GitHub Actions workflow running jobs.
func GitHub(jobs []Job, o Options) string {
	var b strings.Builder
	b.WriteString(header("smelt ci github", o, `# Settings > Secrets and variables > Actions:
#   variable SMELT_REMOTE       the remote cache's URL
#   variable SMELT_TRUST        the public key (NAME:BASE64) results must be signed with
#   secret SMELT_SIGNING_KEY    the private key, written to a file on the default branch only
#   the remote's credentials, those its backend needs:
#     secret SMELT_REMOTE_TOKEN     the bearer token of an http(s):// or grpc(s):// remote
#     secrets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, variable AWS_REGION,
#     and for an S3-compatible server variable AWS_ENDPOINT_URL_S3: an s3:// remote
#   variable SMELT_GIT          the git repository smelt is built from, unless set below
#   variable SMELT_REF          its branch, tag or commit (default: main), unless set below
`))
	b.WriteString(`
name: smelt

on:
  push:
  pull_request:
  workflow_dispatch:

permissions:
  contents: read

env:
  SMELT_REMOTE: ${{ vars.SMELT_REMOTE }}
  SMELT_TRUST: ${{ vars.SMELT_TRUST }}
  # Push to the cache only from the default branch; read-only elsewhere.
  SMELT_PUSH: ${{ github.event_name == 'push' && github.ref_name == github.event.repository.default_branch && '1' || '' }}
  CARGO_TERM_COLOR: always

jobs:
  smelt:
    name: build smelt
    runs-on: ubuntu-latest
    steps:
      - uses: actions/setup-go@v5
        with:
          # smelt's go.mod names the Go it needs; the go command fetches it
          # when this one is older.
          go-version: stable
          cache: false
      - name: Build smelt
        env:
`)
	git, ref := "${{ vars.SMELT_GIT }}", "${{ vars.SMELT_REF || 'main' }}"
	if o.SmeltGit != "" {
		git = o.SmeltGit
	}
	if o.SmeltRef != "" {
		ref = o.SmeltRef
	}
	fmt.Fprintf(&b, "          SMELT_GIT: %s\n          SMELT_REF: %s\n", yamlQuote(git), yamlQuote(ref))
	b.WriteString("        run: |\n")
	for _, l := range buildSmelt("$RUNNER_TEMP", "$RUNNER_TEMP/bin/smelt") {
		b.WriteString("          " + l + "\n")
	}
	b.WriteString(`      - uses: actions/upload-artifact@v4
        with:
          name: smelt
          path: ${{ runner.temp }}/bin/smelt
          retention-days: 1
`)
	for _, j := range jobs {
		fmt.Fprintf(&b, "\n  %s:\n    name: %s\n", j.ID, yamlQuote(j.Step))
		fmt.Fprintf(&b, "    needs: [%s]\n", strings.Join(append([]string{"smelt"}, j.Needs...), ", "))
		b.WriteString(`    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/download-artifact@v4
        with:
          name: smelt
          path: ${{ runner.temp }}/bin
      - name: Install smelt and the Rust toolchain
        run: |
          chmod +x "$RUNNER_TEMP/bin/smelt"
          echo "$RUNNER_TEMP/bin" >> "$GITHUB_PATH"
`)
		for _, c := range j.rustup(o.Toolchain) {
			b.WriteString("          " + c + "\n")
		}
		if len(j.Tools) > 0 {
			// Prebuilt binaries: cargo install would compile them for minutes.
			fmt.Fprintf(&b, "      - uses: taiki-e/install-action@v2\n        with:\n          tool: %s\n", strings.Join(j.Tools, ","))
		}
		b.WriteString(`      - name: Signing key
        if: env.SMELT_PUSH == '1'
        env:
          KEY: ${{ secrets.SMELT_SIGNING_KEY }}
        run: |
          umask 077
          printf '%s\n' "$KEY" > "$RUNNER_TEMP/smelt-signing.key"
          echo "SMELT_SIGNING_KEY=$RUNNER_TEMP/smelt-signing.key" >> "$GITHUB_ENV"
`)
		fmt.Fprintf(&b, "      - name: %s\n", yamlQuote("smelt check "+j.Step))
		// Secrets reach a step only through env; only smelt's step sees the
		// remote's credentials (not the actions before it). Those not set
		// are empty, which smelt and the AWS SDK read as unset.
		b.WriteString(`        env:
          SMELT_REMOTE_TOKEN: ${{ secrets.SMELT_REMOTE_TOKEN }}
          AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}
          AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
          AWS_REGION: ${{ vars.AWS_REGION }}
          AWS_ENDPOINT_URL_S3: ${{ vars.AWS_ENDPOINT_URL_S3 }}
`)
		fmt.Fprintf(&b, "        run: %s\n", yamlQuote("smelt check "+shellQuote(j.Step)))
	}
	return b.String()
}

// yamlQuote writes s as a YAML scalar: plain when that reads back as the
// same string, else double-quoted.
func yamlQuote(s string) string {
	plain := s != "" && !strings.ContainsAny(s, "#:'\"{}[],&*!|>%@`\\") && strings.TrimSpace(s) == s &&
		!strings.ContainsAny(s[:1], "-?") && !isYAMLWord(s)
	if plain || strings.HasPrefix(s, "${{") && !strings.ContainsAny(s, "\"\n") {
		return s
	}
	if !strings.ContainsAny(s, "'\n") {
		return "'" + s + "'"
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// isYAMLWord reports a plain scalar YAML reads as something other than a
// string: a boolean, null or a number.
func isYAMLWord(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "null", "~", "y", "n":
		return true
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789.+-eE_xXoO", r) {
			return false
		}
	}
	return true
}
