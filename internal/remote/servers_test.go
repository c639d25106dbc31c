package remote

// Real servers for the integration tests (package testsrv), each started
// on loopback in a temporary directory and stopped when its test ends. A
// test whose server is not installed is skipped with a message naming the
// install step (.ci/run installs all three); with SMELT_REQUIRE_TOOLS=1,
// as in CI, it fails instead.

import (
	"testing"

	"smelt/internal/testsrv"
)

func freePort(t *testing.T) int { return testsrv.FreePort(t) }

// startNginx: see testsrv.Nginx.
func startNginx(t *testing.T) (string, string) { return testsrv.Nginx(t) }

func versitygwPath() string { return testsrv.Versitygw() }

// startS3 runs versitygw and points the AWS variables at it.
func startS3(t *testing.T) string { return testsrv.S3(t) }

// makeBucket creates a bucket with the SDK, as a user's set-up would.
func makeBucket(t *testing.T, name string) { testsrv.MakeBucket(t, name) }

// startBuildGrid runs BuildGrid's CAS, ByteStream and action cache in
// memory, on instance "main"; it returns HOST:PORT.
func startBuildGrid(t *testing.T) string { return testsrv.BuildGridCache(t) }

// hungServer accepts connections and never answers.
func hungServer(t *testing.T) string { return testsrv.Hung(t) }

// garbageServer answers every connection with bytes of no protocol.
func garbageServer(t *testing.T) string { return testsrv.Garbage(t) }
