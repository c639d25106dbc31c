// Package trust signs result records and checks them against trusted keys,
// so that a result pulled from a remote cache is used only when someone
// the user trusts built it. Keys are ed25519 and written as Nix writes
// its cache keys, NAME:BASE64; a signature names its key the same way.
//
// What is signed binds the record to the step key it answers, so that a
// valid record cannot be replayed under another key:
//
//	"smelt-result-v1\x00" + step key + "\x00" + sha256(record bytes)
//
// A signed record travels as an envelope: {"record": …, "sigs": ["NAME:BASE64", …]}.
package trust

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PublicKey is a named ed25519 public key.
type PublicKey struct {
	Name string
	Key  ed25519.PublicKey
}

// SecretKey is a named ed25519 private key.
type SecretKey struct {
	Name string
	Key  ed25519.PrivateKey
}

// String is NAME:BASE64, the form users pass to --trust.
func (k PublicKey) String() string { return k.Name + ":" + base64.StdEncoding.EncodeToString(k.Key) }

// Public is the secret key's public half.
func (k SecretKey) Public() PublicKey {
	return PublicKey{Name: k.Name, Key: k.Key.Public().(ed25519.PublicKey)}
}

func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, ": \t\r\n") {
		return fmt.Errorf("key name %q must be non-empty, without ':' or spaces (e.g. ci-1)", name)
	}
	return nil
}

// Generate makes a new key pair.
func Generate(name string) (SecretKey, error) {
	if err := checkName(name); err != nil {
		return SecretKey{}, err
	}
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SecretKey{}, err
	}
	return SecretKey{Name: name, Key: sk}, nil
}

// splitNamed parses NAME:BASE64 into its name and n decoded bytes.
func splitNamed(s string, n int, what string) (string, []byte, error) {
	s = strings.TrimSpace(s)
	name, b64, ok := strings.Cut(s, ":")
	if !ok {
		return "", nil, fmt.Errorf("%s %q is not NAME:BASE64", what, s)
	}
	if err := checkName(name); err != nil {
		return "", nil, fmt.Errorf("%s: %w", what, err)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != n {
		return "", nil, fmt.Errorf("%s %q: not %d bytes of base64", what, name, n)
	}
	return name, b, nil
}

// ParsePublicKey reads NAME:BASE64 (as smelt key generate prints it).
func ParsePublicKey(s string) (PublicKey, error) {
	name, b, err := splitNamed(s, ed25519.PublicKeySize, "public key")
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w; pass what smelt key generate printed", err)
	}
	return PublicKey{Name: name, Key: b}, nil
}

// ParsePublicKeys reads several keys, as --trust and SMELT_TRUST give them.
func ParsePublicKeys(ss []string) ([]PublicKey, error) {
	var out []PublicKey
	for _, s := range ss {
		k, err := ParsePublicKey(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// WriteSecretKey writes NAME:BASE64 of the private key to path, mode 0600,
// atomically; it refuses to replace an existing file.
func WriteSecretKey(path string, k SecretKey) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists: remove it or choose another file; a key is not overwritten", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".smelt-key-*")
	if err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; say it, in case that changes.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	_, err = fmt.Fprintf(tmp, "%s:%s\n", k.Name, base64.StdEncoding.EncodeToString(k.Key))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path) // fails if path appeared meanwhile
	}
	if err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return nil
}

// LoadSecretKey reads a key written by WriteSecretKey. It refuses a file
// that others may read.
func LoadSecretKey(path string) (SecretKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return SecretKey{}, fmt.Errorf("signing key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return SecretKey{}, fmt.Errorf("signing key %s may be read by others (mode %o): chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return SecretKey{}, fmt.Errorf("signing key: %w", err)
	}
	name, key, err := splitNamed(string(b), ed25519.PrivateKeySize, "signing key "+path)
	if err != nil {
		return SecretKey{}, err
	}
	return SecretKey{Name: name, Key: key}, nil
}

func message(stepKey string, record []byte) []byte {
	h := sha256.Sum256(record)
	var m bytes.Buffer
	m.WriteString("smelt-result-v1\x00")
	m.WriteString(stepKey)
	m.WriteByte(0)
	m.Write(h[:])
	return m.Bytes()
}

type envelope struct {
	Record json.RawMessage `json:"record"`
	Sigs   []string        `json:"sigs"`
}

// Sign wraps a result record (JSON) in an envelope signed by k for stepKey.
func Sign(k SecretKey, stepKey string, record []byte) ([]byte, error) {
	if !json.Valid(record) {
		return nil, errors.New("sign: the record is not JSON")
	}
	sig := ed25519.Sign(k.Key, message(stepKey, record))
	sigs, err := json.Marshal([]string{k.Name + ":" + base64.StdEncoding.EncodeToString(sig)})
	if err != nil {
		return nil, err
	}
	// Written by hand: json.Marshal would compact and escape the record,
	// changing the bytes the signature covers.
	var b bytes.Buffer
	b.WriteString(`{"sigs":`)
	b.Write(sigs)
	b.WriteString(`,"record":`)
	b.Write(record)
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// Errors of Verify, for the caller's warning line.
var (
	ErrUnsigned     = errors.New("it carries no signature")
	ErrUntrusted    = errors.New("no key it is signed with is trusted")
	ErrBadSignature = errors.New("its signature is not valid")
)

// Verify opens an envelope and returns the record inside, and the name of
// the trusted key that signed it, only if a key in trusted signed it for
// stepKey. Its errors match ErrUnsigned, ErrUntrusted or ErrBadSignature,
// or say the envelope is not one.
func Verify(env []byte, stepKey string, trusted []PublicKey) (record []byte, signer string, err error) {
	var e envelope
	if err := json.Unmarshal(env, &e); err != nil || len(e.Record) == 0 {
		return nil, "", fmt.Errorf("not a signed result record: %w", ErrUnsigned)
	}
	if len(e.Sigs) == 0 {
		return nil, "", ErrUnsigned
	}
	m := message(stepKey, e.Record)
	var bad []string
	for _, s := range e.Sigs {
		name, sig, perr := splitNamed(s, ed25519.SignatureSize, "signature")
		if perr != nil {
			bad = append(bad, perr.Error())
			continue
		}
		for _, k := range trusted {
			if k.Name != name {
				continue
			}
			if ed25519.Verify(k.Key, m, sig) {
				return e.Record, name, nil
			}
			bad = append(bad, name)
		}
	}
	if len(bad) > 0 {
		return nil, "", fmt.Errorf("%w (by %s)", ErrBadSignature, strings.Join(bad, ", "))
	}
	var names []string
	for _, s := range e.Sigs {
		n, _, _ := strings.Cut(s, ":")
		names = append(names, n)
	}
	return nil, "", fmt.Errorf("%w: signed by %s; trust it with --trust NAME:BASE64 if you should", ErrUntrusted, strings.Join(names, ", "))
}
