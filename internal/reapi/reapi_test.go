package reapi

import "testing"

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
