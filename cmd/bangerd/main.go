// Command bangerd is banger's per-user daemon. The banger CLI starts it on
// demand; it can also run in the foreground under a service manager.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"banger/internal/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := daemon.Main(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
