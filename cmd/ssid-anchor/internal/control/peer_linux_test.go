//go:build linux && (amd64 || arm64)

package control

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestPeerOfAnotherUIDRefused connects from another uid to a socket whose
// mode someone loosened: the daemon reads the peer's credentials, refuses
// the connection without running anything, and logs who was refused.
// It needs root, to connect as another user from inside the test.
func TestPeerOfAnotherUIDRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("connecting as another uid needs root; TestPeerAllowed covers the rule")
	}
	const other = 65534
	repo := t.TempDir()
	var logBuf lockedBuffer
	var ran atomic.Int32
	serve(t, repo, func(context.Context, Request, io.Writer, io.Writer) int { ran.Add(1); return 0 },
		ServerOptions{Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	// Loosen what the socket's mode and the directories would refuse, so
	// that only checkPeer stands between the other user and the daemon.
	for _, d := range []string{filepath.Dir(repo), repo} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(SocketPath(repo), 0o666); err != nil {
		t.Fatal(err)
	}

	// dialAs connects from a thread whose effective uid is uid: Linux
	// records the connecting thread's credentials, and a raw setresuid
	// changes this thread alone. The thread stays locked, so it ends with
	// its goroutine and no other goroutine runs as uid.
	dialAs := func(uid int) (*net.UnixConn, error) {
		type res struct {
			c   *net.UnixConn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			runtime.LockOSThread()
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
				ch <- res{nil, e}
				return
			}
			c, err := Dial(repo)
			ch <- res{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}

	c, err := dialAs(other)
	if err != nil {
		t.Fatalf("connecting as uid %d: %v", other, err)
	}
	// Refused before anything is read or sent: not even the daemon's PID
	// frame comes back, the connection just closes.
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("as uid %d the daemon sent %d bytes (%v); want the connection closed", other, n, err)
	}
	c.Close()
	if ran.Load() != 0 {
		t.Fatal("the handler ran a request from another uid")
	}
	if l := logBuf.String(); !strings.Contains(l, "connection refused") || !strings.Contains(l, "peer uid 65534 is not the daemon's uid 0") {
		t.Fatalf("the log does not name the refused peer:\n%s", l)
	}
	// The daemon's own user (root here) is still served.
	c, err = dialAs(0)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := Forward(context.Background(), c, Request{Version: Version, Argv: []string{"ssid-anchor", "status"}}, io.Discard, io.Discard); err != nil || code != 0 {
		t.Fatalf("Forward as the daemon's uid: exit %d, %v", code, err)
	}
	if ran.Load() != 1 {
		t.Fatalf("the handler ran %d times, want 1", ran.Load())
	}
}
