package main

import (
	"fmt"
	"os"
	"path/filepath"

	"smelt/internal/ci"
	"smelt/internal/plan"
)

// ciCmd writes a CI workflow for the project: smelt ci github|gitlab.
func ciCmd(o options, pos []string) error {
	if len(pos) != 1 || (pos[0] != "github" && pos[0] != "gitlab") {
		return fmt.Errorf("ci takes the CI to write a workflow for: smelt ci github, or smelt ci gitlab")
	}
	root, cfg, _, err := setup(o)
	if err != nil {
		return err
	}
	g, err := plan.New(cfg)
	if err != nil {
		return err
	}
	jobs, err := ci.Jobs(g, cfg)
	if err != nil {
		return err
	}
	tc, err := ci.ReadToolchain(root)
	if err != nil {
		return err
	}
	opts := ci.Options{Toolchain: tc}
	opts.SmeltGit, opts.SmeltRef = ci.ParseFrom(o.smeltFrom)
	if cfg.File != "" {
		opts.Source = filepath.Base(cfg.File)
	} else {
		opts.Source = "smelt's default pipeline"
	}
	text, path := ci.GitHub(jobs, opts), filepath.Join(root, ".github", "workflows", "smelt.yml")
	if pos[0] == "gitlab" {
		text, path = ci.GitLab(jobs, opts), filepath.Join(root, ".gitlab-ci.yml")
	}
	if o.out == "-" {
		_, err := os.Stdout.WriteString(text)
		return err
	}
	if o.out != "" {
		path = o.out
	}
	if _, err := os.Stat(path); err == nil && !o.force {
		return fmt.Errorf("%s already exists: pass --force to overwrite it, or -o - to print the workflow", path)
	}
	if err := writeFileAtomic(path, []byte(text)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d jobs\n", path, len(jobs)+1)
	return nil
}

// writeFileAtomic writes path through a temporary file in its directory, so
// that a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".smelt-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
