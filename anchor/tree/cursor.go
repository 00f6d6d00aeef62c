package tree

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// CursorTailLen is how many bytes before a cursor's offset its tail hash
// covers: when they still match, the log was only appended to since.
const CursorTailLen = 4096

// Cursor is how far a registry events log has been read. An append-only
// log is only read past Offset; TailSHA256 is the hash of the TailLen bytes
// just before it, and when they no longer match the log was rewritten or
// truncated and is read again from the start. Anchoring (in the manifest)
// and telemetry (in its state file) each keep one; the JSON names are
// telemetry's registry_log mark, which this type replaced.
type Cursor struct {
	Offset int64 `json:"offset"`
	// Lines is the number of lines before Offset, so line numbers of
	// events read from it stay true.
	Lines int `json:"lines"`
	// Count is the number of events before Offset (0 when unknown: a
	// reader that started inside the log, as telemetry's first check).
	Count      int    `json:"count,omitempty"`
	TailLen    int    `json:"tail_len"`
	TailSHA256 string `json:"tail_sha256"`
	// LastEvent is the proof anchor of the last event before Offset.
	LastEvent string `json:"last_event,omitempty"`
}

// CursorAt is a cursor at offset in f, with its tail hash.
func CursorAt(f io.ReaderAt, offset int64, lines, count int, last string) (Cursor, error) {
	n, sum, err := tailHash(f, offset)
	if err != nil {
		return Cursor{}, err
	}
	return Cursor{Offset: offset, Lines: lines, Count: count, TailLen: n, TailSHA256: sum, LastEvent: last}, nil
}

// Matches reports whether the log f of size bytes still holds, just before
// the cursor's offset, the bytes the cursor saw there.
func (c Cursor) Matches(f io.ReaderAt, size int64) bool {
	if c.Offset > size || c.Offset < int64(c.TailLen) || c.TailLen < 0 || c.TailSHA256 == "" && c.Offset > 0 {
		return false
	}
	n, sum, err := tailHash(f, c.Offset)
	return err == nil && n == c.TailLen && sum == c.TailSHA256
}

func tailHash(f io.ReaderAt, end int64) (int, string, error) {
	n := min(end, CursorTailLen)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, end-n); err != nil && !errors.Is(err, io.EOF) {
		return 0, "", err
	}
	sum := sha256.Sum256(buf)
	return int(n), hex.EncodeToString(sum[:]), nil
}

// How a cursor read started.
const (
	// ReadFull: no cursor was given; the log was read from its start.
	ReadFull = "full"
	// ReadAppended: the cursor matched; only the bytes after it were read.
	ReadAppended = "appended"
	// ReadRewritten: the log no longer holds the cursor's bytes (rewritten
	// or truncated); it was read again from its start.
	ReadRewritten = "rewritten"
)

// CursorRead says what a read from a cursor did.
type CursorRead struct {
	Mode string
	// From is the offset the read began at; BytesRead how many bytes it
	// read from there; Events how many events it passed to fn.
	From      int64
	BytesRead int64
	Events    int
	// Header is the line of the optional first line "Registry events
	// initialized." when this read skipped it (it is not an event), else 0.
	Header int
}

// ReadEventsFrom reads the events of an open log f after cursor c (nil: from
// the start) and returns the cursor to resume from next time. When c no
// longer matches the log's bytes the whole log is read again and the
// returned CursorRead says so (ReadRewritten). Events and bad blocks carry
// their true line numbers in the whole log. The new cursor stops before an
// event not yet closed at the end, so one being written is read whole next
// time. The log is read under a shared lock, so an event being appended by
// `ssid-anchor event` (which holds the exclusive one) is never seen
// half-written.
func ReadEventsFrom(f *os.File, c *Cursor, fn func(Event) error) (Cursor, CursorRead, []BadBlock, error) {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		return Cursor{}, CursorRead{}, nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	st, err := f.Stat()
	if err != nil {
		return Cursor{}, CursorRead{}, nil, err
	}
	size := st.Size()
	info := CursorRead{Mode: ReadFull}
	var base Cursor
	switch {
	case c == nil:
	case c.Matches(f, size):
		info.Mode, base = ReadAppended, *c
	default:
		info.Mode = ReadRewritten
	}
	next, read, bad, err := ReadEventsAt(f, size, base, fn)
	read.Mode = info.Mode
	return next, read, bad, err
}

// ReadEventsAt reads the events of f (size bytes long) from base.Offset
// on, numbering lines and events after base.Lines and base.Count, and
// returns the cursor to resume from. It neither locks f nor checks base's
// tail: ReadEventsFrom does both; a caller that holds the lock and picks
// its own start (telemetry's window over a log it has no cursor for) calls
// this.
func ReadEventsAt(f *os.File, size int64, base Cursor, fn func(Event) error) (Cursor, CursorRead, []BadBlock, error) {
	info := CursorRead{Mode: ReadAppended, From: base.Offset}
	if base.Offset == 0 {
		info.Mode = ReadFull
	}
	if base.Offset > size {
		return Cursor{}, info, nil, fmt.Errorf("reading %s: offset %d past the end (%d bytes)", f.Name(), base.Offset, size)
	}
	cr := &countingReader{r: io.NewSectionReader(f, base.Offset, size-base.Offset)}
	bad, end, err := scanEvents(cr, base.Offset == 0, func(e Event) error {
		info.Events++
		e.Line += base.Lines
		e.EndLine += base.Lines
		e.Index += base.Count
		return fn(e)
	})
	info.BytesRead, info.Header = cr.n, end.Header
	for i := range bad {
		bad[i].Line += base.Lines
		if bad[i].EndLine > 0 {
			bad[i].EndLine += base.Lines
		}
	}
	if err != nil {
		return Cursor{}, info, bad, err
	}
	last := end.Last
	if end.Count == 0 {
		last = base.LastEvent
	}
	next, err := CursorAt(f, base.Offset+end.Offset, base.Lines+end.Lines, base.Count+end.Count, last)
	if err != nil {
		return Cursor{}, info, bad, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	return next, info, bad, nil
}

// ReadEventsFrom reads the root-relative events log after cursor c; see
// the function ReadEventsFrom.
func (r Root) ReadEventsFrom(rel string, c *Cursor, fn func(Event) error) (Cursor, CursorRead, []BadBlock, error) {
	f, err := r.Open(rel)
	if err != nil {
		return Cursor{}, CursorRead{}, nil, err
	}
	defer f.Close()
	return ReadEventsFrom(f, c, fn)
}

// countingReader counts the bytes a scan consumed: the seam tests use to
// prove a resumed read touched only the appended bytes.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
