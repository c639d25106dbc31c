package run

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"smelt/internal/par"
	"smelt/internal/plan"
	"smelt/internal/remote"
	"smelt/internal/store"
	"smelt/internal/trust"
)

// RemoteConfig says which remote caches a run uses and how.
type RemoteConfig struct {
	URLs []string // read in this order
	// Push uploads what the run built, signed with SigningKey, to the
	// first remote (the team's writable cache; the others are read-only
	// fallbacks).
	Push       bool
	SigningKey string   // file written by smelt key generate
	Trusted    []string // NAME:BASE64 public keys whose results are used
	Timeout    time.Duration
}

// Remotes are a run's remote caches: results are looked up in each in
// order after a local miss, and used only when a trusted key signed them;
// layers and objects are fetched when a restore needs them (the store
// reads through Remotes, see store.Fetcher). A remote that fails is
// warned about once and not asked again in this run: the build goes on
// locally, and its exit code is the local build's.
type Remotes struct {
	ctx      context.Context
	list     []*remoteConn
	trusted  []trust.PublicKey
	key      *trust.SecretKey
	push     bool
	warn     func(string)
	stats    remote.Stats
	lostOnce sync.Once
}

type remoteConn struct {
	url    string
	b      remote.Backend // nil if it could not be opened
	mu     sync.Mutex
	off    bool            // failed: not asked again in this run
	warned map[string]bool // warning classes said
	// indexes are the pack indexes read in this run (nil: the layer has
	// none), so that a layer costs one index GET however many restores
	// and pushes need its objects.
	indexes map[store.LayerID]*remote.PackIndex
}

// packIndex reads layer's pack index from c, once a run.
func (c *remoteConn) packIndex(ctx context.Context, layer store.LayerID) (*remote.PackIndex, error) {
	c.mu.Lock()
	x, ok := c.indexes[layer]
	c.mu.Unlock()
	if ok {
		return x, nil
	}
	x, err := remote.ReadPackIndex(ctx, c.b, remote.ID(layer))
	if errors.Is(err, remote.ErrNotFound) {
		x, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.indexes == nil {
		c.indexes = map[store.LayerID]*remote.PackIndex{}
	}
	c.indexes[layer] = x
	c.mu.Unlock()
	return x, nil
}

// OpenRemotes opens the remote caches of rc. warn prints one warning line
// (the message without "warning: "). The error is the user's to fix (a
// trusted key that is not NAME:BASE64); a remote that cannot be opened,
// or pushing without a remote or a readable signing key, is only warned
// about.
func OpenRemotes(ctx context.Context, rc RemoteConfig, warn func(string)) (*Remotes, error) {
	r := &Remotes{ctx: ctx, push: rc.Push, warn: warn}
	var err error
	if r.trusted, err = trust.ParsePublicKeys(rc.Trusted); err != nil {
		return nil, err
	}
	if rc.Push {
		// Pushing is an extra: set up wrongly (as in a CI job whose secret
		// is missing), it is a warning and the build goes on.
		switch k, err := loadKey(rc); {
		case len(rc.URLs) == 0:
			warn("pushing needs a remote cache: nothing is pushed (pass --remote URL, set SMELT_REMOTE or url in [remote])")
			r.push = false
		case err != nil:
			warn(err.Error() + "; nothing is pushed")
			r.push = false
		default:
			r.key = &k
		}
	}
	timeout := rc.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	for _, u := range rc.URLs {
		c := &remoteConn{url: u}
		b, err := remote.Open(ctx, u, remote.Options{Timeout: timeout, Stats: &r.stats})
		if err != nil {
			r.warnf(c, "open", "remote %s cannot be used: %v; building without it", u, err)
			c.off = true
		}
		c.b = b
		r.list = append(r.list, c)
	}
	return r, nil
}

// loadKey reads the signing key pushes need.
func loadKey(rc RemoteConfig) (trust.SecretKey, error) {
	if rc.SigningKey == "" {
		return trust.SecretKey{}, errors.New("pushing needs a signing key (pass --signing-key FILE or set SMELT_SIGNING_KEY; smelt key generate NAME -o FILE makes one)")
	}
	return trust.LoadSecretKey(rc.SigningKey)
}

// Close closes the connections.
func (r *Remotes) Close() {
	for _, c := range r.list {
		if c.b != nil {
			c.b.Close()
		}
	}
}

// Requests is how many requests the remotes were sent so far.
func (r *Remotes) Requests() int64 { return r.stats.Requests.Load() }

// Bytes is what the remotes sent and received so far, on the wire.
func (r *Remotes) Bytes() (down, up int64) { return r.stats.Down.Load(), r.stats.Up.Load() }

// Pushing reports whether the run uploads what it builds.
func (r *Remotes) Pushing() bool { return r != nil && r.push }

// warnf prints a warning of class what about c, once per run.
func (r *Remotes) warnf(c *remoteConn, what, format string, args ...any) {
	c.mu.Lock()
	if c.warned == nil {
		c.warned = map[string]bool{}
	}
	first := !c.warned[what]
	c.warned[what] = true
	c.mu.Unlock()
	if first && r.warn != nil {
		r.warn(fmt.Sprintf(format, args...))
	}
}

// usable are the remotes still asked.
func (r *Remotes) usable() []*remoteConn {
	var out []*remoteConn
	for _, c := range r.list {
		c.mu.Lock()
		if !c.off {
			out = append(out, c)
		}
		c.mu.Unlock()
	}
	return out
}

// fail turns c off for the rest of the run, with one warning.
func (r *Remotes) fail(c *remoteConn, err error) {
	if r.ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	c.off = true
	c.mu.Unlock()
	r.warnf(c, "fail", "%v; remote %s is not used for the rest of this run (steps build locally)", err, c.url)
}

// Lookup finds the result of key in the remotes, in order: the first one
// that a trusted key signed. step names the step, for warnings.
func (r *Remotes) Lookup(ctx context.Context, key store.Key, step string) *Result {
	for _, c := range r.usable() {
		env, err := remote.ReadVerified(ctx, c.b, remote.Results, remote.Ref{ID: remote.ID(key), Size: -1})
		if errors.Is(err, remote.ErrNotFound) {
			continue
		}
		if err != nil {
			r.fail(c, err)
			continue
		}
		rec, _, err := trust.Verify(env, string(key), r.trusted)
		if err != nil {
			if len(r.trusted) == 0 && errors.Is(err, trust.ErrUntrusted) {
				err = fmt.Errorf("%w (no key is trusted: pass --trust NAME:BASE64, set SMELT_TRUST or trusted-public-keys in [remote])", err)
			}
			r.warnf(c, "trust", "remote %s: the result of step %s is not used: %v; building locally", c.url, step, err)
			continue
		}
		var res Result
		if err := json.Unmarshal(rec, &res); err != nil || res.Key != key {
			r.warnf(c, "trust", "remote %s: the result of step %s is signed but not a result of its key; building locally", c.url, step)
			continue
		}
		return &res
	}
	return nil
}

// FetchLayer implements store.Fetcher.
func (r *Remotes) FetchLayer(id store.LayerID) ([]byte, error) {
	absent := 0
	for _, c := range r.usable() {
		b, err := remote.ReadVerified(r.ctx, c.b, remote.Layers, remote.Ref{ID: remote.ID(id), Size: -1})
		if errors.Is(err, remote.ErrNotFound) {
			absent++
			continue
		}
		if err != nil {
			r.fail(c, err)
			continue
		}
		return b, nil
	}
	return nil, r.lost(absent, "layer "+string(id))
}

// lost turns every remote off when the store needs a blob none of them
// has (mostly: a pulled result names it, and the remote expired or lost
// it): the store drops the results that need it, and the next pass must
// build them here rather than pull the same results again.
func (r *Remotes) lost(absent int, what string) error {
	if absent == 0 {
		return fmt.Errorf("no usable remote cache for %s", what)
	}
	err := fmt.Errorf("%s is neither in the store nor in any remote cache", what)
	r.lostOnce.Do(func() {
		for _, c := range r.list {
			c.mu.Lock()
			c.off = true
			c.mu.Unlock()
		}
		if r.ctx.Err() == nil && r.warn != nil {
			r.warn(err.Error() + "; remote caches are not used for the rest of this run (steps build locally)")
		}
	})
	return err
}

// FetchObject implements store.Fetcher.
func (r *Remotes) FetchObject(hash store.ObjectID, size int64, f *os.File) error {
	absent := 0
	for _, c := range r.usable() {
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		rc, err := remote.GetVerified(r.ctx, c.b, remote.Objects, remote.Ref{ID: remote.ID(hash), Size: size})
		if errors.Is(err, remote.ErrNotFound) {
			absent++
			continue
		}
		if err == nil {
			_, err = io.Copy(f, rc)
			rc.Close()
		}
		if err != nil {
			r.fail(c, err)
			continue
		}
		return nil
	}
	return r.lost(absent, "object "+string(hash))
}

// FetchPacked implements store.PackFetcher: the small objects of want
// that the remotes keep in packs come with one pack index GET per layer
// and a few range GETs per pack (see remote.ReadPacked). What a remote
// has no index for (pushed by an older smelt) is left to FetchObject.
func (r *Remotes) FetchPacked(want []store.Wanted, put func(store.Entry, []byte) error) {
	byHash := map[remote.ID]store.Entry{}
	var layers []store.LayerID
	seen := map[store.LayerID]bool{}
	for _, w := range want {
		if len(w.Layers) == 0 || w.Size > remote.PackMaxObject {
			continue
		}
		byHash[remote.ID(w.Hash)] = w.Entry
		for _, l := range w.Layers {
			if !seen[l] {
				seen[l] = true
				layers = append(layers, l)
			}
		}
	}
	for _, c := range r.usable() {
		if len(byHash) == 0 || r.ctx.Err() != nil {
			return
		}
		if !remote.Packing(c.b) {
			continue
		}
		idx := make([]*remote.PackIndex, len(layers))
		err := par.Each(16, indexes(len(layers)), func(i int) error {
			x, err := c.packIndex(r.ctx, layers[i])
			idx[i] = x
			return err
		})
		if err != nil {
			r.fail(c, err)
			continue
		}
		var reads []remote.PackedRead
		taken := map[remote.ID]bool{}
		for _, x := range idx {
			if x == nil {
				continue
			}
			for _, o := range x.Objects {
				if e, ok := byHash[o.ID]; ok && !taken[o.ID] && o.Size == e.Size {
					taken[o.ID] = true
					reads = append(reads, remote.PackedRead{Pack: x.Packs[o.Pack], PackedObject: o})
				}
			}
		}
		var mu sync.Mutex
		got := map[remote.ID]bool{}
		err = remote.ReadPacked(r.ctx, c.b, reads, 16, func(ref remote.Ref, data []byte) error {
			// A local failure to store it leaves it missing: FetchObject
			// or the restore reports it.
			if put(byHash[ref.ID], data) == nil {
				mu.Lock()
				got[ref.ID] = true
				mu.Unlock()
			}
			return nil
		})
		for id := range got {
			delete(byHash, id)
		}
		var lost *remote.MissingPackError
		switch {
		case errors.As(err, &lost):
			// As for an object the remote lost: the store drops what
			// needs it, and the next pass builds it here.
			r.lost(1, "pack "+string(lost.Pack)+" (objects of a layer)")
			return
		case err != nil:
			r.fail(c, err)
		}
	}
}

// indexes is 0..n-1.
func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// Pushed says what a push did.
type Pushed struct {
	Results, Skipped int // results pushed; results left out (their bytes are not in this store)
	Objects, Layers  remote.Uploaded
}

// Push uploads results to the first remote: the objects and layers it
// lacks, then each result signed, last, so that a result a reader finds
// is complete. A result whose layers are not in the local store (it was
// pulled without its bytes) is left out. An object the store lacks is
// fetched, through the store's fetcher, only when the remote lacks it
// too: a step built on pulled artifacts inherits layers whose files a
// restore leaves out and writes itself (cargo's .rustc_info.json, rustc's
// incremental state), and its result needs them all on the remote.
func (r *Remotes) Push(ctx context.Context, st *store.Store, results []*Result) (Pushed, error) {
	var p Pushed
	if len(r.list) == 0 || r.key == nil {
		return p, nil
	}
	c := r.list[0]
	if c.b == nil {
		return p, fmt.Errorf("remote %s could not be opened; nothing pushed", c.url)
	}
	layers := map[store.LayerID][]byte{}
	objects := map[store.ObjectID]store.Entry{}
	owned := map[store.LayerID][]store.ObjectID{} // "" for logs
	var envs []remote.Ref
	envBytes := map[remote.ID][]byte{}
	for _, res := range results {
		ls, objs, own, ok := localClosure(st, res)
		if !ok {
			p.Skipped++
			continue
		}
		clean := *res
		clean.Pulled = false
		rec, err := json.Marshal(&clean)
		if err != nil {
			return p, err
		}
		env, err := trust.Sign(*r.key, string(res.Key), rec)
		if err != nil {
			return p, err
		}
		for id, b := range ls {
			layers[id] = b
		}
		for h, e := range objs {
			objects[h] = e
		}
		for id, hs := range own {
			if _, dup := owned[id]; !dup || id == "" {
				owned[id] = append(owned[id], hs...)
			}
		}
		id := remote.ID(res.Key)
		if _, dup := envBytes[id]; !dup {
			envs = append(envs, remote.Ref{ID: id, Size: int64(len(env))})
			envBytes[id] = env
		}
		p.Results++
	}
	var objLayers []remote.LayerObjects
	for id, hs := range owned {
		l := remote.LayerObjects{Layer: remote.ID(id)}
		for _, h := range hs {
			l.Objects = append(l.Objects, remote.Ref{ID: remote.ID(h), Size: objects[h].Size})
		}
		sort.Slice(l.Objects, func(i, j int) bool { return l.Objects[i].ID < l.Objects[j].ID })
		objLayers = append(objLayers, l)
	}
	sort.Slice(objLayers, func(i, j int) bool { return objLayers[i].Layer < objLayers[j].Layer })
	var layerRefs []remote.Ref
	for id, b := range layers {
		layerRefs = append(layerRefs, remote.Ref{ID: remote.ID(id), Size: int64(len(b))})
	}
	sort.Slice(layerRefs, func(i, j int) bool { return layerRefs[i].ID < layerRefs[j].ID })
	// The layers the remote lacks, asked once: packing needs to know, and
	// they are put after their objects.
	missingLayers, err := remote.Missing(ctx, c.b, remote.Layers, layerRefs)
	if err != nil {
		return p, err
	}
	lacking := map[remote.ID]bool{}
	for _, ref := range missingLayers {
		lacking[ref.ID] = true
	}
	p.Objects, err = remote.UploadLayers(ctx, c.b, objLayers, lacking, func(ref remote.Ref) (io.ReadCloser, error) {
		h := store.ObjectID(ref.ID)
		if !st.HasObject(h) {
			if err := st.FetchTree(store.Tree{string(h): objects[h]}); err != nil {
				return nil, err
			}
		}
		return os.Open(st.ObjectPath(h))
	}, 16)
	if err != nil {
		return p, err
	}
	p.Layers, err = remote.PutAll(ctx, c.b, remote.Layers, missingLayers, func(ref remote.Ref) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layers[store.LayerID(ref.ID)])), nil
	}, 16)
	p.Layers.Asked = len(layerRefs)
	if err != nil {
		return p, err
	}
	// Results last, so that a result a reader finds is complete.
	_, err = remote.UploadMissing(ctx, c.b, remote.Results, envs, func(ref remote.Ref) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(envBytes[ref.ID])), nil
	}, 16)
	if err != nil {
		return p, err
	}
	return p, nil
}

// localClosure is what a result needs on a remote: its layers (with their
// ancestors), the objects they and its log name, by hash (the store may
// lack some: see Push), and which layer names which objects (own[""]: the
// log's). ok is false when a layer is not in the local store.
func localClosure(st *store.Store, res *Result) (layers map[store.LayerID][]byte, objects map[store.ObjectID]store.Entry, own map[store.LayerID][]store.ObjectID, ok bool) {
	layers, objects, own = map[store.LayerID][]byte{}, map[store.ObjectID]store.Entry{}, map[store.LayerID][]store.ObjectID{}
	for _, id := range []store.LayerID{res.Artifacts, res.Seed, res.Output} {
		for id != "" {
			if _, seen := layers[id]; seen {
				break
			}
			b, err := st.LayerBytes(id)
			if err != nil {
				return nil, nil, nil, false
			}
			var l store.Layer
			if err := json.Unmarshal(b, &l); err != nil {
				return nil, nil, nil, false
			}
			layers[id] = b
			st.NoteOrigins(id, &l) // to fetch what the store lacks
			mine := map[store.ObjectID]bool{}
			for _, e := range l.Entries {
				if (e.Type == store.TypeFile || e.Type == store.TypeExec) && !e.Inline() {
					if _, dup := objects[e.Hash]; !dup {
						objects[e.Hash] = e
					}
					if !mine[e.Hash] {
						mine[e.Hash] = true
						own[id] = append(own[id], e.Hash)
					}
				}
			}
			id = l.Parent
		}
	}
	if res.Log != "" {
		if fi, err := os.Stat(st.ObjectPath(res.Log)); err == nil {
			objects[res.Log] = store.Entry{Path: "log", Type: store.TypeFile, Size: fi.Size(), Hash: res.Log}
			own[""] = append(own[""], res.Log)
		}
	}
	return layers, objects, own, true
}

// pull looks a step's key up in the remote caches after a local miss and
// stores the result found (only the record: its layers are fetched when a
// restore needs them).
func (e *engine) pull(ctx context.Context, n *plan.Node, key store.Key) (*Result, error) {
	if e.opt.Remotes == nil {
		return nil, nil
	}
	res := e.opt.Remotes.Lookup(ctx, key, n.Name())
	if res == nil {
		return nil, nil
	}
	res.Pulled = true
	if err := e.p.st.SaveResult(res); err != nil {
		return nil, err
	}
	return res, nil
}

// pushResults uploads, when pushing, the results of the steps that are up
// to date in the local store. A failure is one warning: the build's result
// stands.
func (e *engine) pushResults(ctx context.Context, rep *Report) {
	r := e.opt.Remotes
	if !r.Pushing() || ctx.Err() != nil {
		return
	}
	var results []*Result
	for _, s := range rep.Steps {
		if (s.Status == Built || s.Status == Cached) && s.Result != nil {
			results = append(results, s.Result)
		}
	}
	p, err := r.Push(ctx, e.p.st, results)
	rep.Pushed = p
	if err != nil && ctx.Err() == nil {
		r.warnf(r.list[0], "push", "pushing to remote %s failed: %v; the build is not affected, but the remote lacks its results", r.list[0].url, err)
	}
}

// FetchBytes brings the layers and objects of every result of rep into
// the store (smelt pull): what "build without the bytes" leaves remote.
func FetchBytes(st *store.Store, rep *Report) error {
	for _, s := range rep.Steps {
		if s.Result == nil {
			continue
		}
		for _, id := range []store.LayerID{s.Result.Artifacts, s.Result.Output} {
			if id == "" {
				continue
			}
			t, err := st.Flatten(id)
			if err != nil {
				return fmt.Errorf("pull step %s: %w", s.Name, err)
			}
			if err := st.FetchTree(t); err != nil {
				return fmt.Errorf("pull step %s: %w", s.Name, err)
			}
		}
	}
	return nil
}
