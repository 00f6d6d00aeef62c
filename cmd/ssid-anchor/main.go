// The ssid-anchor command makes a governance repository tamper-evident: it
// anchors governance artifacts on an embedded IPFS node, verifies them, and
// alerts people when compliance telemetry goes wrong.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Getenv("SSID_ANCHOR_CPUPROFILE"))
	stopHeap := startHeapProfile(os.Getenv("SSID_ANCHOR_MEMPROFILE"))
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stopHeap()
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

// startHeapProfile writes heap profiles (for `go tool pprof -top`) when
// path is set (SSID_ANCHOR_MEMPROFILE): path.N on every SIGUSR1 (a daemon
// at idle), and path when the command ends. Each is taken after a
// collection, so in-use figures are live data; alloc figures count
// everything allocated since start.
func startHeapProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	write := func(p string) {
		runtime.GC()
		f, err := os.Create(p)
		if err == nil {
			err = pprof.Lookup("heap").WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "SSID_ANCHOR_MEMPROFILE: %v\n", err)
		}
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for n := 1; ; n++ {
			select {
			case <-usr1:
				write(fmt.Sprintf("%s.%d", path, n))
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(usr1)
		close(done)
		write(path)
	}
}
