package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ssid/ssid-anchor/node"
	"github.com/urfave/cli/v2"
)

// The control socket lets every CLI command run inside the daemon, on its
// open node, while the daemon holds the repo lock (SPEC 4.5).
//
// Protocol, chosen because a command's output is a byte stream and needs
// no more: every message is a frame, a 4-byte big-endian length followed
// by that many bytes of JSON. The client sends one controlRequest frame and
// then nothing; closing its write side (or the connection) means "cancel"
// (Ctrl-C). The daemon sends controlFrame{stream, data} frames as the
// command writes to stdout and stderr, then one controlFrame{exit} and
// closes.
const (
	controlSocketName = "ssid-anchor.sock"
	controlVersion    = 1
	// maxFrame bounds what the client accepts from the daemon (a command
	// may write a large chunk at once); maxRequest bounds the one frame the
	// daemon reads from a client (argv, cwd, a few variables), so a client
	// cannot make the daemon allocate 16 MiB per connection.
	maxFrame   = 16 << 20
	maxRequest = 1 << 20
	// controlGrace is how long, after a cancel, the client still waits for
	// the exit code and the daemon still tries to write to it.
	controlGrace = 5 * time.Second
)

type controlRequest struct {
	Version int               `json:"version"`
	Argv    []string          `json:"argv"`
	Cwd     string            `json:"cwd"`
	Env     map[string]string `json:"env,omitempty"`
}

type controlFrame struct {
	Stream string `json:"stream,omitempty"` // "stdout" or "stderr"
	Data   []byte `json:"data,omitempty"`
	Exit   *int   `json:"exit,omitempty"`
	PID    int    `json:"pid,omitempty"` // the daemon's, in the first frame
}

func controlSocketPath(repo string) string {
	abs, err := filepath.Abs(repo)
	if err != nil {
		abs = repo
	}
	return filepath.Join(abs, controlSocketName)
}

// sunPathMax is the room for a socket path in sockaddr_un on Linux (108
// bytes with the NUL). Longer paths are reached through /proc/self/fd.
const sunPathMax = 107

// shortSocketPath returns a path to sock no longer than sunPathMax: itself,
// or /proc/self/fd/<fd of its directory>/<name> with the directory held
// open until done is called.
func shortSocketPath(sock string) (string, func(), error) {
	if len(sock) <= sunPathMax {
		return sock, func() {}, nil
	}
	d, err := os.Open(filepath.Dir(sock))
	if err != nil {
		return "", nil, err
	}
	p := fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), filepath.Base(sock))
	return p, func() { d.Close() }, nil
}

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

func readFrame(r io.Reader, v any, limit uint32) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > limit {
		return fmt.Errorf("control frame of %d bytes is over the %d byte limit", n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// ---- server (the daemon) ----

// controlHandler runs one request and returns its exit code.
type controlHandler func(ctx context.Context, req controlRequest, stdout, stderr io.Writer) int

type controlServer struct {
	path   string
	ln     *net.UnixListener
	handle controlHandler
	log    *slog.Logger

	ctx    context.Context // ends at shutdown: cancels every request
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// listenControl creates the socket in the repo, mode 0600, with no moment
// at which another user could connect: it is bound inside a fresh 0700
// directory, chmodded, then renamed into place. The caller holds the repo
// lock, so a socket file already there is a stale one from a daemon that
// died, and is replaced.
func listenControl(repo string, handle controlHandler, log *slog.Logger) (*controlServer, error) {
	final := controlSocketPath(repo)
	dir, err := os.MkdirTemp(filepath.Dir(final), ".sock-")
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	bindPath, done, err := shortSocketPath(tmp)
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
		log.Info("removing a stale control socket left by a daemon that did not stop cleanly", "path", final)
	}
	if err := os.Rename(tmp, final); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", final, err)
	}
	s := &controlServer{path: final, ln: ln, handle: handle, log: log}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// serve accepts connections until close.
func (s *controlServer) serve() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("control socket accept", "err", err)
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

func (s *controlServer) serveConn(c *net.UnixConn) {
	defer c.Close()
	if err := checkPeer(c); err != nil {
		s.log.Warn("control socket: connection refused", "err", err)
		return
	}
	var req controlRequest
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := readFrame(c, &req, maxRequest); err != nil {
		s.log.Warn("control socket: bad request", "err", err)
		return
	}
	c.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// Once the request is cancelled (the client closed its side, or the
	// daemon stops), a client that no longer reads must not block the
	// command's writes, and whatever gate or lock it holds, forever: the
	// writes get the grace the client gives the exit code (forward).
	stopDeadline := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Now().Add(controlGrace)) })
	defer stopDeadline()
	var wmu sync.Mutex
	if err := writeFrame(c, controlFrame{PID: os.Getpid()}); err != nil {
		return
	}
	if req.Version != controlVersion {
		code := exitUsage
		writeFrame(c, controlFrame{Stream: "stderr", Data: fmt.Appendf(nil, "ssid-anchor: the daemon speaks control protocol %d, this command %d; use the same binary for both\n", controlVersion, req.Version)})
		writeFrame(c, controlFrame{Exit: &code})
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
	writeFrame(c, controlFrame{Exit: &code})
	wmu.Unlock()
}

// run calls the handler. A panic in the command it runs is the command's
// failure, not the daemon's: as the scheduler does for jobs, it is logged
// with its stack, the client is told and gets exit 1, and the daemon goes
// on serving. The command's deferred unlocks ran while the panic unwound.
func (s *controlServer) run(ctx context.Context, req controlRequest, stdout, stderr io.Writer) (code int) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		s.log.Error("control socket: the command panicked; the daemon keeps running",
			"argv", redactArgv(req.Argv), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		fmt.Fprintf(stderr, "ssid-anchor: internal error: the command panicked in the daemon (%v); the daemon logged the stack and keeps running; please report it with the daemon's log\n", v)
		code = exitFailure
	}()
	return s.handle(ctx, req, stdout, stderr)
}

// close stops accepting, cancels the running requests and waits for them
// to send their exit codes (or for ctx to end). The socket file goes.
func (s *controlServer) close(ctx context.Context) error {
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
	if err := writeFrame(w.c, controlFrame{Stream: w.stream, Data: p}); err != nil {
		w.cancel()
		return 0, err
	}
	return len(p), nil
}

// ---- client (every other command) ----

// errNoDaemon means no daemon serves the repo: run the command here.
var errNoDaemon = errors.New("no daemon serves this repo")

// dialDaemon connects to the daemon serving repo. errNoDaemon when there
// is no socket or it is stale (nobody listens); any other error means a
// daemon is there but cannot be reached (another user's socket).
func dialDaemon(repo string) (*net.UnixConn, error) {
	sock := controlSocketPath(repo)
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode()&fs.ModeSocket == 0 {
		return nil, errNoDaemon
	}
	p, done, err := shortSocketPath(sock)
	if err != nil {
		return nil, errNoDaemon
	}
	defer done()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: p, Net: "unix"})
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return nil, errNoDaemon
	default:
		return nil, fmt.Errorf("a daemon's control socket %s is there but cannot be reached: %w", sock, err)
	}
}

// forwardedExit carries the exit code of a command the daemon ran; its
// output was already relayed.
type forwardedExit struct{ code int }

func (e forwardedExit) Error() string { return "exit " + strconv.Itoa(e.code) }

// forward sends req over c and relays the command's output until its exit
// code arrives. When ctx ends (Ctrl-C) it asks the daemon to cancel and
// still waits a moment for the exit code, so the command's last words and
// its real code (130) reach the user.
func forward(ctx context.Context, c *net.UnixConn, req controlRequest, stdout, stderr io.Writer) (int, error) {
	defer c.Close()
	if err := writeFrame(c, req); err != nil {
		return 0, fmt.Errorf("sending the command to the daemon: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		c.CloseWrite()
		c.SetReadDeadline(time.Now().Add(controlGrace))
	})
	defer stop()
	for {
		var f controlFrame
		if err := readFrame(c, &f, maxFrame); err != nil {
			if ctx.Err() != nil {
				return exitInterrupted, nil
			}
			return 0, fmt.Errorf("the daemon closed the connection before the command finished (did it stop?): %w", err)
		}
		switch {
		case f.Exit != nil:
			return *f.Exit, nil
		case f.Stream == "stdout":
			stdout.Write(f.Data)
		case f.Stream == "stderr":
			stderr.Write(f.Data)
		}
	}
}

// forwardedCommands need the repo, so while a daemon holds it they run in
// the daemon. The others run here: init (idempotent, reads the identity
// without the lock), event (appends to the tree under its own lock),
// telemetry (tree files under their own locks; --watch is a loop of its
// own), guard, bundle (tree only), daemon, help.
var forwardedCommands = map[string]bool{
	"anchor": true, "verify": true, "export": true, "import": true,
	"status": true, "pins": true, "release": true,
}

// checkServed decides whether a command line the daemon received may run
// there, with the parser that runs it: it is the app's Before, so the
// global flags are parsed and c.Args().First() is the word urfave/cli is
// about to run as the command. Anything but a forwarded command is refused
// (a nested daemon would run on the daemon's node and replace its socket;
// init, event and the others run in the client's process anyway), and so
// is a command line that names another repo or config than the daemon's:
// the command runs on the daemon's open node, and writes that repo's chain
// head, remote pin queue and scheduler state, so it must be the repo (and
// the config) the daemon was started with.
func (g *globalOptions) checkServed(c *cli.Context) error {
	name := c.Args().First()
	cmd := c.App.Command(name)
	if cmd == nil || !forwardedCommands[cmd.Name] {
		return usagef("the daemon runs only %s, not %q; run that command without the daemon's socket (it does not need the repo)", strings.Join(keysOf(forwardedCommands), ", "), name)
	}
	d := g.daemon
	if d == nil {
		return fmt.Errorf("internal: a served command without its daemon")
	}
	if !samePath(g.Repo, d.node.RepoPath()) {
		return usagef("--repo %s is not the repo this daemon serves (%s): a command sent to a daemon runs on that daemon's node; run it against the repo's own daemon, or stop the daemon", g.Repo, d.node.RepoPath())
	}
	if g.ConfigFile != "" && !samePath(g.ConfigFile, d.g.configPath()) {
		return usagef("--config %s is not the config this daemon runs with (%s): a command sent to a daemon runs with the daemon's config; drop --config, or stop the daemon to run with another", g.ConfigFile, d.g.configPath())
	}
	return nil
}

// samePath says whether a and b name the same file or directory (through
// any symlinks); two paths that do not exist are the same only when they
// are spelled the same.
func samePath(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(sa, sb)
	}
	if errA == nil || errB == nil {
		return false
	}
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// secretEnvCommands may deliver notifications or pin remotely, so the
// client's secrets travel with them (see requestEnv).
var secretEnvCommands = map[string]bool{"anchor": true, "pins": true, "release": true}

// positionalPaths are commands whose arguments are file names.
var positionalPaths = map[string]bool{"import": true}

// maybeForward runs the command in the daemon serving g.Repo, if there is
// one. ok is false when the command must run here.
func maybeForward(c *cli.Context, g *globalOptions) (ok bool, err error) {
	name := c.Command.Name
	if g.served || !forwardedCommands[name] {
		return false, nil
	}
	conn, err := dialDaemon(g.Repo)
	if err != nil {
		if !errors.Is(err, errNoDaemon) {
			g.daemonErr = err
		}
		// The command opens the repo here: another user's repo is exit 3
		// with the owner named, whichever file the command would have
		// touched first (issue 25.16).
		if err := node.CheckAccess(g.Repo); err != nil {
			return true, err
		}
		return false, nil
	}
	argv, spelled, err := canonicalArgv(c, g)
	if err != nil {
		conn.Close()
		return true, err
	}
	cwd, _ := os.Getwd()
	req := controlRequest{Version: controlVersion, Argv: argv, Cwd: cwd, Env: requestEnv(name, g)}
	code, err := forward(c.Context, conn, req, respell(g.stdout, spelled), respell(g.stderr, spelled))
	if err != nil {
		return true, err
	}
	return true, forwardedExit{code}
}

// canonicalArgv rebuilds the command line with every setting explicit and
// every path absolute: the daemon has its own working directory and
// environment, so --root from SSID_ROOT or a relative --car must be
// resolved here. Path-valued flags are the ones marked TakesFile (or of
// type cli.PathFlag); a new path flag must set TakesFile. spelled maps each
// command path made absolute back to the user's spelling, so the output
// names "cars/x.car" as it would without the daemon.
func canonicalArgv(c *cli.Context, g *globalOptions) (argv []string, spelled map[string]string, err error) {
	spelled = map[string]string{}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		if a, err := filepath.Abs(p); err == nil {
			spelled[a] = p
			return a
		}
		return p
	}
	absGlobal := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	argv = []string{"ssid-anchor", "--root", absGlobal(g.Root), "--repo", absGlobal(g.Repo), "--log-level", g.LogLevel}
	if g.ConfigFile != "" {
		argv = append(argv, "--config", absGlobal(g.ConfigFile))
	}
	if g.LogFormat != "" {
		argv = append(argv, "--log-format", g.LogFormat)
	}
	if g.JSON {
		argv = append(argv, "--json")
	}
	argv = append(argv, c.Command.Name)
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if !c.IsSet(name) {
			// An unset path flag with a relative default would resolve
			// against the daemon's directory: send the default resolved.
			if sf, ok := f.(*cli.StringFlag); ok && sf.TakesFile && sf.Value != "" {
				argv = append(argv, "--"+name+"="+abs(sf.Value))
			}
			continue
		}
		switch f := f.(type) {
		case *cli.BoolFlag:
			argv = append(argv, "--"+name+"="+strconv.FormatBool(c.Bool(name)))
		case *cli.StringFlag:
			v := c.String(name)
			if f.TakesFile {
				v = abs(v)
			}
			argv = append(argv, "--"+name+"="+v)
		case *cli.PathFlag:
			argv = append(argv, "--"+name+"="+abs(c.Path(name)))
		case *cli.StringSliceFlag:
			for _, v := range c.StringSlice(name) {
				if f.TakesFile {
					v = abs(v)
				}
				argv = append(argv, "--"+name+"="+v)
			}
		case *cli.DurationFlag:
			argv = append(argv, "--"+name+"="+c.Duration(name).String())
		case *cli.IntFlag:
			argv = append(argv, "--"+name+"="+strconv.Itoa(c.Int(name)))
		case *cli.Int64Flag:
			argv = append(argv, "--"+name+"="+strconv.FormatInt(c.Int64(name), 10))
		case *cli.UintFlag:
			argv = append(argv, "--"+name+"="+strconv.FormatUint(uint64(c.Uint(name)), 10))
		case *cli.Float64Flag:
			argv = append(argv, "--"+name+"="+strconv.FormatFloat(c.Float64(name), 'g', -1, 64))
		default:
			return nil, nil, fmt.Errorf("internal: flag --%s of %s (%T) cannot be sent to the daemon; add its type to canonicalArgv", name, c.Command.Name, f)
		}
	}
	argv = append(argv, "--")
	for _, a := range c.Args().Slice() {
		if positionalPaths[c.Command.Name] {
			a = abs(a)
		}
		argv = append(argv, a)
	}
	return argv, spelled, nil
}

// respell writes through w with the absolute paths in spelled turned back
// into the user's spelling (longest first, so a path is never replaced
// inside a longer one). Commands print each line with one write, so a path
// is not split across writes.
func respell(w io.Writer, spelled map[string]string) io.Writer {
	if len(spelled) == 0 {
		return w
	}
	var pairs []string
	keys := make([]string, 0, len(spelled))
	for k := range spelled {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return len(keys[a]) > len(keys[b]) })
	for _, k := range keys {
		pairs = append(pairs, k, spelled[k])
	}
	return replaceWriter{w, strings.NewReplacer(pairs...)}
}

type replaceWriter struct {
	w io.Writer
	r *strings.Replacer
}

func (rw replaceWriter) Write(p []byte) (int, error) {
	if _, err := rw.r.WriteString(rw.w, string(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// secretEnvKeys are the variables that may hold secrets a forwarded command
// needs: notification channels (SPEC 2.4) and remote pinning tokens
// (SPEC 4.3, names from the config).
func secretEnvKeys(g *globalOptions) []string {
	keys := []string{"SLACK_WEBHOOK_URL", "DISCORD_WEBHOOK_URL", "WEBHOOK_URL", "SMTP_USERNAME", "SMTP_PASSWORD",
		"WEB3_STORAGE_AUTH_SECRET", "WEB3_STORAGE_AUTHORIZATION"}
	for _, s := range g.cfg.RemotePinning.Services {
		if s.TokenEnv != "" {
			keys = append(keys, s.TokenEnv)
		}
	}
	return keys
}

// requestEnv is the environment a forwarded command sees in the daemon,
// beyond the daemon's own. Non-secret settings travel as explicit flags
// (canonicalArgv), so nothing else is needed. Secrets travel only for
// commands that use them (anchor, pins, release may pin remotely or
// notify), only if set here, over the owner-only socket; the daemon keeps
// them in that request's memory, never in its own environment, logs or
// output. A variable not set here falls back to the daemon's (the systemd
// unit's EnvironmentFile), so the appliance's configured tokens work for a
// bare `ssid-anchor anchor`.
func requestEnv(cmd string, g *globalOptions) map[string]string {
	if !secretEnvCommands[cmd] {
		return nil
	}
	env := map[string]string{}
	for _, k := range secretEnvKeys(g) {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return env
}
