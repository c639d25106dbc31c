package config

import (
	"slices"
	"strings"
	"testing"
)

const testKey = "ci-1:Nm5ks4CfyHQC2eGVgeAtsdRWb3nI3Iii6rFttA3GyQA="

func TestRemote(t *testing.T) {
	steps := "[step.deps]\nkind = \"deps\"\n"
	for _, c := range []struct {
		name, text string
		want       Remote
		err        string // substring of the error; "" = none
	}{
		{"absent", steps, Remote{}, ""},
		{"list", steps + "[remote]\nurl = [\"s3://b/p\", \"grpc://h:1/i\"]\npush = true\ntrusted-public-keys = [\"" + testKey + "\"]\n",
			Remote{URLs: []string{"s3://b/p", "grpc://h:1/i"}, Push: true, TrustedKeys: []string{testKey}, Line: 3}, ""},
		{"one string", steps + "[remote]\nurl = \"file:///srv/cache\"\n", Remote{URLs: []string{"file:///srv/cache"}, Line: 3}, ""},
		{"only remote: default pipeline", "[remote]\nurl = \"file:///c\"\n", Remote{URLs: []string{"file:///c"}, Line: 1}, ""},
		{"bad scheme", steps + "[remote]\n\nurl = [\"ftp://x/y\"]\n", Remote{}, `smelt.toml:5: url in [remote]: remote "ftp://x/y" has unknown scheme "ftp"; write file:///PATH`},
		{"not a URL", steps + "[remote]\nurl = [\"cache\"]\n", Remote{}, `smelt.toml:4: url in [remote]: remote "cache" is not a URL`},
		{"number", steps + "[remote]\nurl = [1]\n", Remote{}, `smelt.toml:4: url in [remote] holds an integer`},
		{"bad key", steps + "[remote]\ntrusted-public-keys = [\"ci-1:abc\"]\n", Remote{}, `smelt.toml:4: trusted-public-keys in [remote]: public key "ci-1": not 32 bytes of base64`},
		{"push type", steps + "[remote]\npush = \"yes\"\n", Remote{}, `smelt.toml:4:`},
		{"unknown key", steps + "[remote]\nurls = []\n", Remote{}, `smelt.toml:4: unknown key "urls" in [remote]; did you mean "url"?`},
		{"executor", steps + "[remote]\nexecutor = \"grpc://127.0.0.1:50061/main\"\n", Remote{Executor: "grpc://127.0.0.1:50061/main", Line: 3}, ""},
		{"executor not grpc", steps + "[remote]\nexecutor = \"http://h:1\"\n", Remote{}, `smelt.toml:4: executor in [remote] is "http://h:1", not a Remote Execution engine's address; write executor = "grpc://HOST:PORT[/INSTANCE]"`},
		{"case", steps + "[Remote]\nurl = []\n", Remote{}, `smelt.toml:3: unknown table [Remote]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("smelt.toml", []byte(c.text))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Remote
			if !slices.Equal(got.URLs, c.want.URLs) || got.Push != c.want.Push || !slices.Equal(got.TrustedKeys, c.want.TrustedKeys) || got.Line != c.want.Line || got.Executor != c.want.Executor {
				t.Errorf("Remote = %+v, want %+v", got, c.want)
			}
			if len(cfg.Steps) == 0 {
				t.Error("no steps")
			}
		})
	}
}
