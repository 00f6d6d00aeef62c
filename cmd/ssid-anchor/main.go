// The ssid-anchor command makes a governance repository tamper-evident: it
// anchors governance artifacts on an embedded IPFS node, verifies them, and
// alerts people when compliance telemetry goes wrong.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
