package tree

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func prettyEvent(i int) string {
	return fmt.Sprintf("{\n  \"event\": \"e%d\",\n  \"n\": %d\n}\n", i, i)
}

func readFrom(t *testing.T, r Root, c *Cursor) (Cursor, CursorRead, []Event, []BadBlock) {
	t.Helper()
	var evs []Event
	next, info, bad, err := r.ReadEventsFrom("events.log", c, func(e Event) error {
		evs = append(evs, e)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadEventsFrom: %v", err)
	}
	return next, info, evs, bad
}

// A resumed read touches only the appended bytes and numbers lines and
// events as a full read would.
func TestCursorResumesAfterAppend(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(InitLine + "\n")
	for i := range 500 {
		b.WriteString(prettyEvent(i))
	}
	logPath := filepath.Join(dir, "events.log")
	if err := os.WriteFile(logPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c1, info, evs, bad := readFrom(t, r, nil)
	if info.Mode != ReadFull || len(evs) != 500 || len(bad) != 0 || c1.Count != 500 || c1.Offset != int64(b.Len()) {
		t.Fatalf("first read: mode %s, %d events, bad %v, cursor %+v (log %d bytes)", info.Mode, len(evs), bad, c1, b.Len())
	}
	if c1.LastEvent != evs[499].ProofAnchor || c1.TailLen != CursorTailLen {
		t.Fatalf("cursor %+v does not end at the last event %s", c1, evs[499].ProofAnchor)
	}
	// Append three events, the last one still being written.
	added := prettyEvent(500) + prettyEvent(501) + "{\n  \"event\": \"e502\",\n"
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(added)
	c2, info, evs, bad := readFrom(t, r, &c1)
	if info.Mode != ReadAppended || info.From != c1.Offset || info.BytesRead != int64(len(added)) || info.Events != 2 {
		t.Fatalf("second read: %+v, want appended from %d reading %d bytes and 2 events", info, c1.Offset, len(added))
	}
	if len(evs) != 2 || evs[0].Name() != "e500" || evs[1].Name() != "e501" {
		t.Fatalf("second read events: %v", evs)
	}
	// Line numbers are the log's: 1 init line + 4 lines per event.
	if want := 1 + 500*4 + 1; evs[0].Line != want {
		t.Fatalf("e500 at line %d, want %d", evs[0].Line, want)
	}
	if len(bad) != 1 || !strings.Contains(bad[0].Reason, "not closed at end of file") || bad[0].Line != 1+502*4+1 {
		t.Fatalf("the open event at the end: bad %v", bad)
	}
	if c2.Count != 502 || c2.Offset != c1.Offset+int64(len(added))-int64(len("{\n  \"event\": \"e502\",\n")) || c2.LastEvent != evs[1].ProofAnchor {
		t.Fatalf("cursor after the append %+v stops past the open event", c2)
	}
	// The event completes: it is read whole from the cursor.
	f.WriteString("  \"n\": 502\n}\n")
	f.Close()
	c3, info, evs, bad := readFrom(t, r, &c2)
	if info.Mode != ReadAppended || len(evs) != 1 || evs[0].Name() != "e502" || len(bad) != 0 || c3.Count != 503 || evs[0].Line != 1+502*4+1 {
		t.Fatalf("third read: %+v, events %v, bad %v, cursor %+v", info, evs, bad, c3)
	}
	// Nothing new: nothing read, the cursor stays.
	c4, info, evs, _ := readFrom(t, r, &c3)
	if info.BytesRead != 0 || len(evs) != 0 || c4 != c3 {
		t.Fatalf("idle read: %+v, %d events, cursor %+v vs %+v", info, len(evs), c4, c3)
	}
}

// A log rewritten or truncated before the cursor is read again whole.
func TestCursorRewrittenLogReadAgain(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := range 50 {
		b.WriteString(prettyEvent(i))
	}
	logPath := filepath.Join(dir, "events.log")
	os.WriteFile(logPath, []byte(b.String()), 0o644)
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c1, _, _, _ := readFrom(t, r, nil)

	// Truncated to 20 events: shorter than the cursor.
	b.Reset()
	for i := range 20 {
		b.WriteString(prettyEvent(i))
	}
	os.WriteFile(logPath, []byte(b.String()), 0o644)
	c2, info, evs, _ := readFrom(t, r, &c1)
	if info.Mode != ReadRewritten || info.From != 0 || len(evs) != 20 || c2.Count != 20 || evs[0].Line != 1 {
		t.Fatalf("after truncation: %+v, %d events, cursor %+v", info, len(evs), c2)
	}

	// Same length, one byte changed before the cursor, then an append.
	s := []byte(b.String())
	i := strings.Index(string(s), "e19")
	s[i+1] = '9'
	s = append(s, prettyEvent(20)...)
	os.WriteFile(logPath, s, 0o644)
	c3, info, evs, _ := readFrom(t, r, &c2)
	if info.Mode != ReadRewritten || len(evs) != 21 || evs[19].Name() != "e99" || c3.Count != 21 {
		t.Fatalf("after a rewrite: %+v, %d events, cursor %+v", info, len(evs), c3)
	}
}

// An event closed on a last line without newline is taken; the cursor
// resumes mid-line and later lines keep their true numbers.
func TestCursorUnterminatedLastLine(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "events.log")
	os.WriteFile(logPath, []byte(`{"event":"a"}`+"\n"+`{"event":"b"}`), 0o644)
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c1, _, evs, _ := readFrom(t, r, nil)
	if len(evs) != 2 || c1.Count != 2 || c1.Lines != 1 || c1.Offset != int64(len(`{"event":"a"}`+"\n"+`{"event":"b"}`)) {
		t.Fatalf("first read: %d events, cursor %+v", len(evs), c1)
	}
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\n" + `{"event":"c"}` + "\n")
	f.Close()
	c2, info, evs, bad := readFrom(t, r, &c1)
	if info.Mode != ReadAppended || len(evs) != 1 || evs[0].Name() != "c" || evs[0].Line != 3 || evs[0].Index != 3 || len(bad) != 0 || c2.Lines != 3 {
		t.Fatalf("resumed mid-line: %+v, events %+v, bad %v, cursor %+v", info, evs, bad, c2)
	}
}
