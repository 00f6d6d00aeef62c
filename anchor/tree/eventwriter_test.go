package tree

import (
	"os"
	"path/filepath"
	"testing"
)

// TestAppendEventExtraKeys: the release event's quarter and bundle_hash
// follow the classic eight keys, read back as fields, and the proof anchor
// covers them.
func TestAppendEventExtraKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry_events.log")
	ev := NewEvent{Timestamp: "2027-01-01T09:00:00Z", Event: "governance_release_published", Version: "v4.3-Q4-2026",
		CommitHash: "unknown", Blueprint: "v4.3", Root24Lock: "active", ComplianceScore: "97/100", EmittedBy: "ssid-anchor",
		Extra: [][2]string{{"quarter", "2026-Q4"}, {"bundle_hash", "c01a\"9358"}}}
	pa, err := AppendEvent(path, ev)
	if err != nil {
		t.Fatal(err)
	}
	var got []Event
	bad, err := ReadEventsFile(path, func(e Event) error { got = append(got, e); return nil })
	if err != nil || len(bad) != 0 || len(got) != 1 {
		t.Fatalf("read back: %v, bad %v, %d events", err, bad, len(got))
	}
	e := got[0]
	if e.ProofAnchor != pa || e.Field("quarter") != "2026-Q4" || e.Field("bundle_hash") != "c01a\"9358" || e.Field("emitted_by") != "ssid-anchor" {
		t.Errorf("event %s (anchor %s, want %s)", e.Raw, e.ProofAnchor, pa)
	}
	b, _ := os.ReadFile(path)
	want := InitLine + "\n" + string(FormatEvent(ev)) + "\n"
	if string(b) != want {
		t.Errorf("log:\n%s\nwant:\n%s", b, want)
	}
	if e.EndLine-e.Line != 11 {
		t.Errorf("block spans lines %d-%d, want 12 lines (braces + 10 keys)", e.Line, e.EndLine)
	}
}
