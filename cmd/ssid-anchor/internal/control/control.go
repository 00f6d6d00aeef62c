// Package control is the protocol of the daemon's control socket: while a
// daemon holds the repo, every command that needs the repo sends its
// command line over a unix socket in the repo (mode 0600) and the daemon
// runs it on its open node, streaming the output back and returning the
// same exit code (SPEC 4.5).
//
// Protocol, chosen because a command's output is a byte stream and needs no
// more: every message is a frame, a 4-byte big-endian length followed by
// that many bytes of JSON. The client sends one Request frame and then
// nothing; closing its write side (or the connection) means "cancel"
// (Ctrl-C). The daemon sends Frame{Stream, Data} frames as the command
// writes to stdout and stderr, then one Frame{Exit} and closes.
//
// The package knows nothing of the command line or of what a command does:
// the server runs each request through the Handler it is given, and the
// client forwards a Request its caller built.
package control

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

const (
	// SocketName is the socket's file name inside the repo.
	SocketName = "ssid-anchor.sock"
	// Version is the protocol version a Request carries; a daemon answers
	// another version with exit 2 and a message.
	Version = 1
	// MaxFrame bounds what the client accepts from the daemon (a command
	// may write a large chunk at once); MaxRequest bounds the one frame the
	// daemon reads from a client (argv, cwd, a few variables), so a client
	// cannot make the daemon allocate 16 MiB per connection.
	MaxFrame   = 16 << 20
	MaxRequest = 1 << 20
	// Grace is how long, after a cancel, the client still waits for the
	// exit code and the daemon still tries to write to it.
	Grace = 5 * time.Second
)

// The exit codes the protocol itself answers with (SPEC 3), for what
// happens outside the command a Handler runs.
const (
	ExitFailure     = 1   // the command panicked in the daemon
	ExitUsage       = 2   // the client speaks another protocol version
	ExitInterrupted = 130 // the client was cancelled and the exit code did not arrive in time
)

// Request is the one frame a client sends: the command line, rebuilt by
// the client with every setting explicit, the client's working directory,
// and the variables the command may read from the client's environment.
type Request struct {
	Version int               `json:"version"`
	Argv    []string          `json:"argv"`
	Cwd     string            `json:"cwd"`
	Env     map[string]string `json:"env,omitempty"`
}

// Frame is one message from the daemon: output of one stream, or the exit
// code. The first frame carries only the daemon's PID.
type Frame struct {
	Stream string `json:"stream,omitempty"` // "stdout" or "stderr"
	Data   []byte `json:"data,omitempty"`
	Exit   *int   `json:"exit,omitempty"`
	PID    int    `json:"pid,omitempty"` // the daemon's, in the first frame
}

// SocketPath is the control socket of the repo at repo.
func SocketPath(repo string) string {
	abs, err := filepath.Abs(repo)
	if err != nil {
		abs = repo
	}
	return filepath.Join(abs, SocketName)
}

// sunPathMax is the room for a socket path in sockaddr_un on Linux (108
// bytes with the NUL). Longer paths are reached through /proc/self/fd.
const sunPathMax = 107

// ShortSocketPath returns a path to sock no longer than sun_path allows:
// sock itself, or /proc/self/fd/<fd of its directory>/<name> with the
// directory held open until done is called.
func ShortSocketPath(sock string) (path string, done func(), err error) {
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

// readFrame reads one frame into v; a length over limit is refused before
// anything is allocated for it.
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
