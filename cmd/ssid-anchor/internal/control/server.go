package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"
)

// Handler runs one request and returns its exit code. It writes the
// command's output to stdout and stderr as the command runs; ctx ends when
// the client cancels (or goes away) or the server closes.
type Handler func(ctx context.Context, req Request, stdout, stderr io.Writer) int

// ServerOptions are what a Server needs besides its handler.
type ServerOptions struct {
	// Log receives refused connections, bad requests and a handler's panic
	// with its stack.
	Log *slog.Logger
	// RedactArgv returns what of a request's argv may be logged (values
	// that may hold credentials dropped). nil logs no argv.
	RedactArgv func(argv []string) []string
}

// Server serves one repo's control socket.
type Server struct {
	path   string
	ln     *net.UnixListener
	handle Handler
	opts   ServerOptions

	ctx    context.Context // ends at Close: cancels every request
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Listen creates the socket in the repo, mode 0600, with no moment at
// which another user could connect: it is bound inside a fresh 0700
// directory, chmodded, then renamed into place. The caller holds the repo
// lock, so a socket file already there is a stale one from a daemon that
// died, and is replaced. Serve starts answering.
func Listen(repo string, handle Handler, opts ServerOptions) (*Server, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	final := SocketPath(repo)
	dir, err := os.MkdirTemp(filepath.Dir(final), ".sock-")
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	bindPath, done, err := ShortSocketPath(tmp)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bindPath, Net: "unix"})
	done()
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", final, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if fi, err := os.Lstat(final); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		opts.Log.Info("removing a stale control socket left by a daemon that did not stop cleanly", "path", final)
	}
	if err := os.Rename(tmp, final); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", final, err)
	}
	s := &Server{path: final, ln: ln, handle: handle, opts: opts}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until Close.
func (s *Server) Serve() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.opts.Log.Error("control socket accept", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
		}()
	}
}

func (s *Server) serveConn(c *net.UnixConn) {
	defer c.Close()
	if err := checkPeer(c); err != nil {
		s.opts.Log.Warn("control socket: connection refused", "err", err)
		return
	}
	var req Request
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := readFrame(c, &req, MaxRequest); err != nil {
		s.opts.Log.Warn("control socket: bad request", "err", err)
		return
	}
	c.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// Once the request is cancelled (the client closed its side, or the
	// daemon stops), a client that no longer reads must not block the
	// command's writes, and whatever gate or lock it holds, forever: the
	// writes get the grace the client gives the exit code (Forward).
	stopDeadline := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Now().Add(Grace)) })
	defer stopDeadline()
	var wmu sync.Mutex
	if err := writeFrame(c, Frame{PID: os.Getpid()}); err != nil {
		return
	}
	if req.Version != Version {
		code := ExitUsage
		writeFrame(c, Frame{Stream: "stderr", Data: fmt.Appendf(nil, "ssid-anchor: the daemon speaks control protocol %d, this command %d; use the same binary for both\n", Version, req.Version)})
		writeFrame(c, Frame{Exit: &code})
		return
	}
	// The client closes its side to cancel (Ctrl-C) or when it dies.
	go func() {
		var buf [64]byte
		for {
			if _, err := c.Read(buf[:]); err != nil {
				cancel()
				return
			}
		}
	}()
	out := &frameWriter{mu: &wmu, c: c, stream: "stdout", cancel: cancel}
	errw := &frameWriter{mu: &wmu, c: c, stream: "stderr", cancel: cancel}
	code := s.run(ctx, req, out, errw)
	wmu.Lock()
	writeFrame(c, Frame{Exit: &code})
	wmu.Unlock()
}

// run calls the handler. A panic in the command it runs is the command's
// failure, not the daemon's: as the scheduler does for jobs, it is logged
// with its stack, the client is told and gets exit 1, and the daemon goes
// on serving. The command's deferred unlocks ran while the panic unwound.
func (s *Server) run(ctx context.Context, req Request, stdout, stderr io.Writer) (code int) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		attrs := []any{"panic", fmt.Sprint(v), "stack", string(debug.Stack())}
		if s.opts.RedactArgv != nil {
			attrs = append([]any{"argv", s.opts.RedactArgv(req.Argv)}, attrs...)
		}
		s.opts.Log.Error("control socket: the command panicked; the daemon keeps running", attrs...)
		fmt.Fprintf(stderr, "ssid-anchor: internal error: the command panicked in the daemon (%v); the daemon logged the stack and keeps running; please report it with the daemon's log\n", v)
		code = ExitFailure
	}()
	return s.handle(ctx, req, stdout, stderr)
}

// Close stops accepting, cancels the running requests and waits for them
// to send their exit codes (or for ctx to end). The socket file goes.
func (s *Server) Close(ctx context.Context) error {
	s.ln.Close()
	os.Remove(s.path)
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// frameWriter sends what a command writes as frames of one stream. A
// client that went away cancels the command.
type frameWriter struct {
	mu     *sync.Mutex
	c      net.Conn
	stream string
	cancel context.CancelFunc
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := writeFrame(w.c, Frame{Stream: w.stream, Data: p}); err != nil {
		w.cancel()
		return 0, err
	}
	return len(p), nil
}
