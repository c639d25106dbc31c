package main

import (
	"errors"
	"fmt"

	"smelt/internal/trust"
)

// key runs `smelt key generate NAME -o FILE`: it writes a new signing key
// to FILE (mode 0600) and prints the public key for --trust on stdout.
func key(o options, pos []string) error {
	if len(pos) != 2 || pos[0] != "generate" || o.out == "" {
		return errors.New("usage: smelt key generate NAME -o FILE (writes the secret key to FILE, prints NAME:PUBLICKEY)")
	}
	sk, err := trust.Generate(pos[1])
	if err != nil {
		return err
	}
	if err := trust.WriteSecretKey(o.out, sk); err != nil {
		return err
	}
	fmt.Println(sk.Public())
	return nil
}
