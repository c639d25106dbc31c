package skeleton

// StubRustc is a rustc workspace wrapper for the deps step. There every
// workspace member is a stub that must fail; cargo runs the workspace
// wrapper only for members (their build scripts included), so failing
// here, with the stubs' own message, spares a rustc start per stub
// (about 40 ms each, on every warm-up). Cargo's queries (`-vV`, `--print`)
// go to rustc unchanged: what cargo learns of the compiler, which enters
// every dependency's fingerprint, is the same as without the wrapper, and
// the heirs, run without it, find the dependencies fresh. Non-member build
// scripts do not see RUSTC_WORKSPACE_WRAPPER, so their compiler probes are
// unaffected. The stubs' compile_error! stays for what does not go through
// the wrapper (rustdoc).
const StubRustc = `#!/bin/sh
# smelt: the deps step's rustc workspace wrapper (see skeleton.StubRustc).
case $1 in -*) exec "${RUSTC:-rustc}" "$@" ;; esac
for a in "$@"; do
  case $a in -vV|-V|--version|--print|--print=*) exec "$@" ;; esac
done
prev=
for a in "$@"; do
  if [ "$prev" = --crate-name ] && [ "$a" != ___ ]; then
    echo "error: ` + Marker + `" >&2
    exit 1
  fi
  prev=$a
done
exec "$@"
`
