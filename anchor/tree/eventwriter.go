package tree

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
	// Extra keys follow the classic eight, in this order, as JSON strings
	// (the release event adds quarter and bundle_hash, SPEC 2.1).
	Extra [][2]string
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
	kv = append(kv, e.Extra...)
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

// AppendEvent appends e to the log at path under an exclusive lock, fsyncs
// it, and returns the proof anchor. A missing log (and its directory) is
// created with the classic first line. If the log does not end in a newline
// (a JSONL writer that omitted it), one is added first so the block starts
// on its own line.
func AppendEvent(path string, e NewEvent) (string, error) {
	block := FormatEvent(e)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("creating log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", path, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	var out []byte
	if st.Size() == 0 {
		out = append(out, InitLine+"\n"...)
	} else {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err != nil && err != io.EOF {
			return "", err
		}
		if last[0] != '\n' {
			out = append(out, '\n')
		}
	}
	out = append(out, block...)
	out = append(out, '\n')
	if _, err := f.Write(out); err != nil {
		return "", fmt.Errorf("appending to %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("syncing %s: %w", path, err)
	}
	if st.Size() == 0 {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return "", err
		}
	}
	sum := sha256.Sum256(block)
	return hex.EncodeToString(sum[:]), nil
}
