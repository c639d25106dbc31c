package depsrc

// PackageNames names the packages of a Cargo.lock.
func PackageNames(lock []byte) (map[string]bool, error) {
	pkgs, err := lockPackages(lock)
	if err != nil {
		return nil, err
	}
	names := make(map[string]bool, len(pkgs))
	for _, p := range pkgs {
		names[p.Name] = true
	}
	return names, nil
}
