package tree

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func scanFile(t *testing.T, path string) ([]Event, []BadBlock) {
	t.Helper()
	var evs []Event
	bad, err := ReadEventsFile(path, func(e Event) error {
		evs = append(evs, e)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadEventsFile(%s): %v", path, err)
	}
	return evs, bad
}

func TestScanEventsRealLog(t *testing.T) {
	evs, bad := scanFile(t, "testdata/registry_events.log")
	if len(bad) != 0 {
		t.Fatalf("bad blocks in the real log: %v", bad)
	}
	wantNames := []string{"blueprint_tagged", "governance_dashboard_added", "ci_automation_added",
		"governance_bootstrap", "governance_ecosystem_activated", "governance_activation_committed",
		"blueprint_promotion_complete", "blueprint_v4.4_readiness_verification",
		"blueprint_v4.4_readiness_archive_complete", "blueprint_v4.4_certification_sealed",
		"blueprint_v4.5_prelaunch_initiated", "blueprint_v4.5_monitoring_ready"}
	if len(evs) != len(wantNames) {
		t.Fatalf("got %d events, want %d", len(evs), len(wantNames))
	}
	for i, e := range evs {
		if e.Name() != wantNames[i] {
			t.Errorf("event %d: name %q, want %q", i, e.Name(), wantNames[i])
		}
		if len(e.Fields()) != 8 {
			t.Errorf("event %d: %d keys, want 8", i, len(e.Fields()))
		}
	}
	vectors := map[string]string{
		"governance_bootstrap": "ed83883ffcc664cf5a5c264e9daa04f702450aa4b1cc3a23d35786fcfc25cfe1",
		"blueprint_tagged":     "dc9bb56b17bbb7f5c4ba2ae0eea6befbf301b22a042f639f38866059aa92bee3",
	}
	for _, e := range evs {
		if want, ok := vectors[e.Name()]; ok && e.ProofAnchor != want {
			t.Errorf("%s: proof anchor %s, want %s", e.Name(), e.ProofAnchor, want)
		}
	}
	// The commit message of afdc3eec quotes these prefixes.
	for name, prefix := range map[string]string{"blueprint_v4.5_prelaunch_initiated": "e8e97ce1", "blueprint_v4.5_monitoring_ready": "9e101cb2"} {
		for _, e := range evs {
			if e.Name() == name && !strings.HasPrefix(e.ProofAnchor, prefix) {
				t.Errorf("%s: proof anchor %s, want prefix %s", name, e.ProofAnchor, prefix)
			}
		}
	}
	if evs[0].Line != 2 || evs[0].EndLine != 11 {
		t.Errorf("first event at lines %d-%d, want 2-11", evs[0].Line, evs[0].EndLine)
	}
}

func TestScanEventsMixedForms(t *testing.T) {
	evs, bad := scanFile(t, "testdata/mixed_events.log")
	if len(bad) != 0 {
		t.Fatalf("unexpected bad blocks: %v", bad)
	}
	var names []string
	for _, e := range evs {
		names = append(names, e.Name())
	}
	want := "blueprint_tagged federation_sync governance_release_published compact_multi"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	rel := evs[2]
	if rel.Field("quarter") != "2026-Q1" || rel.Field("bundle_hash") != "ffee" {
		t.Errorf("release fields: quarter %q bundle_hash %q", rel.Field("quarter"), rel.Field("bundle_hash"))
	}
	if _, ok := rel.Fields()["bundle_details"]; !ok {
		t.Error("nested bundle_details was not kept")
	}
	if evs[1].Field("note") != "a } brace and a { in a string" {
		t.Errorf("JSONL string with braces: %q", evs[1].Field("note"))
	}
	// The proof anchor covers exactly the bytes from { to }.
	raw, err := os.ReadFile("testdata/mixed_events.log")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte(`{"timestamp": "2025-10-12`))
	j := bytes.Index(raw[i:], []byte("}\n"))
	sum := sha256.Sum256(raw[i : i+j+1])
	if evs[1].ProofAnchor != hex.EncodeToString(sum[:]) {
		t.Errorf("JSONL proof anchor %s, want %x", evs[1].ProofAnchor, sum)
	}
}

func TestScanEventsCorruptBlocksReported(t *testing.T) {
	evs, bad := scanFile(t, "testdata/corrupt_events.log")
	var names []string
	for _, e := range evs {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "first_ok jsonl_ok last_ok" {
		t.Fatalf("good events %q, want first_ok jsonl_ok last_ok", got)
	}
	if len(bad) != 2 {
		t.Fatalf("got %d bad blocks, want 2: %v", len(bad), bad)
	}
	if bad[0].Line != 7 || bad[0].EndLine != 11 || !strings.Contains(bad[0].Reason, "not a valid JSON object") {
		t.Errorf("bad[0] = %v, want lines 7-11 invalid JSON", bad[0])
	}
	// The unterminated JSONL object swallows the stray text after it until
	// the next object starts; both lines are named.
	if bad[1].Line != 13 || bad[1].EndLine != 14 || !strings.Contains(bad[1].Reason, "not closed") {
		t.Errorf("bad[1] = %v, want the unterminated JSONL at lines 13-14", bad[1])
	}
}

func TestAppendEventRoundTrip(t *testing.T) {
	path := t.TempDir() + "/logs/registry_events.log"
	ev := NewEvent{Timestamp: "2026-01-01T00:00:00Z", Event: "x\"y", Version: "v1\n2", CommitHash: "<h>",
		Blueprint: "v4.3", Root24Lock: "active", ComplianceScore: "100/100", EmittedBy: "ssid-anchor"}
	pa, err := AppendEvent(path, ev)
	if err != nil {
		t.Fatal(err)
	}
	// A JSONL writer that leaves no final newline must not glue blocks.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"event":"jsonl_no_newline"}`)
	f.Close()
	pa2, err := AppendEvent(path, ev)
	if err != nil {
		t.Fatal(err)
	}
	evs, bad := scanFile(t, path)
	if len(bad) != 0 || len(evs) != 3 {
		t.Fatalf("got %d events, bad %v", len(evs), bad)
	}
	if evs[0].ProofAnchor != pa || evs[2].ProofAnchor != pa2 {
		t.Errorf("printed proof anchors %s/%s differ from the parsed ones %s/%s", pa, pa2, evs[0].ProofAnchor, evs[2].ProofAnchor)
	}
	if evs[0].Name() != `x"y` || evs[0].Field("version") != "v1\n2" || evs[0].Field("commit_hash") != "<h>" {
		t.Errorf("values not escaped/unescaped faithfully: %v", evs[0].Fields())
	}
	raw, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(raw), InitLine+"\n{\n  \"timestamp\"") {
		t.Errorf("new log does not start with the classic init line and block:\n%s", raw)
	}
}

func TestScanEventsBoundedOnHugeBlock(t *testing.T) {
	var b strings.Builder
	b.WriteString("{\n  \"event\": \"huge\",\n  \"pad\": \"")
	b.WriteString(strings.Repeat("x", maxEventBytes+10))
	b.WriteString("\"\n}\n{\"event\":\"after\"}\n")
	var names []string
	bad, err := ScanEvents(strings.NewReader(b.String()), func(e Event) error {
		names = append(names, e.Name())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "after" || len(bad) != 1 || !strings.Contains(bad[0].Reason, "larger than") {
		t.Fatalf("names %v bad %v", names, bad)
	}
}

func FuzzScanEvents(f *testing.F) {
	for _, p := range []string{"testdata/registry_events.log", "testdata/mixed_events.log", "testdata/corrupt_events.log"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte("\n")) + 1
		bad, err := ScanEvents(bytes.NewReader(data), func(e Event) error {
			if e.Line < 1 || e.EndLine < e.Line || e.EndLine > lines {
				t.Fatalf("event lines %d-%d outside 1-%d", e.Line, e.EndLine, lines)
			}
			fields := e.Fields()
			if fields == nil {
				t.Fatal("event without fields")
			}
			// The fast name extraction agrees with a full decode.
			if want := rawText(fields["event"]); e.Name() != want {
				t.Fatalf("Name() %q, full decode %q, raw %s", e.Name(), want, e.Raw)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("reading from memory failed: %v", err)
		}
		for _, b := range bad {
			if b.Line < 1 || b.Line > lines {
				t.Fatalf("bad block line %d outside 1-%d", b.Line, lines)
			}
		}
	})
}

// BenchmarkScanEvents parses a log of pretty events and reports the ratio to
// SHA-256 of the same bytes (the floor: both read every byte once).
func BenchmarkScanEvents(b *testing.B) {
	var log bytes.Buffer
	log.WriteString(InitLine + "\n")
	for i := range 100000 {
		log.Write(FormatEvent(NewEvent{Timestamp: "2026-01-01T00:00:00Z", Event: fmt.Sprintf("event_%d", i),
			Version: "v4.3.0", CommitHash: strings.Repeat("ab", 20), Blueprint: "v4.3", Root24Lock: "active",
			ComplianceScore: "100/100", EmittedBy: "bench"}))
		log.WriteByte('\n')
	}
	data := log.Bytes()
	start := time.Now()
	for range 5 {
		sha256.Sum256(data)
	}
	floor := time.Since(start) / 5
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if _, err := ScanEvents(bytes.NewReader(data), func(e Event) error { n += len(e.Name()); return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(floor), "x-sha256")
}

func TestTopLevelValue(t *testing.T) {
	for _, tc := range []struct{ obj, want string }{
		{`{"event":"a"}`, `"a"`},
		{`{"x":{"event":"nested"},"event":"top"}`, `"top"`},
		{`{"x":["event",{"event":1}], "event" : 42 }`, `42`},
		{`{"note":"\"event\": no","event":"y\"z"}`, `"y\"z"`},
		{`{"a":1}`, ``},
		{`{"event":{"k":[1,2]},"b":2}`, `{"k":[1,2]}`},
		{`{"event":"first","event":"last"}`, `"last"`},
		{`{"\u0065vent":"escaped"}`, `"escaped"`},
	} {
		if got := string(topLevelValue([]byte(tc.obj), "event")); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.obj, got, tc.want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,-2.5e+3,true,false,null,"x\u00e9\n"]}`, `{"a":01}`, `[1,]`, `"\x01"`, ` {"k" : { } } `, `-`, `1.`, `1e`, `"\uZZZZ"`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	for _, p := range []string{"testdata/registry_events.log", "testdata/mixed_events.log"} {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := validJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid = %v", data, got, want)
		}
	})
}
