package control

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// streamLog records what the client relays, in order, tagged by stream.
type streamLog struct {
	mu  sync.Mutex
	seq []string
	out bytes.Buffer
}

type tagged struct {
	l   *streamLog
	tag string
}

func (w tagged) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	w.l.seq = append(w.l.seq, w.tag+":"+string(p))
	if w.tag == "stdout" {
		w.l.out.Write(p)
	}
	return len(p), nil
}

// TestRoundTrip: what the handler writes reaches the client's streams in
// the order it was written, bytes intact (a chunk larger than a socket
// buffer too), and the handler's exit code is the client's; the handler
// sees the request as the client sent it.
func TestRoundTrip(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	big := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for i := range big {
		big[i] = byte(rng.UintN(256))
	}
	repo := t.TempDir()
	var got Request
	serve(t, repo, func(ctx context.Context, req Request, stdout, stderr io.Writer) int {
		got = req
		io.WriteString(stdout, "o1\n")
		io.WriteString(stderr, "e1\n")
		io.WriteString(stdout, "o2\n")
		stdout.Write(big)
		io.WriteString(stderr, "e2\n")
		return 42
	}, ServerOptions{})
	c, err := Dial(repo)
	if err != nil {
		t.Fatal(err)
	}
	var l streamLog
	req := Request{Version: Version, Argv: []string{"ssid-anchor", "status", "--"}, Cwd: "/some/dir", Env: map[string]string{"K": "v"}}
	code, err := Forward(context.Background(), c, req, tagged{&l, "stdout"}, tagged{&l, "stderr"})
	if err != nil || code != 42 {
		t.Fatalf("Forward: exit %d, %v; want 42", code, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(req) {
		t.Errorf("the handler got %+v, the client sent %+v", got, req)
	}
	want := []string{"stdout:o1\n", "stderr:e1\n", "stdout:o2\n", "stdout:" + string(big), "stderr:e2\n"}
	if len(l.seq) != len(want) {
		t.Fatalf("relayed %d writes, want %d", len(l.seq), len(want))
	}
	for i := range want {
		if l.seq[i] != want[i] {
			t.Fatalf("write %d relayed as %.40q, want %.40q", i, l.seq[i], want[i])
		}
	}
	if !bytes.Equal(l.out.Bytes()[6:], big) {
		t.Fatal("the large chunk changed on the way")
	}
}

// failAfter accepts n writes, then fails every write with err.
type failAfter struct {
	n, writes int
	err       error
}

func (w *failAfter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes > w.n {
		return 0, w.err
	}
	return len(p), nil
}

// TestStdoutWriteErrorStopsForwarding: when the client's stdout fails
// (`ssid-anchor export | head` after head exits, a full disk), the client
// stops reading at once, writes nothing more, and its closing the
// connection cancels the command in the daemon. Before, the client
// ignored the error and read on until the command finished: here the
// command waits for its cancel, so the old client never returned.
func TestStdoutWriteErrorStopsForwarding(t *testing.T) {
	for _, werr := range []error{syscall.EPIPE, syscall.ENOSPC} {
		t.Run(werr.Error(), func(t *testing.T) {
			repo := t.TempDir()
			cancelled := make(chan struct{})
			serve(t, repo, func(ctx context.Context, req Request, stdout, stderr io.Writer) int {
				for i := range 5 {
					fmt.Fprintf(stdout, "record %d\n", i)
				}
				<-ctx.Done()
				close(cancelled)
				return ExitInterrupted
			}, ServerOptions{})
			c, err := Dial(repo)
			if err != nil {
				t.Fatal(err)
			}
			out := &failAfter{n: 2, err: werr}
			type result struct {
				code int
				err  error
			}
			done := make(chan result, 1)
			go func() {
				code, err := Forward(context.Background(), c, Request{Version: Version, Argv: []string{"ssid-anchor", "export"}}, out, io.Discard)
				done <- result{code, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(time.Minute):
				t.Fatal("the client kept forwarding after its stdout failed")
			}
			var oe *OutputError
			if !errors.As(r.err, &oe) || !errors.Is(r.err, werr) || !strings.Contains(r.err.Error(), "writing the command's output") {
				t.Fatalf("Forward: exit %d, %v; want an *OutputError wrapping %v", r.code, r.err, werr)
			}
			if out.writes != 3 {
				t.Errorf("stdout was written %d times, want 3 (two, then the one that failed)", out.writes)
			}
			select {
			case <-cancelled:
			case <-time.After(time.Minute):
				t.Fatal("the command in the daemon was not cancelled when the client stopped")
			}
		})
	}
}

// TestClientCloseCancels: a client that goes away (killed, its connection
// closed) cancels the command it sent; the server goes on serving.
func TestClientCloseCancels(t *testing.T) {
	repo := t.TempDir()
	started := make(chan struct{})
	cancelled := make(chan error, 1)
	serve(t, repo, func(ctx context.Context, req Request, stdout, stderr io.Writer) int {
		if req.Argv[1] == "block" {
			close(started)
			<-ctx.Done()
			cancelled <- ctx.Err()
			return ExitInterrupted
		}
		return 0
	}, ServerOptions{})
	c, err := Dial(repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(c, Request{Version: Version, Argv: []string{"ssid-anchor", "block"}}); err != nil {
		t.Fatal(err)
	}
	<-started
	c.Close()
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the handler's ctx ended with %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("closing the client's connection did not cancel the command")
	}
	if code, _, _ := callSocket(t, context.Background(), repo, "ssid-anchor", "next"); code != 0 {
		t.Fatalf("the next command: exit %d", code)
	}
}

// TestOversizedRequestRefused: a request frame over MaxRequest is refused
// before anything is read for it; the handler never runs and the log says
// why.
func TestOversizedRequestRefused(t *testing.T) {
	repo := t.TempDir()
	var logBuf lockedBuffer
	var ran atomic.Bool
	serve(t, repo, func(context.Context, Request, io.Writer, io.Writer) int { ran.Store(true); return 0 },
		ServerOptions{Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	c, err := Dial(repo)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(binary.BigEndian.AppendUint32(nil, MaxRequest+1)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after an oversized request the daemon sent %d bytes (%v); want the connection closed", n, err)
	}
	if ran.Load() {
		t.Fatal("the handler ran an oversized request")
	}
	if l := logBuf.String(); !strings.Contains(l, "bad request") || !strings.Contains(l, fmt.Sprintf("over the %d byte limit", MaxRequest)) {
		t.Fatalf("the log does not name the refused request:\n%s", l)
	}
}

// TestOversizedFrameRefusedByClient: a frame from the daemon over MaxFrame
// ends the forwarding with an error instead of an allocation of its size.
func TestOversizedFrameRefusedByClient(t *testing.T) {
	repo := t.TempDir()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: SocketPath(repo), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		var req Request
		readFrame(c, &req, MaxRequest)
		c.Write(binary.BigEndian.AppendUint32(nil, MaxFrame+1))
		io.Copy(io.Discard, c)
	}()
	c, err := Dial(repo)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Forward(context.Background(), c, Request{Version: Version, Argv: []string{"ssid-anchor", "status"}}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("over the %d byte limit", MaxFrame)) {
		t.Fatalf("Forward: %v; want the frame refused for its size", err)
	}
}

// TestStaleSocketReplaced: a socket file left by a daemon that died is
// "no daemon" to a client, and the next server replaces it, saying so.
func TestStaleSocketReplaced(t *testing.T) {
	repo := t.TempDir()
	leaveStaleSocket(t, repo)
	var logBuf lockedBuffer
	serve(t, repo, func(context.Context, Request, io.Writer, io.Writer) int { return 5 },
		ServerOptions{Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if !strings.Contains(logBuf.String(), "removing a stale control socket") {
		t.Errorf("the log does not say the stale socket was replaced:\n%s", logBuf.String())
	}
	if code, _, _ := callSocket(t, context.Background(), repo, "ssid-anchor", "x"); code != 5 {
		t.Fatalf("through the replaced socket: exit %d, want 5", code)
	}
	if entries, _ := os.ReadDir(repo); len(entries) != 1 {
		t.Errorf("the repo holds %d entries, want the socket alone (no leftover temp dir)", len(entries))
	}
}

// TestCloseWaitsForRunningRequests: Close cancels a running command and
// returns only once the command has returned and its exit code went to
// the client; a ctx that ends first stops the wait. The socket goes.
func TestCloseWaitsForRunningRequests(t *testing.T) {
	repo := t.TempDir()
	srv, err := Listen(repo, nil, ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	cancelled := make(chan struct{})
	release := make(chan struct{})
	srv.handle = func(ctx context.Context, req Request, stdout, stderr io.Writer) int {
		close(started)
		<-ctx.Done()
		close(cancelled)
		<-release // the command's cleanup
		io.WriteString(stderr, "ssid-anchor: interrupted\n")
		return ExitInterrupted
	}
	go srv.Serve()
	c, err := Dial(repo)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		errs string
		err  error
	}
	client := make(chan result, 1)
	go func() {
		var errb strings.Builder
		code, err := Forward(context.Background(), c, Request{Version: Version, Argv: []string{"ssid-anchor", "anchor"}}, io.Discard, &errb)
		client <- result{code, errb.String(), err}
	}()
	<-started

	closed := make(chan error, 1)
	go func() { closed <- srv.Close(context.Background()) }()
	<-cancelled
	// The command has not returned (it waits for release), so Close
	// cannot have.
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a command was still running", err)
	default:
	}
	// A Close whose ctx has ended stops waiting.
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Close(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with an ended ctx: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	r := <-client
	if r.err != nil || r.code != ExitInterrupted || r.errs != "ssid-anchor: interrupted\n" {
		t.Fatalf("the client got exit %d, stderr %q, %v; want the command's own exit 130 and last words", r.code, r.errs, r.err)
	}
	if _, err := os.Lstat(SocketPath(repo)); !os.IsNotExist(err) {
		t.Fatalf("the socket is still there after Close: %v", err)
	}
	if _, err := Dial(repo); err != ErrNoDaemon {
		t.Fatalf("dial after Close: %v, want ErrNoDaemon", err)
	}
}

// TestPeerAllowed is checkPeer's rule: the daemon's own uid and root
// pass, any other uid is refused with both named.
func TestPeerAllowed(t *testing.T) {
	for _, tc := range []struct {
		peer, daemon int
		ok           bool
	}{
		{1000, 1000, true}, {0, 1000, true}, {0, 0, true},
		{1001, 1000, false}, {65534, 0, false}, {1000, 0, false},
	} {
		err := peerAllowed(tc.peer, tc.daemon)
		if (err == nil) != tc.ok {
			t.Errorf("peer %d, daemon %d: %v, want allowed=%v", tc.peer, tc.daemon, err, tc.ok)
		}
		if err != nil && err.Error() != fmt.Sprintf("peer uid %d is not the daemon's uid %d", tc.peer, tc.daemon) {
			t.Errorf("refusal reads %q", err)
		}
	}
}
