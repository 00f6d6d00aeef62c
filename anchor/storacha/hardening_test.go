package storacha

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLiveServiceRefusals: against a bridge answering as Storacha's public
// service does today, an upload stops at its first request with the
// service's own refusal as a Gone error (not transient), and the refusing
// receipt, verified, is kept as evidence.
func TestLiveServiceRefusals(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:4])
	for _, tc := range []struct {
		name     string
		set      func(b *testBridge)
		refusal  string
		ability  string
		contains string
	}{
		{"live today", func(b *testBridge) { b.LiveToday() }, HandlerNotFound, "store/add", `service does not implement {can: "store/add"} handler`},
		{"writes disabled", func(b *testBridge) { b.WritesDisabled = true }, ServiceUnavailable, "store/add", `The "store/add" capability is currently disabled.`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBridge(t)
			tc.set(b)
			cfg := bridgeConfig(b)
			cfg.TempDir = t.TempDir()
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			p := &persister{t: t}
			st := NewState(rootsOf(files))
			err = c.Retry(ctx, n, st, p.save, fastRetry(), 5)
			ge, gone := IsGone(err)
			if !gone || ge.Name != tc.refusal || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("want a %s refusal saying %q, got %v", tc.refusal, tc.contains, err)
			}
			if ok, _ := IsTransient(err); ok {
				t.Fatal("a refusal for good was classed as transient")
			}
			if strings.Contains(err.Error(), "at run (") || strings.Contains(err.Error(), "disabledHandler") {
				t.Errorf("the service's stack trace is in the error: %v", err)
			}
			posts, putTries, _, by := b.Snapshot()
			if posts != 1 || putTries != 0 || by["upload/add"] != 0 {
				t.Errorf("after a refusal for good: %d POSTs (want 1), %d PUTs, %d upload/add", posts, putTries, by["upload/add"])
			}
			if len(st.Receipts) == 0 {
				t.Fatal("the refusing receipt was not kept")
			}
			e := st.Receipts[0]
			if e.Ability != tc.ability || e.Error != tc.refusal || !e.Verified || len(e.Receipt) == 0 {
				t.Fatalf("evidence %+v", e)
			}
			if err := VerifyEvidence(e, b.DID, b.Issuer); err != nil {
				t.Fatalf("the kept refusal does not verify: %v", err)
			}
		})
	}
}

// TestForgedRefusalIsNotBelieved: a ServiceUnavailable receipt signed with
// another key than the service's is not a refusal: the error is a receipt
// error, not Gone.
func TestForgedRefusalIsNotBelieved(t *testing.T) {
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:3])
	b := newTestBridge(t)
	b.WritesDisabled = true
	b.BadKeyFor["store/add"] = true
	cfg := bridgeConfig(b)
	cfg.TempDir = t.TempDir()
	c, _ := New(cfg)
	err := c.Upload(context.Background(), n, NewState(rootsOf(files)), (&persister{t: t}).save)
	if _, gone := IsGone(err); gone || !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("a forged refusal was believed or not reported as such: %v", err)
	}
}

// TestPutURLIsChecked (finding 25.13): the service decides where a shard is
// PUT. Other schemes, plain http to another origin, credentials in the URL
// and link-local (metadata) addresses are refused before any connection,
// for good (not retried as transient).
func TestPutURLIsChecked(t *testing.T) {
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:3])
	// A listener on another loopback port counts the connections a client
	// following the service's URL would make.
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var dialed atomic.Int32
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()
	for _, tc := range []struct{ name, url, want string }{
		{"file scheme", "file:///etc/passwd", `uses "file"`},
		{"gopher scheme", "gopher://127.0.0.1:70/1", `uses "gopher"`},
		{"http to another origin", "http://" + other.Addr().String() + "/put?X-Amz-Signature=x", `uses "http"`},
		{"credentials", "https://user:pw@storage.example/put", "credentials"},
		{"metadata address", "https://169.254.169.254/latest/meta-data/?X-Amz-Signature=x", "link-local"},
		{"ipv6 link-local", "https://[fe80::1]/put", "link-local"},
		{"metadata name", "https://metadata.google.internal/computeMetadata/v1/", "metadata"},
		{"private address", "https://10.1.2.3/put", "private"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBridge(t)
			b.PutURL = func(string) string { return tc.url }
			cfg := bridgeConfig(b)
			cfg.TempDir = t.TempDir()
			c, _ := New(cfg)
			st := NewState(rootsOf(files))
			err := c.Upload(context.Background(), n, st, (&persister{t: t}).save)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a refusal saying %q, got %v", tc.want, err)
			}
			if ok, _ := IsTransient(err); ok {
				t.Fatalf("a refused URL is retried as transient: %v", err)
			}
			if strings.Contains(err.Error(), "X-Amz-Signature") || strings.Contains(err.Error(), "pw@") {
				t.Errorf("the error carries the URL's credentials: %v", err)
			}
			for _, s := range st.Shards {
				if s.Stored {
					t.Error("a shard was marked stored")
				}
			}
		})
	}
	if n := dialed.Load(); n != 0 {
		t.Fatalf("the client connected %d times to an origin the service named", n)
	}
}

// TestPutDialGuard: a name that resolves to a forbidden address is refused
// when dialed (the URL as written could not show it).
func TestPutDialGuard(t *testing.T) {
	rt := guardedTransport(nil, "https://up.storacha.network/bridge")
	req, _ := http.NewRequest(http.MethodPut, "https://localhost:1/put", strings.NewReader("x"))
	_, err := rt.RoundTrip(req)
	var dr *dialRefused
	if !errors.As(err, &dr) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("a public bridge's upload to a name resolving to loopback: %v", err)
	}
	// The same from a bridge on loopback is its own machine: allowed to dial
	// (nothing listens there, so the dial itself fails, but not our guard).
	rt = guardedTransport(nil, "http://127.0.0.1:9/bridge")
	_, err = rt.RoundTrip(req)
	if errors.As(err, &dr) {
		t.Fatalf("a loopback bridge's own machine was refused: %v", err)
	}
}

// TestHugeAnswerIsRefused (finding 25.7): a bridge answering with receipts
// far larger than receipts are is refused before it is decoded or kept.
func TestHugeAnswerIsRefused(t *testing.T) {
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:3])
	b := newTestBridge(t)
	b.PadReceipts = 3 << 20
	cfg := bridgeConfig(b)
	cfg.TempDir = t.TempDir()
	c, _ := New(cfg)
	p := &persister{t: t}
	st := NewState(rootsOf(files))
	err := c.Upload(context.Background(), n, st, p.save)
	if err == nil || !strings.Contains(err.Error(), "bytes for 1 tasks; refused") {
		t.Fatalf("a 3 MiB receipt was accepted: %v", err)
	}
	if len(st.Receipts) != 0 || len(p.saved) > 64<<10 {
		t.Fatalf("the huge answer was kept: %d receipts, state %d bytes", len(st.Receipts), len(p.saved))
	}
}

// TestLargeReceiptIsNotKept: a receipt within the answer bound but larger
// than a receipt is kept only by size and hash.
func TestLargeReceiptIsNotKept(t *testing.T) {
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:3])
	b := newTestBridge(t)
	b.PadReceipts = 100 << 10
	cfg := bridgeConfig(b)
	cfg.TempDir = t.TempDir()
	c, _ := New(cfg)
	p := &persister{t: t}
	st := NewState(rootsOf(files))
	if err := c.Upload(context.Background(), n, st, p.save); err != nil {
		t.Fatal(err)
	}
	for _, e := range st.Receipts {
		if len(e.Receipt) != 0 || e.Size < 100<<10 || len(e.SHA256) != 64 {
			t.Fatalf("a %d-byte receipt was kept whole: %+v", e.Size, e.Ability)
		}
		if err := VerifyEvidence(e, b.DID, b.Issuer); err == nil || !strings.Contains(err.Error(), "keeps no receipt") {
			t.Fatalf("VerifyEvidence on a receipt not kept: %v", err)
		}
	}
	if len(p.saved) > 32<<10 {
		t.Fatalf("the state grew to %d bytes", len(p.saved))
	}
}

// TestDrippingBridgeIsCut (finding 25.7): a bridge that drips its answer a
// byte at a time is cut after AnswerTimeout, as a transient failure that
// says so; the bridge sees the client go.
func TestDrippingBridgeIsCut(t *testing.T) {
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:3])
	b := newTestBridge(t)
	b.DripAnswer = 200 * time.Millisecond
	cfg := bridgeConfig(b)
	cfg.TempDir = t.TempDir()
	cfg.AnswerTimeout = time.Second
	c, _ := New(cfg)
	err := c.Upload(context.Background(), n, NewState(rootsOf(files)), (&persister{t: t}).save)
	if ok, _ := IsTransient(err); !ok || !strings.Contains(err.Error(), "no complete answer in time") {
		t.Fatalf("want a transient slow-answer error, got %v", err)
	}
	waitFor(t, func() bool { b.Mu.Lock(); defer b.Mu.Unlock(); return b.DripCut == 1 }, "the bridge never saw the client give up")
}

// TestStalledUploadIsCut: a storage node that takes the shard a byte at a
// time stalls the upload, which is cut as a transient failure.
func TestStalledUploadIsCut(t *testing.T) {
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:3])
	b := newTestBridge(t)
	b.DripPUT = 100 * time.Millisecond
	cfg := bridgeConfig(b)
	cfg.TempDir = t.TempDir()
	cfg.StallWindow, cfg.MinProgress = 300*time.Millisecond, 64<<10
	c, _ := New(cfg)
	st := NewState(rootsOf(files))
	err := c.Upload(context.Background(), n, st, (&persister{t: t}).save)
	if ok, _ := IsTransient(err); !ok || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("want a transient stalled-upload error, got %v", err)
	}
	for _, s := range st.Shards {
		if s.Stored {
			t.Fatal("a stalled shard was marked stored")
		}
	}
}

// TestEvidenceKeepsNoUploadCredentials (finding 25.12): the presigned URL's
// query and path and the upload headers never reach the kept receipts or
// the saved state.
func TestEvidenceKeepsNoUploadCredentials(t *testing.T) {
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:4])
	b := newTestBridge(t)
	cfg := bridgeConfig(b)
	cfg.TempDir = t.TempDir()
	c, _ := New(cfg)
	p := &persister{t: t}
	var states []string
	save := func(st *State) error {
		if err := p.save(st); err != nil {
			return err
		}
		states = append(states, string(p.saved))
		return nil
	}
	st := NewState(rootsOf(files))
	if err := c.Upload(context.Background(), n, st, save); err != nil {
		t.Fatal(err)
	}
	redacted := 0
	for _, e := range st.Receipts {
		if len(e.Redacted) > 0 {
			redacted++
		}
	}
	if redacted == 0 {
		t.Fatal("no store/add receipt was redacted: the bridge handed out no upload URL?")
	}
	all, _ := json.Marshal(st)
	for _, s := range append(states, string(all)) {
		for _, bad := range []string{"X-Amz-Signature", "/put/", b.Secret, b.Authz} {
			if strings.Contains(s, bad) {
				t.Fatalf("the kept state holds %q", bad)
			}
		}
		if strings.Count(s, `"x-amz-checksum-sha256":"`) != strings.Count(s, `"x-amz-checksum-sha256":"[redacted]"`) {
			t.Fatal("an upload header's value was kept")
		}
	}
	if !strings.Contains(string(all), `"x-amz-checksum-sha256":"[redacted]"`) {
		t.Fatalf("the kept store/add receipts show no redacted header; the check above proves nothing:\n%s", all)
	}
}

func waitFor(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
