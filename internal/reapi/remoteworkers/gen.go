// Package remoteworkers is the Go code of the Remote Workers API
// (google.devtools.remoteworkers.v1test2: the Bots service a worker speaks
// to a Remote Execution engine such as BuildGrid). No published Go module
// carries it, so it is generated, and committed, from the descriptors that
// BuildGrid's own wheel ships: the worker and the engine then agree on
// every field.
package remoteworkers

//go:generate sh gen.sh
