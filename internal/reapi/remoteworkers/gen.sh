#!/bin/sh
# Regenerates the Remote Workers API's Go code from the descriptors inside
# BuildGrid's wheel (it ships the compiled _pb2 modules, not the .proto
# files): a small Python step writes their FileDescriptorSet, protoc reads
# it. Needs the BuildGrid 0.9.1 venv (.ci/run makes it), protoc, and
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
set -eu
cd "$(dirname "$0")"
venv=${SMELT_BGD_VENV:-$HOME/.cache/smelt-ci/buildgrid-0.9.1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/python" - "$tmp/set.pb" <<'PY'
import sys
from google.protobuf import descriptor_pb2
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2, command_pb2, worker_pb2

out = descriptor_pb2.FileDescriptorSet()
seen = set()
def add(f):
    # Dependencies first, as protoc wants them.
    if f.name in seen:
        return
    seen.add(f.name)
    for d in f.dependencies:
        add(d)
    f.CopyToProto(out.file.add())
for m in (bots_pb2, command_pb2, worker_pb2):
    add(m.DESCRIPTOR)
open(sys.argv[1], "wb").write(out.SerializeToString())
PY
gobin=$(go env GOBIN)
gobin=${gobin:-$(go env GOPATH)/bin}
pkg="smelt/internal/reapi/remoteworkers;remoteworkers"
src=google/devtools/remoteworkers/v1test2
m=""
for f in bots command worker; do
  m="$m,M$src/$f.proto=$pkg"
done
protoc --descriptor_set_in="$tmp/set.pb" \
  --plugin=protoc-gen-go="$gobin/protoc-gen-go" --plugin=protoc-gen-go-grpc="$gobin/protoc-gen-go-grpc" \
  --go_out="paths=source_relative$m:$tmp" --go-grpc_out="paths=source_relative$m:$tmp" \
  $src/bots.proto $src/command.proto $src/worker.proto
cp "$tmp/$src"/*.go .
