package telemetry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// TestRegistryCursorShared: telemetry's registry_log mark is the registry
// cursor anchoring keeps (tree.Cursor): after a check it is exactly the
// cursor tree.ReadEventsFrom computes for the same log, a state file
// written before the shared type (no count key) still resumes, and a
// resumed check reads only the appended bytes.
func TestRegistryCursorShared(t *testing.T) {
	h := newHarness(t, nil)
	h.check()
	mark := h.state().RegistryLog
	want, _, _, err := h.mon.Root.ReadEventsFrom(h.paths.EventsLog, nil, func(tree.Event) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if mark == nil || *mark != want {
		t.Fatalf("telemetry's mark %+v, the tree cursor of the same log %+v", mark, want)
	}

	// The state file as the previous telemetry wrote it: same keys, no count.
	statePath := filepath.Join(h.root, h.paths.TelemetryState)
	var raw map[string]any
	if err := json.Unmarshal(must(os.ReadFile(statePath)), &raw); err != nil {
		t.Fatal(err)
	}
	rl := raw["registry_log"].(map[string]any)
	for _, k := range []string{"offset", "lines", "tail_len", "tail_sha256", "last_event"} {
		if _, ok := rl[k]; !ok {
			t.Fatalf("registry_log lacks %q: %v", k, rl)
		}
	}
	delete(rl, "count")
	h.write(h.paths.TelemetryState, string(must(json.Marshal(raw))))

	h.now = h.now.Add(5 * time.Minute)
	before := mark.Offset
	h.appendEvent("governance_release_published", "v4.3.0", h.now)
	rep := h.check()
	if rep.Registry.Mode != "appended" || rep.Registry.Read != 1 || rep.Registry.New != 1 {
		t.Fatalf("resumed check: %+v", rep.Registry)
	}
	after := h.state().RegistryLog
	st, _ := os.Stat(filepath.Join(h.root, h.paths.EventsLog))
	if after.Offset != st.Size() || after.Offset <= before || after.TailSHA256 == "" || after.TailLen != min(int(st.Size()), tree.CursorTailLen) {
		t.Fatalf("mark after the append %+v (log %d bytes)", after, st.Size())
	}
	// Anchoring's reader resumes from telemetry's mark with nothing to read.
	_, info, _, err := h.mon.Root.ReadEventsFrom(h.paths.EventsLog, after, func(tree.Event) error { return nil })
	if err != nil || info.Mode != tree.ReadAppended || info.BytesRead != 0 {
		t.Fatalf("tree read from telemetry's mark: %+v, %v", info, err)
	}
}
