// The ssid-anchor command makes a governance repository tamper-evident: it
// anchors governance artifacts on an embedded IPFS node, verifies them, and
// alerts people when compliance telemetry goes wrong.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Getenv("SSID_ANCHOR_CPUPROFILE"))
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile of the whole command to path when set
// (SSID_ANCHOR_CPUPROFILE, for `go tool pprof`); the performance work reads
// these rather than guessing.
func startProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "SSID_ANCHOR_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
