package tree

import (
	"os"
	"path/filepath"
	"testing"
)

// TestHeaderLineIsReported: the log's optional first line "Registry events
// initialized." is not an event and not a bad block; a read from the start
// says it skipped it (CursorRead.Header) so the caller can note it. A read
// that resumes from a cursor does not see it, and the same text anywhere
// else is text outside any event.
func TestHeaderLineIsReported(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/registry_events.log")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "registry_events.log")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next, info, bad, err := ReadEventsFrom(f, nil, func(Event) error { return nil })
	if err != nil || len(bad) != 0 || info.Header != 1 || info.Events == 0 {
		t.Fatalf("full read: header %d, %d events, bad %v, err %v", info.Header, info.Events, bad, err)
	}
	// The header again, after the cursor: now it is stray text.
	af, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	af.WriteString(InitLine + "\n")
	af.Close()
	_, info, bad, err = ReadEventsFrom(f, &next, func(Event) error { return nil })
	if err != nil || info.Mode != ReadAppended || info.Header != 0 || len(bad) != 1 || bad[0].Line != next.Lines+1 {
		t.Fatalf("resumed read: mode %s header %d bad %v err %v", info.Mode, info.Header, bad, err)
	}
}
