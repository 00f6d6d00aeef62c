package pinning

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeQueueFile(t testing.TB, dir string, body string) *Queue {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	q := OpenQueue(dir, nil)
	if err := os.WriteFile(q.Path(), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return q
}

const goodRequest = `{"service":"cluster","cid":"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG","name":"n","meta":{"file_path":"a","sha256":"b"},"status":"queued","attempts":0,"next_attempt":"2026-01-01T00:00:00Z","created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z"}`

// TestQueueRefusesDamage: a queue file that does not hold whole requests is
// refused like a truncated one, naming the file and what to do, and
// nothing is written over it (finding 25.1: a null request was accepted
// and crashed `pins` later; 25.18: trailing data was ignored).
func TestQueueRefusesDamage(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"null request", `{"version":1,"requests":[null]}`, "requests[0] is null"},
		{"null among good", `{"version":1,"requests":[` + goodRequest + `,null]}`, "requests[1] is null"},
		{"trailing garbage", `{"version":1,"requests":[]}` + "\n{\"version\":1}", "data after the JSON object"},
		{"trailing text", `{"version":1,"requests":[]} rm -rf`, "data after the JSON object"},
		{"truncated", `{"version":1,"requests":[` + goodRequest[:40], "unexpected EOF"},
		{"no service", `{"version":1,"requests":[{"cid":"x","status":"queued"}]}`, "no service or no cid"},
		{"unknown status", `{"version":1,"requests":[` + strings.Replace(goodRequest, `"queued"`, `"\u001b[2Jlost"`, 1) + `]}`, "unknown status"},
		{"moved without target", `{"version":1,"requests":[` + strings.Replace(goodRequest, `"queued"`, `"moved"`, 1) + `]}`, "moved_to"},
		{"duplicate", `{"version":1,"requests":[` + goodRequest + `,` + goodRequest + `]}`, "repeats requests[0]"},
		{"version", `{"version":2,"requests":[]}`, "version 2"},
		{"unknown key", `{"version":1,"requests":[],"extra":1}`, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := writeQueueFile(t, t.TempDir(), tc.body)
			_, err := q.List()
			if err == nil {
				t.Fatal("the damaged queue was accepted")
			}
			for _, w := range []string{tc.want, q.Path(), "move it away"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q: %v", w, err)
				}
			}
			if strings.ContainsRune(err.Error(), 0x1b) {
				t.Errorf("error carries a terminal escape: %q", err)
			}
			_, err = q.Enqueue([]Request{{Service: "cluster", CID: "QmOther"}})
			if err == nil {
				t.Fatal("Enqueue wrote over a damaged queue")
			}
			after, _ := os.ReadFile(q.Path())
			if string(after) != tc.body {
				t.Fatal("the damaged file was changed")
			}
		})
	}
	t.Run("whitespace after is fine", func(t *testing.T) {
		q := writeQueueFile(t, t.TempDir(), `{"version":1,"requests":[`+goodRequest+`]}`+"\n\n  ")
		reqs, err := q.List()
		if err != nil || len(reqs) != 1 {
			t.Fatalf("%v %v", reqs, err)
		}
	})
}

// FuzzQueueLoad: whatever queue.json holds, loading never panics, and a
// queue it accepts holds whole requests that survive a write and a second
// load unchanged.
func FuzzQueueLoad(f *testing.F) {
	f.Add([]byte(`{"version":1,"requests":[` + goodRequest + `]}`))
	f.Add([]byte(`{"version":1,"requests":[null]}`))
	f.Add([]byte(`{"version":1,"requests":[]} x`))
	f.Add([]byte(`{"version":1,"requests":[` + strings.Replace(goodRequest, `"queued"`, `"moved","moved_to":"b"`, 1) + `]}`))
	f.Add([]byte(`{"version":1,"requests":[{"service":"a","cid":"b","status":"failed","service_gone":true,"evidence":{"kind":"x"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs, err := parseQueue(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for i, r := range reqs {
			if r == nil || r.Service == "" || r.CID == "" || !r.Status.known() || seen[r.Key()] {
				t.Fatalf("accepted a broken request %d: %+v", i, r)
			}
			seen[r.Key()] = true
			_ = r.Done()
			_ = r.Due(time.Now())
		}
		dir := t.TempDir()
		q := OpenQueue(filepath.Join(dir, "q"), nil)
		if err := q.Update(func([]*Request) ([]*Request, error) { return reqs, nil }); err != nil {
			t.Fatalf("writing an accepted queue: %v", err)
		}
		again, err := q.List()
		if err != nil {
			t.Fatalf("a queue this build wrote does not load: %v", err)
		}
		a, _ := json.Marshal(reqs)
		b, _ := json.Marshal(again)
		if !bytes.Equal(a, b) && len(reqs) > 0 {
			t.Fatalf("round trip changed the queue:\n%s\n%s", a, b)
		}
	})
}
