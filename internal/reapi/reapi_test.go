package reapi

import (
	"context"
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestParseEngine(t *testing.T) {
	for _, c := range []struct {
		in       string
		addr     string
		instance string
		bad      bool
	}{
		{in: "grpc://127.0.0.1:50051", addr: "127.0.0.1:50051"},
		{in: "grpc://host:1/main", addr: "host:1", instance: "main"},
		{in: "grpc://host:1/a/b/", addr: "host:1", instance: "a/b"},
		{in: "grpc://host", bad: true},
		{in: "http://host:1", bad: true},
		{in: "host:1", bad: true},
	} {
		e, err := ParseEngine(c.in)
		if (err != nil) != c.bad || e.Addr != c.addr || e.Instance != c.instance {
			t.Errorf("ParseEngine(%q) = %+v, %v", c.in, e, err)
		}
		if err == nil && e.String() != "grpc://"+c.addr+map[bool]string{true: "", false: "/" + c.instance}[c.instance == ""] {
			t.Errorf("%q: String() = %q", c.in, e.String())
		}
	}
}

// The locality hint is BuildGrid's SchedulingMetadata, as its Python
// protobuf writes SchedulingMetadata(locality_hint="abc").
func TestWithLocality(t *testing.T) {
	md, _ := metadata.FromOutgoingContext(WithLocality(context.Background(), "abc"))
	if got := md.Get(localityHeader); len(got) != 1 || got[0] != "\n\x03abc" {
		t.Errorf("header %q = %q", localityHeader, got)
	}
	if _, ok := metadata.FromOutgoingContext(WithLocality(context.Background(), "")); ok {
		t.Errorf("an empty hint sent a header")
	}
}
