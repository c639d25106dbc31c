package main

import "errors"

// ciCmd is written in the next commit.
func ciCmd(o options, pos []string) error { return errors.New("smelt ci is not written yet") }
