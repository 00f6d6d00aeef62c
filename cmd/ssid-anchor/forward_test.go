package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/control"
)

// failingWriter accepts n writes, then fails every write with err.
type failingWriter struct {
	n, writes int
	err       error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes > w.n {
		return 0, w.err
	}
	return len(p), nil
}

// TestForwardedCommandStdoutClosed runs a forwarded command line through
// the whole client (flags parsed, forwarded over the socket) to a daemon
// whose command prints until it is cancelled. A stdout that is a closed
// pipe (`ssid-anchor export | head`) ends the client quietly with 141, as
// SIGPIPE would, and cancels the command; any other write error is exit 1
// with the error named. Before, the client read on until the command
// ended, and here it never does unless cancelled.
func TestForwardedCommandStdoutClosed(t *testing.T) {
	for _, tc := range []struct {
		err      error
		code     int
		wantErrs string
	}{
		{syscall.EPIPE, 141, ""},
		{syscall.ENOSPC, exitFailure, "ssid-anchor: writing the command's output: no space left on device\n"},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			root, repo := t.TempDir(), t.TempDir()
			cancelled := make(chan struct{})
			srv, err := control.Listen(repo, func(ctx context.Context, req control.Request, stdout, stderr io.Writer) int {
				for i := range 3 {
					fmt.Fprintf(stdout, "record %d\n", i)
				}
				<-ctx.Done()
				close(cancelled)
				return exitInterrupted
			}, control.ServerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve()
			defer srv.Close(context.Background())

			out := &failingWriter{n: 1, err: tc.err}
			var errb strings.Builder
			done := make(chan int, 1)
			go func() {
				done <- run(context.Background(), []string{"ssid-anchor", "--root", root, "--repo", repo, "status"}, out, &errb)
			}()
			var code int
			select {
			case code = <-done:
			case <-time.After(time.Minute):
				t.Fatal("the client kept forwarding after its stdout failed")
			}
			if code != tc.code || errb.String() != tc.wantErrs {
				t.Fatalf("exit %d, stderr %q; want exit %d, stderr %q", code, errb.String(), tc.code, tc.wantErrs)
			}
			select {
			case <-cancelled:
			case <-time.After(time.Minute):
				t.Fatal("the command in the daemon was not cancelled")
			}
		})
	}
}
