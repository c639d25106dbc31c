package run

import (
	"fmt"
	"os"
	"path/filepath"

	"smelt/internal/store"
)

// The directories run keeps beside the store, made when first needed
// (the store makes only its own: objects, layers, results, tmp). All are
// caches: gc (GC) removes what no remaining result or ./result link needs,
// and a run makes again what is missing.
//
//	work/PROJECT/STEP/  a step's working directory, kept for warm restores
//	logs/PROJECT/       the last log of each step (smelt log)
//	state/projects/     each step's last key and source (smelt why, warm starts)
//	out/                ./result directories, one per link (gcroots/ names the live ones)
//	bin/                smelt's helper programs, named by content

// WorkRoot is the directory of the working directories: the store's
// verify removes the links to damaged objects found there.
func WorkRoot(st *store.Store) string { return filepath.Join(st.Dir, "work") }

func logRoot(st *store.Store) string { return filepath.Join(st.Dir, "logs") }
func outRoot(st *store.Store) string { return filepath.Join(st.Dir, "out") }
func binRoot(st *store.Store) string { return filepath.Join(st.Dir, "bin") }

// program returns the path of an executable file under bin/ holding b,
// writing it the first time. It is named by its content: a file another
// smelt may be running never changes.
func program(st *store.Store, name string, b []byte) (string, error) {
	dst := filepath.Join(binRoot(st), name+"-"+store.HashBytes(b)[:12])
	if fi, err := os.Stat(dst); err == nil && fi.Mode()&0o111 != 0 {
		return dst, nil
	}
	tmp, err := st.TempFile("w-*")
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o755)
	}
	if werr == nil {
		werr = os.MkdirAll(filepath.Dir(dst), 0o755)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), dst)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("write %s: %w", dst, werr)
	}
	return dst, nil
}
