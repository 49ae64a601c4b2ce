// Command banger is the CLI for banger's disposable Firecracker microVMs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"banger/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, &cli.App{}, os.Args[1:])
	stop()
	os.Exit(code)
}
