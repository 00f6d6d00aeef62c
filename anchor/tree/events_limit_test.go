package tree

import (
	"strings"
	"testing"
)

// TestScanEventsOverLimitSaysSo: an event longer than the limit on one line
// (JSONL, or the last line of a classic block) is reported as too large,
// not as an object that was never closed, and the next event still counts.
func TestScanEventsOverLimitSaysSo(t *testing.T) {
	huge := strings.Repeat("y", maxEventBytes+10)
	huger := strings.Repeat("z", 2*maxEventBytes) // longer than a line is kept
	for name, log := range map[string]string{
		"jsonl line then another":       `{"event":"a","x":"` + huge + `"}` + "\n" + `{"event":"b"}` + "\n",
		"classic block ending on it":    "{\n  \"event\": \"a\",\n  \"x\": \"" + huge + "\"}\n{\"event\":\"b\"}\n",
		"jsonl line at the end":         `{"event":"b"}` + "\n" + `{"event":"a","x":"` + huge + `"}`,
		"2 MiB jsonl line then another": `{"event":"a","x":"` + huger + `"}` + "\n" + `{"event":"b"}` + "\n",
		"2 MiB jsonl line at the end":   `{"event":"b"}` + "\n" + `{"event":"a","x":"` + huger + `"}`,
		"classic block, } on its own":   "{\n  \"event\": \"a\",\n  \"x\": \"" + huge + "\"\n}\n{\"event\":\"b\"}\n",
	} {
		t.Run(name, func(t *testing.T) {
			var names []string
			bad, err := ScanEvents(strings.NewReader(log), func(e Event) error { names = append(names, e.Name()); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if len(names) != 1 || names[0] != "b" || len(bad) != 1 || !strings.Contains(bad[0].Reason, "event larger than 1048576 bytes") {
				t.Fatalf("events %v, bad blocks %v; want b and one 'event larger than' report", names, bad)
			}
		})
	}
}
