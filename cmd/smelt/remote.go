package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"smelt/internal/config"
	"smelt/internal/run"
	"smelt/internal/store"
)

// remoteFlags are the remote cache's flags; each has a variable and a
// smelt.toml key (see remoteConfig for which wins).
type remoteFlags struct {
	urls       listFlag
	trust      listFlag
	push       bool
	signingKey string
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// remoteConfig merges the flags, the environment and [remote]:
//   - remotes: --remote (repeatable), else SMELT_REMOTE (space-separated),
//     else url in [remote];
//   - pushing: --push, else SMELT_PUSH (1 or 0), else push in [remote];
//   - signing key: --signing-key, else SMELT_SIGNING_KEY;
//   - trusted keys: all of --trust, SMELT_TRUST (space-separated) and
//     trusted-public-keys in [remote];
//   - the time a remote may take to answer: SMELT_REMOTE_TIMEOUT (10s).
func remoteConfig(f remoteFlags, cfg *config.Config) (run.RemoteConfig, error) {
	rc := run.RemoteConfig{URLs: cfg.Remote.URLs, Push: cfg.Remote.Push, SigningKey: f.signingKey}
	if env := strings.Fields(os.Getenv("SMELT_REMOTE")); len(env) > 0 {
		rc.URLs = env
	}
	if len(f.urls) > 0 {
		rc.URLs = f.urls
	}
	for _, u := range rc.URLs {
		if msg := config.CheckRemoteURL(u); msg != "" {
			return rc, fmt.Errorf("%s: write file:///PATH, http(s)://HOST/PREFIX, s3://BUCKET/PREFIX or grpc(s)://HOST:PORT[/INSTANCE]", msg)
		}
	}
	switch v := os.Getenv("SMELT_PUSH"); v {
	case "":
	case "1", "true", "yes":
		rc.Push = true
	case "0", "false", "no":
		rc.Push = false
	default:
		return rc, fmt.Errorf("SMELT_PUSH=%s: set it to 1 to push, 0 not to", v)
	}
	rc.Push = rc.Push || f.push
	if rc.SigningKey == "" {
		rc.SigningKey = os.Getenv("SMELT_SIGNING_KEY")
	}
	if v := os.Getenv("SMELT_REMOTE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return rc, fmt.Errorf("SMELT_REMOTE_TIMEOUT=%s: write a duration such as 30s", v)
		}
		rc.Timeout = d
	}
	rc.Trusted = append(append(append([]string(nil), cfg.Remote.TrustedKeys...), strings.Fields(os.Getenv("SMELT_TRUST"))...), f.trust...)
	return rc, nil
}

// openRemotes opens the run's remote caches (nil when there are none) and
// makes the store read through them.
func openRemotes(ctx context.Context, o options, cfg *config.Config, st *store.Store, warn func(string)) (*run.Remotes, error) {
	rc, err := remoteConfig(o.remote, cfg)
	if err != nil {
		return nil, err
	}
	if len(rc.URLs) == 0 && !rc.Push {
		return nil, nil
	}
	r, err := run.OpenRemotes(ctx, rc, warn)
	if err != nil {
		return nil, err
	}
	st.SetFetcher(r)
	return r, nil
}

// remoteSummary reports the bytes the remote caches moved.
func remoteSummary(o options, rep *run.Report, pushing bool) {
	if o.quiet && !o.asJSON {
		return
	}
	ev := map[string]any{"event": "remote", "downloaded": rep.Down, "uploaded": rep.Up, "requests": rep.Requests}
	text := fmt.Sprintf("remote: %s downloaded, %s uploaded in %d requests", bytesText(rep.Down), bytesText(rep.Up), rep.Requests)
	if pushing {
		ev["pushed"] = rep.Pushed.Results
		ev["objects_put"] = rep.Pushed.Objects.Put
		ev["layers_put"] = rep.Pushed.Layers.Put
		ev["packs_put"] = rep.Pushed.Objects.Packs
		text += fmt.Sprintf(" (pushed %d results: %d new objects, %d of them in %d packs, %d new layers)", rep.Pushed.Results, rep.Pushed.Objects.Put, rep.Pushed.Objects.Packed, rep.Pushed.Objects.Packs, rep.Pushed.Layers.Put)
	}
	say(o, ev, "%s", text)
}

func bytesText(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// pushCmd is smelt push [STEP...]: the steps are brought up to date (built
// where needed) and uploaded, signed, to the first remote.
func pushCmd(ctx context.Context, o options, names []string) (int, error) {
	o.remote.push = true
	return checkVerb(ctx, o, "push", names)
}

// pullCmd is smelt pull [STEP...]: the steps are brought up to date (from
// the remotes where they have them) and their bytes (target/ and output)
// downloaded into the store, for working offline.
func pullCmd(ctx context.Context, o options, names []string) (int, error) {
	o.pullBytes = true
	return checkVerb(ctx, o, "pull", names)
}
