package trust

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	ci, err := Generate("ci-1")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := Generate("laptop")
	impostor, _ := Generate("ci-1") // same name, other key
	record := []byte("{\"key\": \"k1\",\n \"summary\": \"<ok> & done\"}")
	env, err := Sign(ci, "k1", record)
	if err != nil {
		t.Fatal(err)
	}
	tamper := strings.Replace(string(env), "done", "DONE", 1)
	unsigned := `{"record":{"key":"k1"},"sigs":[]}`
	for _, tc := range []struct {
		name    string
		env     string
		key     string
		trusted []PublicKey
		want    error
	}{
		{"trusted", string(env), "k1", []PublicKey{other.Public(), ci.Public()}, nil},
		{"untrusted", string(env), "k1", []PublicKey{other.Public()}, ErrUntrusted},
		{"no keys", string(env), "k1", nil, ErrUntrusted},
		{"same name other key", string(env), "k1", []PublicKey{impostor.Public()}, ErrBadSignature},
		{"replayed under another step key", string(env), "k2", []PublicKey{ci.Public()}, ErrBadSignature},
		{"record changed", tamper, "k1", []PublicKey{ci.Public()}, ErrBadSignature},
		{"unsigned", unsigned, "k1", []PublicKey{ci.Public()}, ErrUnsigned},
		{"garbage", "\x00garbage", "k1", []PublicKey{ci.Public()}, ErrUnsigned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, signer, err := Verify([]byte(tc.env), tc.key, tc.trusted)
			if tc.want == nil {
				if err != nil || signer != "ci-1" || string(got) != string(record) {
					t.Fatalf("Verify = %q, %q, %v; want the record, ci-1", got, signer, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("Verify = %q, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	k, _ := Generate("ci-1")
	path := filepath.Join(dir, "ci.key")
	if err := WriteSecretKey(path, k); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", st.Mode(), err)
	}
	if err := WriteSecretKey(path, k); err == nil {
		t.Fatal("WriteSecretKey replaced an existing key")
	}
	back, err := LoadSecretKey(path)
	if err != nil || !back.Key.Equal(k.Key) || back.Name != "ci-1" {
		t.Fatalf("LoadSecretKey = %v, %v", back.Name, err)
	}
	pub, err := ParsePublicKey(k.Public().String())
	if err != nil || !pub.Key.Equal(k.Public().Key) {
		t.Fatalf("ParsePublicKey(%s) = %v", k.Public(), err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadSecretKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("LoadSecretKey of a world-readable key: %v", err)
	}
	for _, bad := range []string{"nocolon", "a b:AAAA", "x:!!!", "x:AAAA"} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted it", bad)
		}
	}
}
