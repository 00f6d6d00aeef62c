package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"
)

// ErrNoDaemon means no daemon serves the repo: run the command here.
var ErrNoDaemon = errors.New("no daemon serves this repo")

// Dial connects to the daemon serving repo. ErrNoDaemon when there is no
// socket or it is stale (nobody listens); any other error means a daemon
// is there but cannot be reached (another user's socket).
func Dial(repo string) (*net.UnixConn, error) {
	sock := SocketPath(repo)
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode()&fs.ModeSocket == 0 {
		return nil, ErrNoDaemon
	}
	p, done, err := ShortSocketPath(sock)
	if err != nil {
		return nil, ErrNoDaemon
	}
	defer done()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: p, Net: "unix"})
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return nil, ErrNoDaemon
	default:
		return nil, fmt.Errorf("a daemon's control socket %s is there but cannot be reached: %w", sock, err)
	}
}

// OutputError is a write to the client's stdout that failed. Forward
// stops at the first one and closes the connection, which cancels the
// command in the daemon; the caller decides how the process ends (a
// closed pipe quietly, as git does, anything else with the error).
type OutputError struct{ Err error }

func (e *OutputError) Error() string { return "writing the command's output: " + e.Err.Error() }
func (e *OutputError) Unwrap() error { return e.Err }

// Forward sends req over c and relays the command's output until its exit
// code arrives. When ctx ends (Ctrl-C) it asks the daemon to cancel and
// still waits a moment for the exit code, so the command's last words and
// its real code (130) reach the user. A failed write to stdout ends it
// with an *OutputError; stderr is best effort. It closes c.
func Forward(ctx context.Context, c *net.UnixConn, req Request, stdout, stderr io.Writer) (int, error) {
	defer c.Close()
	if err := writeFrame(c, req); err != nil {
		return 0, fmt.Errorf("sending the command to the daemon: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		c.CloseWrite()
		c.SetReadDeadline(time.Now().Add(Grace))
	})
	defer stop()
	for {
		var f Frame
		if err := readFrame(c, &f, MaxFrame); err != nil {
			if ctx.Err() != nil {
				return ExitInterrupted, nil
			}
			return 0, fmt.Errorf("the daemon closed the connection before the command finished (did it stop?): %w", err)
		}
		switch {
		case f.Exit != nil:
			return *f.Exit, nil
		case f.Stream == "stdout":
			// The command's result has nowhere to go (`export | head`
			// after head exits, a full disk): stop here, and the
			// deferred Close tells the daemon to cancel the command.
			if _, err := stdout.Write(f.Data); err != nil {
				return 0, &OutputError{Err: err}
			}
		case f.Stream == "stderr":
			stderr.Write(f.Data)
		}
	}
}
