package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// TestMetricsSurviveHostileRemotePinStatuses is issue 25.6: a manifest
// whose remote_pins carry 50,000 distinct status strings. On main the
// remote-pins collector sent one series per string while holding the lock
// the gauge functions take on the registry's receiving goroutine, so
// /metrics never answered and the next anchoring run (refreshAnchorStats)
// waited on that lock for ever. Now the labels are the known statuses plus
// "other", the scrape answers, and storing new counts is not held up.
func TestMetricsSurviveHostileRemotePinStatuses(t *testing.T) {
	root := newTree(t)
	var m map[string]any
	if err := json.Unmarshal(vcTestdata(t, "ipfs_anchor_manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	const n = 50000
	pins := make([]any, 0, n+3)
	for i := range n {
		pins = append(pins, map[string]any{"service": "svc", "request_id": fmt.Sprint(i), "status": fmt.Sprintf("status-%d", i), "updated_at": "2026-01-01T00:00:00Z"})
	}
	for _, st := range []string{"pinned", "pinned", "queued"} {
		pins = append(pins, map[string]any{"service": "svc", "request_id": "r-" + st, "status": st, "updated_at": "2026-01-01T00:00:00Z"})
	}
	m["anchors"] = []any{map[string]any{
		"file_path": "README.md", "file_name": "README.md",
		"file_hash": strings.Repeat("ab", 32), "ipfs_cid": "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn",
		"ipfs_gateway_url": "https://ipfs.io/ipfs/QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn",
		"anchored_at":      "2026-01-01T00:00:00Z", "event_type": "x", "event_version": "1",
		"event_timestamp": "2026-01-01T00:00:00Z", "blueprint_version": "v4.3",
		"remote_pins": pins,
	}}
	b, _ := json.MarshalIndent(m, "", "  ")
	mustWrite(t, filepath.Join(root, tManifest), b)

	stats, _ := countAnchors(context.Background(), root, tree.DefaultPaths(), nil)
	if stats.Err != "" || stats.Records != 1 {
		t.Fatalf("counting the manifest: %+v", stats.Err)
	}
	met := newMetrics(nil)
	met.anchors = stats
	srv := httptest.NewServer(newHTTPHandler(httpDeps{Metrics: met.handler()}))
	// Close waits for running requests: a wedged scrape would hang the
	// test instead of failing it, so the server is left to the process.
	wedged := false
	defer func() {
		if !wedged {
			srv.Close()
		}
	}()

	type scrape struct {
		body string
		err  error
	}
	got := make(chan scrape, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			got <- scrape{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- scrape{string(b), err}
	}()
	var s scrape
	select {
	case s = <-got:
	case <-time.After(60 * time.Second):
		wedged = true
		t.Fatal("/metrics did not answer within 60 s: the collector deadlocked")
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	series := regexp.MustCompile(`(?m)^ssid_anchor_remote_pins\{status="([^"]*)"\} (\S+)$`).FindAllStringSubmatch(s.body, -1)
	want := map[string]string{"queued": "1", "pinning": "0", "pinned": "2", "failed": "0", "moved": "0", "other": fmt.Sprint(n)}
	if len(series) != len(want) {
		t.Fatalf("%d remote_pins series, want %d", len(series), len(want))
	}
	for _, sr := range series {
		if want[sr[1]] != sr[2] {
			t.Errorf("ssid_anchor_remote_pins{status=%q} = %s, want %s", sr[1], sr[2], want[sr[1]])
		}
	}
	if len(stats.RemotePins) > len(remotePinStatuses)+1 {
		t.Fatalf("%d distinct status counts kept, want at most %d (known statuses and other)", len(stats.RemotePins), len(remotePinStatuses)+1)
	}
	// A run storing its counts (what refreshAnchorStats does) is not held
	// up by the scrape that just ran.
	stored := make(chan struct{})
	go func() {
		met.mu.Lock()
		met.anchors = anchorStats{RemotePins: map[string]int{}}
		met.mu.Unlock()
		close(stored)
	}()
	select {
	case <-stored:
	case <-time.After(60 * time.Second):
		t.Fatal("storing anchor counts waited on the scrape's lock")
	}
}
