package run

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"smelt/internal/cargo"
)

// sortDepInfo rewrites the dep-info files that cargo wrote under target
// since the step started in a canonical order (cargo.CanonicalDepInfo),
// keeping their mtimes, which cargo compares with the sources'. Cargo
// writes them in hash-map order, so two builds of the same unit gave
// other bytes, and the steps after them other keys.
func sortDepInfo(target string, since time.Time) error {
	// File times come from a coarser clock than time.Now: a file written
	// just after since may look older. Sorting one again costs a read.
	since = since.Add(-time.Second)
	var files []string
	for _, pattern := range []string{"*/.fingerprint/*/dep-*", "*/*/.fingerprint/*/dep-*"} {
		m, err := filepath.Glob(filepath.Join(target, pattern))
		if err != nil {
			return err
		}
		files = append(files, m...)
	}
	for _, p := range files {
		info, err := os.Lstat(p)
		if err != nil || !info.Mode().IsRegular() || info.ModTime().Before(since) {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sorted, ok := cargo.CanonicalDepInfo(data)
		if !ok || bytes.Equal(sorted, data) {
			continue
		}
		tmp := p + ".smelt-tmp"
		if err := os.WriteFile(tmp, sorted, info.Mode().Perm()); err != nil {
			return fmt.Errorf("sort dep-info %s: %w", p, err)
		}
		if err := os.Chtimes(tmp, info.ModTime(), info.ModTime()); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("sort dep-info %s: %w", p, err)
		}
		if err := os.Rename(tmp, p); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("sort dep-info %s: %w", p, err)
		}
	}
	return nil
}
