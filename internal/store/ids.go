package store

// The store's ids are distinct types, so that a layer id cannot be passed
// where an object's hash is wanted. They are strings underneath: the JSON
// of stored records is the same as when they were bare strings.
type (
	// Key is a step's key: the hash of its inputs (see internal/key).
	Key string
	// LayerID is the hash of a stored layer's JSON.
	LayerID string
	// ObjectID is the content hash of a file stored as an object.
	ObjectID string
	// ContentID identifies a flattened tree by content (Tree.ContentID).
	ContentID string
)
