package pinning

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor/pinning/psatest"
	"github.com/ssid/ssid-anchor/scheduler/retry"
)

// fakeClock is the drain's clock: tests move it instead of sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// memRecorder stands for the manifest: it keeps every call.
type memRecorder struct {
	mu    sync.Mutex
	calls [][]Change
}

func (m *memRecorder) RecordRemotePins(_ context.Context, ch []Change) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, append([]Change(nil), ch...))
	return nil
}

func (m *memRecorder) n() int { m.mu.Lock(); defer m.mu.Unlock(); return len(m.calls) }

type harness struct {
	t     testing.TB
	srv   *psatest.Server
	clock *fakeClock
	q     *Queue
	d     *Drainer
	rec   *memRecorder
	logs  *bytes.Buffer
	svc   Service
}

const testEnv = "SSID_TEST_PSA_TOKEN"

// testCID returns a distinct, valid CIDv0 for i.
func testCID(t testing.TB, i int) string {
	t.Helper()
	c, err := cid.V0Builder{}.Sum([]byte{byte(i), byte(i >> 8), 'x'})
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

func newHarness(t testing.TB, srv *psatest.Server, endpoint string) *harness {
	t.Helper()
	h := &harness{t: t, srv: srv, clock: newClock(), rec: &memRecorder{}, logs: &bytes.Buffer{}}
	h.svc = Service{Name: "cluster", Endpoint: endpoint, TokenEnv: testEnv}
	if err := h.svc.Validate("test"); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	psa, err := NewPSA(h.svc, PSAOptions{
		Getenv: func(k string) string { return map[string]string{testEnv: srv.Token}[k] },
		Origins: func() []string {
			return []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"}
		},
		Policy: retry.Default(), PollInterval: 5 * time.Second, Now: h.clock.Now, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.q = OpenQueue(t.TempDir(), h.clock.Now)
	h.d = &Drainer{Queue: h.q, Services: []Service{h.svc}, Backends: map[string]Backend{"cluster": psa},
		Recorder: h.rec, Policy: retry.Default(), Now: h.clock.Now, Log: log}
	return h
}

func (h *harness) enqueue(n int) []string {
	h.t.Helper()
	var reqs []Request
	var cids []string
	for i := range n {
		c := testCID(h.t, i)
		cids = append(cids, c)
		reqs = append(reqs, Request{Service: "cluster", CID: c, Name: "ssid-anchor f" + string(rune('a'+i%26)),
			Meta: Meta{FilePath: "dir/f.txt", SHA256: strings.Repeat("ab", 32), EventProofAnchor: strings.Repeat("cd", 32)}})
	}
	if _, err := h.q.Enqueue(reqs); err != nil {
		h.t.Fatal(err)
	}
	return cids
}

func (h *harness) drain(force bool) Report {
	h.t.Helper()
	rep, err := h.d.Drain(context.Background(), DrainOptions{Force: force})
	if err != nil {
		h.t.Fatal(err)
	}
	return rep
}

func (h *harness) req(c string) *Request {
	h.t.Helper()
	all, err := h.q.List()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, r := range all {
		if r.CID == c {
			return r
		}
	}
	h.t.Fatalf("no request for %s", c)
	return nil
}

// noLeak checks that the token is nowhere we write or print.
func (h *harness) noLeak(extra ...string) {
	h.t.Helper()
	tok := h.srv.Token
	qb, _ := os.ReadFile(h.q.Path())
	if bytes.Contains(qb, []byte(tok)) {
		h.t.Errorf("token in the queue file:\n%s", qb)
	}
	if strings.Contains(h.logs.String(), tok) {
		h.t.Errorf("token in the logs:\n%s", h.logs)
	}
	rb, _ := json.Marshal(h.rec.calls)
	if bytes.Contains(rb, []byte(tok)) {
		h.t.Errorf("token in what the manifest receives")
	}
	for _, s := range extra {
		if strings.Contains(s, tok) {
			h.t.Errorf("token in %q", s)
		}
	}
}

func TestPSALifecycle(t *testing.T) {
	srv := psatest.New()
	defer srv.Close()
	h := newHarness(t, srv, srv.URL+"/")
	cids := h.enqueue(3)

	rep := h.drain(false)
	if rep.Pushed != 3 || rep.Recorded != 3 {
		t.Fatalf("first drain: %+v", rep)
	}
	for _, c := range cids {
		r := h.req(c)
		if r.Status != StatusQueued || r.RequestID == "" || r.LastError != "" {
			t.Fatalf("after create: %+v", r)
		}
	}
	// Every call carried the token; each CID was looked up before it was created.
	var posts int
	for _, c := range srv.Calls() {
		if !c.Authorized {
			t.Errorf("unauthorised call %s %s", c.Method, c.Path)
		}
		if c.Method == "POST" {
			posts++
			var body map[string]any
			if err := json.Unmarshal(c.Body, &body); err != nil {
				t.Fatal(err)
			}
			meta, _ := body["meta"].(map[string]any)
			if meta["file_path"] != "dir/f.txt" || meta["sha256"] != strings.Repeat("ab", 32) || meta["event_proof_anchor"] != strings.Repeat("cd", 32) {
				t.Errorf("meta: %v", body["meta"])
			}
			if o, _ := body["origins"].([]any); len(o) != 1 {
				t.Errorf("origins: %v", body["origins"])
			}
			if c.Code != 202 {
				t.Errorf("create answered %d", c.Code)
			}
		}
		if c.Method == "GET" && c.Path == "/pins" && !strings.Contains(c.Query, "status=queued%2Cpinning%2Cpinned") {
			t.Errorf("lookup without all live statuses: %s", c.Query)
		}
	}
	if posts != 3 {
		t.Fatalf("%d creates, want 3", posts)
	}

	// Not due yet: nothing is sent, nothing recorded.
	before := len(srv.Calls())
	if rep := h.drain(false); rep.Pushed != 0 || rep.Recorded != 0 || len(srv.Calls()) != before {
		t.Fatalf("drain before the poll interval sent something: %+v", rep)
	}
	h.clock.Advance(5 * time.Second)
	if rep := h.drain(false); rep.Recorded != 3 {
		t.Fatalf("second drain: %+v", rep)
	}
	for _, c := range cids {
		if r := h.req(c); r.Status != StatusPinning {
			t.Fatalf("want pinning: %+v", r)
		}
	}
	h.clock.Advance(5 * time.Second)
	h.drain(false)
	for _, c := range cids {
		if r := h.req(c); r.Status != StatusPinned {
			t.Fatalf("want pinned: %+v", r)
		}
	}
	if h.rec.n() != 3 {
		t.Fatalf("want one manifest write per drain that changed something (3), got %d", h.rec.n())
	}
	last := h.rec.calls[2]
	if len(last) != 3 || last[0].Status != StatusPinned || last[0].Provider != "pinning-service:cluster" || last[0].RequestID == "" {
		t.Fatalf("last changes: %+v", last)
	}
	// Everything pinned: further drains send and write nothing.
	h.clock.Advance(time.Hour)
	before = len(srv.Calls())
	if rep := h.drain(true); rep.Pushed != 0 || rep.Recorded != 0 || len(srv.Calls()) != before {
		t.Fatalf("drain after all pinned: %+v", rep)
	}
	if n := len(srv.Pins()); n != 3 {
		t.Fatalf("service holds %d pins, want 3", n)
	}
	h.noLeak()
}

func TestPSAPollWithoutChangeWritesNothing(t *testing.T) {
	srv := psatest.New()
	defer srv.Close()
	release := make(chan struct{})
	srv.Fetch = func(ctx context.Context, _ cid.Cid, _ []string) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h := newHarness(t, srv, srv.URL)
	c := h.enqueue(1)[0]
	h.drain(false) // created: queued
	h.clock.Advance(5 * time.Second)
	h.drain(false) // pinning
	n := h.rec.n()
	qb, _ := os.ReadFile(h.q.Path())
	for range 3 {
		h.clock.Advance(5 * time.Second)
		if rep := h.drain(false); rep.Pushed != 1 || rep.Changed != 0 || rep.Recorded != 0 {
			t.Fatalf("poll that changed nothing: %+v", rep)
		}
	}
	if h.rec.n() != n {
		t.Fatalf("polls that changed nothing wrote the manifest")
	}
	if r := h.req(c); r.Status != StatusPinning {
		t.Fatalf("%+v", r)
	}
	qb2, _ := os.ReadFile(h.q.Path())
	if bytes.Equal(qb, qb2) {
		t.Fatalf("the queue must remember the next poll time")
	}
	close(release)
	h.clock.Advance(5 * time.Second)
	for i := 0; i < 50 && h.req(c).Status != StatusPinned; i++ {
		time.Sleep(10 * time.Millisecond) // the server's fetch goroutine finishing, not our clock
		h.drain(true)
	}
	if r := h.req(c); r.Status != StatusPinned {
		t.Fatalf("%+v", r)
	}
}

func TestPSAFaults(t *testing.T) {
	t.Run("503 503 202", func(t *testing.T) {
		srv := psatest.New()
		defer srv.Close()
		srv.AddFaults(psatest.Fault{Match: "POST /pins", Code: 503, Reason: "UNAVAILABLE"}, psatest.Fault{Match: "POST /pins", Code: 503, Reason: "UNAVAILABLE"})
		h := newHarness(t, srv, srv.URL)
		c := h.enqueue(1)[0]
		for i := 1; i <= 2; i++ {
			h.drain(false)
			r := h.req(c)
			if r.Attempts != i || r.Permanent || r.Status != StatusQueued || !strings.Contains(r.LastError, "HTTP 503: UNAVAILABLE") {
				t.Fatalf("after 503 #%d: %+v", i, r)
			}
			wait := r.NextAttempt.Sub(h.clock.Now())
			// 2 s then 4 s, ±50 % jitter.
			lo, hi := time.Second<<(i-1), 3*time.Second<<(i-1)
			if wait < lo || wait > hi {
				t.Fatalf("backoff after failure %d: %v, want %v..%v", i, wait, lo, hi)
			}
			// Not due yet: nothing goes out.
			n := len(srv.Calls())
			h.drain(false)
			if len(srv.Calls()) != n {
				t.Fatal("retried before the backoff delay")
			}
			h.clock.Advance(wait)
		}
		h.drain(false)
		r := h.req(c)
		if r.RequestID == "" || r.Attempts != 0 || r.LastError != "" {
			t.Fatalf("after 202: %+v", r)
		}
		if n := len(srv.Pins()); n != 1 {
			t.Fatalf("%d pins on the service, want 1", n)
		}
	})
	t.Run("429 Retry-After", func(t *testing.T) {
		srv := psatest.New()
		defer srv.Close()
		srv.AddFaults(psatest.Fault{Match: "GET /pins", Code: 429, RetryAfter: "120", Reason: "RATE_LIMITED"})
		h := newHarness(t, srv, srv.URL)
		cids := h.enqueue(2)
		h.d.Backends["cluster"].(*PSA).o.Workers = 1
		h.drain(false)
		r := h.req(cids[0])
		if r.Status != StatusQueued || !strings.Contains(r.LastError, "429") {
			t.Fatalf("%+v", r)
		}
		if r.NextAttempt.Sub(h.clock.Now()) < 120*time.Second {
			t.Fatalf("Retry-After 120 not honoured: next in %v", r.NextAttempt.Sub(h.clock.Now()))
		}
		// The other request was held back too: the service asked us to wait.
		if r2 := h.req(cids[1]); r2.NextAttempt.Sub(h.clock.Now()) < 120*time.Second || r2.RequestID != "" {
			t.Fatalf("second request not paused: %+v", r2)
		}
		n := len(srv.Calls())
		h.clock.Advance(60 * time.Second)
		h.drain(false)
		if len(srv.Calls()) != n {
			t.Fatal("sent before Retry-After elapsed")
		}
		h.clock.Advance(61 * time.Second)
		h.drain(false)
		for _, c := range cids {
			if r := h.req(c); r.RequestID == "" {
				t.Fatalf("not created after Retry-After: %+v", r)
			}
		}
	})
	t.Run("401 permanent, reported, token never leaks", func(t *testing.T) {
		srv := psatest.New()
		defer srv.Close()
		srv.AddFaults(psatest.Fault{Match: "GET /pins", Code: 401, Reason: "UNAUTHORIZED", Details: "token revoked", EchoAuth: true})
		h := newHarness(t, srv, srv.URL)
		c := h.enqueue(1)[0]
		h.drain(false)
		r := h.req(c)
		if r.Status != StatusFailed || !r.Permanent || !strings.Contains(r.LastError, "HTTP 401: UNAUTHORIZED: token revoked") {
			t.Fatalf("%+v", r)
		}
		if !strings.Contains(r.LastError, "Bearer [redacted]") {
			t.Fatalf("the echoed token should be redacted, not dropped: %q", r.LastError)
		}
		// Not hammered: later drains leave it alone.
		n := len(srv.Calls())
		h.clock.Advance(24 * time.Hour)
		h.drain(false)
		if len(srv.Calls()) != n {
			t.Fatal("a permanent failure was retried")
		}
		if got := h.rec.calls[len(h.rec.calls)-1]; got[0].Status != StatusFailed {
			t.Fatalf("manifest not told of the failure: %+v", got)
		}
		// The operator fixed the token: pins --retry forces it.
		h.drain(true)
		if r := h.req(c); r.RequestID == "" || r.Permanent {
			t.Fatalf("forced retry: %+v", r)
		}
		h.noLeak(r.LastError)
	})
	t.Run("connection refused, then up", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		down := psatest.New() // only for its token
		down.Close()
		h := newHarness(t, down, "http://"+addr)
		c := h.enqueue(1)[0]
		for i := 1; i <= 3; i++ {
			h.drain(false)
			r := h.req(c)
			if r.Attempts != i || r.Permanent || !strings.Contains(r.LastError, "connection refused") || !strings.Contains(r.LastError, "GET http://"+addr+"/pins") {
				t.Fatalf("attempt %d: %+v", i, r)
			}
			h.clock.Advance(r.NextAttempt.Sub(h.clock.Now()))
		}
		srv, err := psatest.NewOn(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		srv.Token = down.Token
		h.srv = srv
		h.drain(false)
		if r := h.req(c); r.RequestID == "" || r.Attempts != 0 {
			t.Fatalf("after the service came up: %+v", r)
		}
		h.noLeak()
	})
	t.Run("missing token", func(t *testing.T) {
		srv := psatest.New()
		defer srv.Close()
		h := newHarness(t, srv, srv.URL)
		psa, _ := NewPSA(h.svc, PSAOptions{Getenv: func(string) string { return "" }, Now: h.clock.Now})
		h.d.Backends["cluster"] = psa
		c := h.enqueue(1)[0]
		h.drain(false)
		r := h.req(c)
		if !strings.Contains(r.LastError, "environment variable "+testEnv+" is not set") || r.Attempts != 1 {
			t.Fatalf("%+v", r)
		}
		if len(srv.Calls()) != 0 {
			t.Fatal("sent a request without a token")
		}
	})
}

// A crash after POST /pins and before the queue was saved: the next drain
// finds the pin with GET /pins?cid= and adopts it; across pagination, the
// pinned one wins over newer queued ones, and nothing is created twice.
func TestPSAAdoptsExistingPinAcrossPages(t *testing.T) {
	srv := psatest.New()
	defer srv.Close()
	h := newHarness(t, srv, srv.URL)
	c := h.enqueue(1)[0]
	old := srv.Preload(psatest.Pin{CID: c, Name: "made before the crash"}, "pinned")
	srv.Preload(psatest.Pin{CID: c}, "failed")
	for range 1000 {
		srv.Preload(psatest.Pin{CID: c}, "queued")
	}
	h.drain(false)
	r := h.req(c)
	if r.RequestID != old.RequestID || r.Status != StatusPinned {
		t.Fatalf("adopted %q (%s), want the pinned %q", r.RequestID, r.Status, old.RequestID)
	}
	var lists int
	for _, call := range srv.Calls() {
		if call.Method == "POST" {
			t.Fatal("created a duplicate pin")
		}
		if call.Path == "/pins" {
			lists++
		}
	}
	if lists != 2 {
		t.Fatalf("%d list pages read, want 2", lists)
	}
}

func TestNoBackendStaysQueuedHonestly(t *testing.T) {
	q := OpenQueue(t.TempDir(), nil)
	rec := &memRecorder{}
	svc := Service{Name: "web3-storage", Space: "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"}
	if err := svc.Validate("test"); err != nil {
		t.Fatal(err)
	}
	d := &Drainer{Queue: q, Services: []Service{svc}, Recorder: rec, Policy: retry.Default()}
	c := testCID(t, 1)
	if _, err := q.Enqueue([]Request{{Service: "web3-storage", CID: c}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := d.Drain(context.Background(), DrainOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := q.List()
	if len(all) != 1 || all[0].Status != StatusQueued || all[0].LastError != "no backend for kind storacha-bridge in this build; the request stays queued" {
		t.Fatalf("%+v", all[0])
	}
	if rec.n() != 1 || rec.calls[0][0].Status != StatusQueued || rec.calls[0][0].Provider != "storacha-bridge:web3-storage" {
		t.Fatalf("manifest calls: %+v", rec.calls)
	}
}

func TestDrainIsExclusive(t *testing.T) {
	dir := t.TempDir()
	d := &Drainer{Queue: OpenQueue(dir, nil)}
	unlock, err := d.lockDrain()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := (&Drainer{Queue: OpenQueue(dir, nil)}).Drain(context.Background(), DrainOptions{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second drain: %v, want ErrBusy", err)
	}
}

func TestEnqueueIsIdempotent(t *testing.T) {
	q := OpenQueue(t.TempDir(), nil)
	c := testCID(t, 7)
	for i, want := range []int{1, 0} {
		n, err := q.Enqueue([]Request{{Service: "a", CID: c}, {Service: "a", CID: c}})
		if err != nil || n != want {
			t.Fatalf("enqueue %d: n=%d err=%v", i, n, err)
		}
	}
	all, _ := q.List()
	if len(all) != 1 {
		t.Fatalf("%d requests", len(all))
	}
	fi, err := os.Stat(q.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("queue file mode: %v %v", fi, err)
	}
}

// A service that stores CIDs as CIDv1 still answers our CIDv0 lookup; the
// existing pin is reused.
func TestPSAAdoptsPinUnderCIDv1(t *testing.T) {
	srv := psatest.New()
	defer srv.Close()
	h := newHarness(t, srv, srv.URL)
	c := h.enqueue(1)[0]
	v0, _ := cid.Decode(c)
	v1 := cid.NewCidV1(v0.Type(), v0.Hash()).String()
	old := srv.Preload(psatest.Pin{CID: v1}, "pinning")
	h.drain(false)
	if r := h.req(c); r.RequestID != old.RequestID || r.Status != StatusPinning {
		t.Fatalf("%+v, want request %s adopted", r, old.RequestID)
	}
	for _, call := range srv.Calls() {
		if call.Method == "POST" {
			t.Fatal("created a duplicate of a pin stored under CIDv1")
		}
	}
}

type failingRecorder struct{ calls int }

func (f *failingRecorder) RecordRemotePins(context.Context, []Change) error {
	f.calls++
	return errors.New("the anchor manifest is locked by another ssid-anchor run")
}

// A manifest that cannot be written (an anchoring run holds it) loses
// nothing: the pushes are saved, and the next drain records the state.
func TestManifestCatchesUpAfterAFailedWrite(t *testing.T) {
	srv := psatest.New()
	defer srv.Close()
	h := newHarness(t, srv, srv.URL)
	c := h.enqueue(1)[0]
	fr := &failingRecorder{}
	h.d.Recorder = fr
	if _, err := h.d.Drain(context.Background(), DrainOptions{}); err == nil || !strings.Contains(err.Error(), "the next drain tries again") {
		t.Fatalf("drain with a locked manifest: %v", err)
	}
	if r := h.req(c); r.RequestID == "" || r.Recorded != nil {
		t.Fatalf("push not saved or wrongly marked recorded: %+v", r)
	}
	h.d.Recorder = h.rec
	if rep := h.drain(false); rep.Pushed != 0 || rep.Recorded != 1 {
		t.Fatalf("catch-up drain: %+v", rep)
	}
	if got := h.rec.calls[0][0]; got.Status != StatusQueued || got.RequestID != h.req(c).RequestID {
		t.Fatalf("recorded %+v", got)
	}
}
