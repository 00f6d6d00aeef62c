package tree

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// NewEvent is what `ssid-anchor event` appends.
type NewEvent struct {
	Timestamp       string
	Event           string
	Version         string
	CommitHash      string
	Blueprint       string
	Root24Lock      string
	ComplianceScore string
	EmittedBy       string
}

// FormatEvent renders the classic pretty block (2-space indent, the 8 keys
// in the seed's order), without a trailing newline: exactly the bytes whose
// SHA-256 is the proof anchor.
func FormatEvent(e NewEvent) []byte {
	var b bytes.Buffer
	b.WriteString("{\n")
	kv := [][2]string{
		{"timestamp", e.Timestamp}, {"event", e.Event}, {"version", e.Version},
		{"commit_hash", e.CommitHash}, {"blueprint", e.Blueprint}, {"root_24_lock", e.Root24Lock},
		{"compliance_score", e.ComplianceScore}, {"emitted_by", e.EmittedBy},
	}
	for i, p := range kv {
		fmt.Fprintf(&b, "  %s: %s", jsonString(p[0]), jsonString(p[1]))
		if i < len(kv)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteByte('}')
	return b.Bytes()
}

func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return string(bytes.TrimRight(b.Bytes(), "\n"))
}

// AppendEvent appends e to the root-relative log rel under an exclusive
// lock, fsyncs it, and returns the proof anchor. The append is
// all-or-nothing: if the write or the fsync fails (a full disk), the log is
// truncated back to its old length, so no partial block is ever left for
// later runs to trip over. A missing log (and its directory) is created
// with the classic first line; if the log does not end in a newline (a
// JSONL writer that omitted it), one is added first so the block starts on
// its own line. Only a regular file is appended to: a FIFO or device in the
// log's place is refused without blocking.
func (r Root) AppendEvent(rel string, e NewEvent) (string, error) {
	return r.appendEvent(rel, e, (*os.File).Write)
}

// appendEvent is AppendEvent with the write as a seam, so a test can fail
// it part way the way a full disk does.
func (r Root) appendEvent(rel string, e NewEvent, write func(*os.File, []byte) (int, error)) (string, error) {
	name, err := r.check(rel)
	if err != nil {
		return "", err
	}
	block := FormatEvent(e)
	if err := r.r.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return "", fmt.Errorf("creating log directory: %w", r.confined("creating", rel, err))
	}
	const flags = os.O_RDWR | os.O_APPEND | syscall.O_NONBLOCK
	created := false
	f, err := r.r.OpenFile(name, flags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = r.r.OpenFile(name, flags|os.O_CREATE|os.O_EXCL, 0o644)
		created = err == nil
		if errors.Is(err, fs.ErrExist) { // another writer created it just now
			f, err = r.r.OpenFile(name, flags, 0)
		}
	}
	if err != nil {
		return "", r.confined("opening", rel, err)
	}
	defer f.Close()
	if err := regularOnly(f, rel); err != nil {
		return "", err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", rel, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	old := st.Size()
	var out []byte
	if old == 0 {
		out = append(out, InitLine+"\n"...)
	} else {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, old-1); err != nil && err != io.EOF {
			return "", err
		}
		if last[0] != '\n' {
			out = append(out, '\n')
		}
	}
	out = append(out, block...)
	out = append(out, '\n')
	n, err := write(f, out)
	if err == nil && n != len(out) {
		err = io.ErrShortWrite
	}
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("syncing: %w", err)
		}
	}
	if err != nil {
		// Take the partial block back out; the old bytes were never touched.
		if terr := f.Truncate(old); terr != nil {
			return "", fmt.Errorf("appending to %s: %w; truncating it back to %d bytes also failed (%v): remove everything after byte %d by hand", rel, err, old, terr, old)
		}
		if serr := f.Sync(); serr != nil {
			return "", fmt.Errorf("appending to %s: %w; syncing the truncation back to %d bytes also failed: %v", rel, err, old, serr)
		}
		// A log this call created stays, empty: removing it could strand a
		// writer already waiting for the lock on the unlinked file.
		return "", fmt.Errorf("appending to %s: %w (the log is unchanged)", rel, err)
	}
	if created {
		d, err := r.r.OpenFile(filepath.Dir(name), os.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			return "", err
		}
		defer d.Close()
		if err := d.Sync(); err != nil {
			return "", fmt.Errorf("syncing the log's directory: %w", err)
		}
	}
	sum := sha256.Sum256(block)
	return hex.EncodeToString(sum[:]), nil
}

// AppendEvent appends e to the log at path (outside any governance root:
// tests, a log given on the command line); see Root.AppendEvent, which the
// commands use.
func AppendEvent(path string, e NewEvent) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating log directory: %w", err)
	}
	r, err := OpenRoot(dir)
	if err != nil {
		return "", err
	}
	defer r.Close()
	return r.AppendEvent(filepath.Base(path), e)
}
