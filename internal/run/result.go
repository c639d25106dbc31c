package run

import (
	"smelt/internal/source"
	"smelt/internal/store"
)

// Result is a step's result record: the store's part (its key, the layers
// and log it references, when it was made; see store.Result) and the
// step's own fields, in one JSON object. It is what a remote cache holds,
// signed, under the step's key. The field names are those of every record
// written before the store's part was split off, so those read the same.
type Result struct {
	store.Result
	Step   string            `json:"step"`
	Kind   string            `json:"kind"`
	Inputs map[string]string `json:"inputs"`
	// ArtifactsID is the content identity of the flattened target/.
	ArtifactsID store.ContentID `json:"artifacts_id,omitempty"`
	// DepsID is the content identity of its dependencies' part alone: what
	// the steps after it that run cargo key on ("" for none: they use
	// ArtifactsID). See the inputs.
	DepsID   store.ContentID   `json:"deps_id,omitempty"`
	MaxMTime int64             `json:"max_mtime,omitempty"` // newest mtime in target/, for the mtime rule
	Source   []source.FileTime `json:"source,omitempty"`    // the source laid out for this step, with the mtimes it got
	// A deps step that also built the workspace's own code on its heirs'
	// source (see fusing) keeps that whole target/ as a seed (Seed): its
	// heirs start from it as from their own last target/. The fields of
	// the seed are named seed_*: the store drops them with a damaged seed.
	SeedSource   []source.FileTime `json:"seed_source,omitempty"`    // the source it was built from, with its mtimes
	SeedMaxMTime int64             `json:"seed_max_mtime,omitempty"` // its newest mtime
	Bins         map[string]string `json:"bins,omitempty"`           // binary name → workspace package that owns it
	Summary      string            `json:"summary,omitempty"`
	Seconds      float64           `json:"seconds"`
	Units        int               `json:"units,omitempty"` // cargo units its commands reported (compiler-artifact messages): the next run's progress total
}

// lookupResult returns the result stored for key, or nil.
func lookupResult(st *store.Store, key store.Key) (*Result, error) {
	var r Result
	ok, err := st.LookupResult(key, &r)
	if !ok {
		return nil, err
	}
	return &r, err
}
