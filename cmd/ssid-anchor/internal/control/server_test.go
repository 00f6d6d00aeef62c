package control

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects a server's log while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve starts a server on repo with handle and closes it when the test
// ends.
func serve(t *testing.T, repo string, handle Handler, opts ServerOptions) *Server {
	t.Helper()
	srv, err := Listen(repo, handle, opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close(context.Background()) })
	return srv
}

// leaveStaleSocket leaves in repo what a daemon that died leaves: the
// socket file, bound once, with nobody listening; a client takes it for
// no daemon.
func leaveStaleSocket(t *testing.T, repo string) {
	t.Helper()
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: SocketPath(repo), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := Dial(repo); err != ErrNoDaemon {
		t.Fatalf("stale socket: dial gave %v, want ErrNoDaemon", err)
	}
}

// callSocket sends argv over the control socket of repo, as the client
// does, and returns the exit code and both streams.
func callSocket(t *testing.T, ctx context.Context, repo string, argv ...string) (int, string, string) {
	t.Helper()
	c, err := Dial(repo)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	code, err := Forward(ctx, c, Request{Version: Version, Argv: argv}, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestControlSocket: mode 0600, a stale socket is replaced, a client's
// Ctrl-C cancels the command in the daemon and the client gets its exit
// code.
func TestControlSocket(t *testing.T) {
	repo := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A stale socket: bound, then its listener gone without unlinking.
	leaveStaleSocket(t, repo)

	started := make(chan struct{})
	cancelled := make(chan struct{})
	serve(t, repo, func(ctx context.Context, req Request, stdout, stderr io.Writer) int {
		io.WriteString(stdout, "out:"+strings.Join(req.Argv, " ")+"\n")
		io.WriteString(stderr, "working\n")
		if req.Argv[1] == "block" {
			close(started)
			<-ctx.Done()
			close(cancelled)
			io.WriteString(stderr, "ssid-anchor: interrupted\n")
			return ExitInterrupted
		}
		return 7
	}, ServerOptions{Log: log})
	fi, err := os.Stat(SocketPath(repo))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v (%v), want 0600 socket", fi.Mode(), err)
	}

	call := func(ctx context.Context, argv ...string) (int, string, string) {
		return callSocket(t, ctx, repo, argv...)
	}
	if code, out, errs := call(context.Background(), "ssid-anchor", "x"); code != 7 || out != "out:ssid-anchor x\n" || errs != "working\n" {
		t.Errorf("got %d %q %q", code, out, errs)
	}
	// Ctrl-C once the command runs in the daemon.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	code, _, errs := call(ctx, "ssid-anchor", "block")
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the daemon's command was not cancelled by the client's Ctrl-C")
	}
	if code != ExitInterrupted || !strings.Contains(errs, "interrupted") {
		t.Errorf("cancelled: exit %d, stderr %q", code, errs)
	}
	// A client speaking another protocol version is told so.
	c, _ := Dial(repo)
	var errb strings.Builder
	code, _ = Forward(context.Background(), c, Request{Version: 99, Argv: []string{"a", "b"}}, io.Discard, &errb)
	if code != ExitUsage || !strings.Contains(errb.String(), "protocol") {
		t.Errorf("version mismatch: %d %q", code, errb.String())
	}
}

// TestControlSocketSurvivesPanic: a command that panics inside the daemon
// (issue 25.1: a nil pointer in a forwarded `pins`) is that command's
// failure: the client gets exit 1 and a clear message, the daemon's log
// has the stack, and the next command is served as usual.
func TestControlSocketSurvivesPanic(t *testing.T) {
	repo := t.TempDir()
	var logBuf lockedBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	serve(t, repo, func(ctx context.Context, req Request, stdout, stderr io.Writer) int {
		io.WriteString(stderr, "working\n")
		if req.Argv[1] == "boom" {
			var p *Request
			_ = p.Argv[0] // the nil dereference of the issue
		}
		io.WriteString(stdout, "done "+req.Argv[1]+"\n")
		return 0
	}, ServerOptions{Log: log, RedactArgv: func(argv []string) []string { return argv }})

	code, out, errs := callSocket(t, context.Background(), repo, "ssid-anchor", "boom")
	if code != ExitFailure || out != "" || !strings.Contains(errs, "working\n") ||
		!strings.Contains(errs, "internal error: the command panicked in the daemon") || !strings.Contains(errs, "nil pointer") {
		t.Fatalf("panicking command: exit %d, stdout %q, stderr %q; want exit 1 and the panic named", code, out, errs)
	}
	l := logBuf.String()
	if !strings.Contains(l, "the command panicked") || !strings.Contains(l, "server_test.go") || !strings.Contains(l, "argv=") {
		t.Fatalf("the daemon's log lacks the panic with its stack:\n%s", l)
	}
	// The daemon goes on: the same server answers the next command.
	for i := range 3 {
		if code, out, _ := callSocket(t, context.Background(), repo, "ssid-anchor", "status"); code != 0 || out != "done status\n" {
			t.Fatalf("command %d after the panic: exit %d, stdout %q", i, code, out)
		}
	}
}
