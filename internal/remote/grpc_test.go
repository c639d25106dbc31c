package remote

import (
	"testing"
)

func TestGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("BuildGrid takes ~10 s of CPU to start: not in -short")
	}
	addr := startBuildGrid(t)
	suite{
		open: func(t *testing.T, opts Options) Backend {
			b, err := Open(t.Context(), "grpc://"+addr+"/main", opts)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		verifiesUploads: true,
		hasRequests:     1, // one FindMissingBlobs
		uploadRequests:  3, // FindMissingBlobs, one BatchUpdateBlobs of 199, the big one alone
	}.run(t)
}

func TestGRPCDown(t *testing.T) {
	downTests(t, func(addr string) string { return "grpc://" + addr + "/main" })
}
