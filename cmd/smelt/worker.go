package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"smelt/internal/reapi"
	"smelt/internal/worker"
)

// workerMain is `smelt worker --engine URL --dir DIR`.
func workerMain(args []string) int {
	fl := flag.NewFlagSet("smelt worker", flag.ContinueOnError)
	engine := fl.String("engine", os.Getenv("SMELT_ENGINE"), "the engine: grpc://HOST:PORT[/INSTANCE]")
	dir := fl.String("dir", "", "the worker's directory: its bot id, its cache of blobs, its actions' directories")
	fl.Usage = func() {
		fmt.Fprintln(os.Stderr, "Usage: smelt worker --engine grpc://HOST:PORT[/INSTANCE] --dir DIR")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *engine == "" || *dir == "" || fl.NArg() > 0 {
		fl.Usage()
		return 2
	}
	e, err := reapi.ParseEngine(*engine)
	if err != nil {
		fmt.Fprintf(os.Stderr, "smelt worker: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := worker.Run(ctx, worker.Options{Engine: e, Dir: *dir, Log: os.Stderr}); err != nil {
		fmt.Fprintf(os.Stderr, "smelt worker: %v\n", err)
		return 1
	}
	return 0
}
