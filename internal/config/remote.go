package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"smelt/internal/trust"
)

// RemoteSchemes are the URL schemes a remote cache may use.
var RemoteSchemes = []string{"file", "http", "https", "s3", "grpc", "grpcs"}

// CheckRemoteURL says what is wrong with a remote cache's URL, or "".
func CheckRemoteURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return fmt.Sprintf("remote %q is not a URL", s)
	}
	if !slices.Contains(RemoteSchemes, strings.ToLower(u.Scheme)) {
		return fmt.Sprintf("remote %q has unknown scheme %q", s, u.Scheme)
	}
	return ""
}

const remoteURLFix = "write file:///PATH, http(s)://HOST/PREFIX, s3://BUCKET/PREFIX or grpc(s)://HOST:PORT[/INSTANCE]"

// remote validates [remote].
func (p *parser) remote(r *rawRemote) Remote {
	if r == nil {
		return Remote{}
	}
	out := Remote{Line: p.ix.line("remote")}
	switch v := r.URL.(type) {
	case nil:
	case string:
		out.URLs = []string{v}
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				p.add(p.ix.line("remote", "url"), `write url = ["s3://BUCKET/PREFIX", …]`, "url in [remote] holds %s, not a string", article(tomlTypeName(x)))
				return out
			}
			out.URLs = append(out.URLs, s)
		}
	default:
		p.add(p.ix.line("remote", "url"), `write url = ["s3://BUCKET/PREFIX", …]`, "url in [remote] is %s, not a list of strings", article(tomlTypeName(v)))
	}
	for _, u := range out.URLs {
		if msg := CheckRemoteURL(u); msg != "" {
			p.add(p.ix.line("remote", "url"), remoteURLFix, "url in [remote]: %s", msg)
		}
	}
	if r.Push != nil {
		out.Push = *r.Push
	}
	if r.Exec != nil {
		out.Executor = *r.Exec
		if u, err := url.Parse(out.Executor); err != nil || u.Scheme != "grpc" || u.Port() == "" {
			p.add(p.ix.line("remote", "executor"), `write executor = "grpc://HOST:PORT[/INSTANCE]"`, "executor in [remote] is %q, not a Remote Execution engine's address", out.Executor)
		}
	}
	if r.Trusted != nil {
		out.TrustedKeys = slices.Clone(*r.Trusted)
		if _, err := trust.ParsePublicKeys(out.TrustedKeys); err != nil {
			p.add(p.ix.line("remote", "trusted-public-keys"), "", "trusted-public-keys in [remote]: %v", err)
		}
	}
	return out
}
