package cargo

import (
	"bytes"
	"encoding/binary"
	"path"
	"slices"
	"strings"
)

// IsDepInfo reports whether a path under target/ is one of cargo's own
// dep-info files (PROFILE/.fingerprint/UNIT/dep-*): the source files and
// environment variables a unit was built from, which cargo checks for
// freshness.
func IsDepInfo(p string) bool {
	return strings.HasPrefix(path.Base(p), "dep-") && path.Base(path.Dir(path.Dir(p))) == ".fingerprint"
}

// CanonicalDepInfo returns a cargo dep-info file with its files and its
// environment variables each in sorted order, and whether it could read
// it. Cargo writes them in the order of a hash map, which differs from run
// to run; it reads them as sets (a unit is stale when any file is newer or
// any variable differs), so the order carries nothing, and sorting makes
// the same build give the same bytes.
//
// The format (cargo 1.8x–1.9x): a marker (u32 1, 0xff), a version byte (1),
// then u32 n and n files (a type byte, a u32-length path, a checksum flag
// byte), then u32 m and m variables (a u32-length name, a flag byte, and
// if it is 1 a u32-length value); integers little-endian. Anything else
// (another version, a file with a checksum) is left alone.
func CanonicalDepInfo(b []byte) ([]byte, bool) {
	header := []byte{1, 0, 0, 0, 0xff, 1}
	if !bytes.HasPrefix(b, header) {
		return nil, false
	}
	r := b[len(header):]
	ok := true
	u32 := func() int {
		if len(r) < 4 {
			ok = false
			return 0
		}
		n := int(binary.LittleEndian.Uint32(r))
		r = r[4:]
		return n
	}
	u8 := func() byte {
		if len(r) < 1 {
			ok = false
			return 0
		}
		c := r[0]
		r = r[1:]
		return c
	}
	str := func() {
		if n := u32(); ok && n <= len(r) {
			r = r[n:]
		} else {
			ok = false
		}
	}
	// entries reads n entries with read, each as its raw bytes.
	entries := func(read func()) [][]byte {
		n := u32()
		if !ok || n > len(r) {
			ok = false
			return nil
		}
		out := make([][]byte, 0, n)
		for range n {
			start := r
			read()
			if !ok {
				return nil
			}
			out = append(out, start[:len(start)-len(r)])
		}
		return out
	}
	files := entries(func() {
		if t := u8(); t > 1 {
			ok = false
		}
		str()
		if c := u8(); c != 0 {
			ok = false
		}
	})
	env := entries(func() {
		str()
		switch u8() {
		case 0:
		case 1:
			str()
		default:
			ok = false
		}
	})
	if !ok || len(r) != 0 {
		return nil, false
	}
	out := append([]byte{}, header...)
	for _, list := range [][][]byte{files, env} {
		slices.SortFunc(list, bytes.Compare)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(list)))
		for _, e := range list {
			out = append(out, e...)
		}
	}
	return out, true
}

// IsIncremental reports whether a path under target/ is rustc's
// incremental state (PROFILE/incremental/… or TRIPLE/PROFILE/incremental/…):
// session directories named by time and a random number, which two builds
// of the same source never share.
func IsIncremental(p string) bool {
	parts := strings.SplitN(p, "/", 4)
	return (len(parts) > 2 && parts[1] == "incremental") || (len(parts) > 3 && parts[2] == "incremental")
}
