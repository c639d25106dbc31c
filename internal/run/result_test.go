package run

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"smelt/internal/source"
	"smelt/internal/store"
)

// A record written before the store's part was split off (one flat JSON
// object, in the old field order) reads as the same result, and writes
// back with the same fields and values: stores and remote caches written
// by an earlier smelt stay usable, and their records mean the same.
func TestResultRecordCompatible(t *testing.T) {
	old := `{"key":"k","step":"s","kind":"deps","inputs":{"vendor":"v"},"artifacts":"a","artifacts_id":"ai","deps_id":"d",` +
		`"max_mtime":7,"source":[{"p":"src/lib.rs","h":"h1","m":3}],"seed":"sd","seed_source":[{"p":"src/main.rs","h":"h2","m":4}],` +
		`"seed_max_mtime":8,"output":"o","bins":{"app":"pkg"},"summary":"3 passed","log":"l","seconds":1.5,"units":12,` +
		`"created":"1970-01-01T00:00:00Z","pulled":true}`
	want := Result{
		Result: store.Result{Key: "k", Artifacts: "a", Seed: "sd", Output: "o", Log: "l", Created: time.Unix(0, 0).UTC(), Pulled: true},
		Step:   "s", Kind: "deps", Inputs: map[string]string{"vendor": "v"}, ArtifactsID: "ai", DepsID: "d", MaxMTime: 7,
		Source:     []source.FileTime{{Path: "src/lib.rs", Hash: "h1", MTime: 3}},
		SeedSource: []source.FileTime{{Path: "src/main.rs", Hash: "h2", MTime: 4}}, SeedMaxMTime: 8,
		Bins: map[string]string{"app": "pkg"}, Summary: "3 passed", Seconds: 1.5, Units: 12,
	}
	var got Result
	if err := json.Unmarshal([]byte(old), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("old record read as\n%+v\nwant\n%+v", got, want)
	}
	b, err := json.Marshal(&got)
	if err != nil {
		t.Fatal(err)
	}
	var again, orig map[string]any
	json.Unmarshal(b, &again)
	json.Unmarshal([]byte(old), &orig)
	if !reflect.DeepEqual(again, orig) {
		t.Errorf("written back as\n%s\nwant the fields of\n%s", b, old)
	}
}
