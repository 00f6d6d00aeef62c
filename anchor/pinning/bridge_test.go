package pinning

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor/storacha/bridgetest"
	"github.com/ssid/ssid-anchor/node"
	"github.com/ssid/ssid-anchor/scheduler/retry"
)

// bridgeHarness is a real node holding a few anchors, a loopback bridge and
// a drainer whose only service is that bridge.
type bridgeHarness struct {
	b     *bridgetest.Bridge
	d     *Drainer
	clock *fakeClock
	dir   string
	cids  []cid.Cid
	env   map[string]string
	svc   Service
	n     *node.Node
}

// setSecret changes the secret variable and rebuilds the backend (which
// reads the variables when built, as a new drain does).
func (h *bridgeHarness) setSecret(t *testing.T, secret string) {
	t.Helper()
	h.env["S"] = secret
	be, err := NewBridge(h.svc, BridgeOptions{Blocks: h.n, Dir: h.dir, Getenv: func(k string) string { return h.env[k] }, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h.d.Backends["w3"] = be
}

// newBridgeHarness: secret "" means the bridge's own.
func newBridgeHarness(t *testing.T, secret string) *bridgeHarness {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	if _, err := node.Init(repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 8))
	batch, err := n.NewBatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p, err := node.ParamsFor(node.CIDProfileDefault)
	if err != nil {
		t.Fatal(err)
	}
	h := &bridgeHarness{b: bridgetest.New(t), clock: newClock(), dir: QueueDir(repo)}
	for i := range 3 {
		data := make([]byte, 100<<10+i)
		for k := range data {
			data[k] = byte(r.Uint32())
		}
		c, err := batch.AddFile(bytes.NewReader(data), p, nil)
		if err != nil {
			t.Fatal(err)
		}
		batch.Link(fmt.Sprintf("f%d", i), c)
		h.cids = append(h.cids, c)
	}
	if _, err := batch.Commit("test"); err != nil {
		t.Fatal(err)
	}
	svc := Service{Name: "w3", Kind: KindStorachaBridge, Endpoint: h.b.Endpoint(), Space: h.b.Space,
		ServiceDID: h.b.DID, ServiceIssuer: h.b.Issuer, AuthSecretEnv: "S", AuthorizationEnv: "A"}
	h.svc, h.n, h.env = svc, n, map[string]string{"A": h.b.Authz}
	q := OpenQueue(h.dir, h.clock.Now)
	h.d = &Drainer{Queue: q, Services: []Service{svc}, Backends: map[string]Backend{}, Policy: retry.Default(), Now: h.clock.Now}
	if secret == "" {
		secret = h.b.Secret
	}
	h.setSecret(t, secret)
	var add []Request
	for _, c := range h.cids {
		add = append(add, Request{Service: "w3", CID: c.String()})
	}
	if _, err := q.Enqueue(add); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *bridgeHarness) list(t *testing.T) []*Request {
	t.Helper()
	reqs, err := h.d.Queue.List()
	if err != nil {
		t.Fatal(err)
	}
	return reqs
}

// TestBridgeRetryAfterKeepsTheBatchTogether: a 503 with Retry-After 120
// holds every request of the batch until the same moment, at least 120 s
// away; the next drain then pins all three in one upload.
func TestBridgeRetryAfterKeepsTheBatchTogether(t *testing.T) {
	h := newBridgeHarness(t, "")
	h.b.FailPOST = []int{http.StatusServiceUnavailable}
	h.b.RetryAfter = "120"
	ctx := context.Background()
	if _, err := h.d.Drain(ctx, DrainOptions{}); err != nil {
		t.Fatal(err)
	}
	reqs := h.list(t)
	next := reqs[0].NextAttempt
	for _, r := range reqs {
		if r.Done() || r.Permanent || r.Attempts != 1 || !r.NextAttempt.Equal(next) || !strings.Contains(r.LastError, "HTTP 503") {
			t.Errorf("after a 503: %+v", r)
		}
	}
	if next.Sub(h.clock.Now()) < 120*time.Second {
		t.Errorf("next attempt in %v, the bridge asked for 120s", next.Sub(h.clock.Now()))
	}
	if _, err := os.Stat(StatePath(h.dir, "w3")); err != nil {
		t.Errorf("no batch state saved after the failure: %v", err)
	}
	rep, err := h.d.Drain(ctx, DrainOptions{})
	if err != nil || rep.Pushed != 0 {
		t.Fatalf("a drain before Retry-After pushed %d (%v)", rep.Pushed, err)
	}
	h.clock.Advance(next.Sub(h.clock.Now()))
	if _, err := h.d.Drain(ctx, DrainOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range h.list(t) {
		if !r.Done() || !bytes.Contains(r.Evidence, []byte(`"receipts verified"`)) {
			t.Errorf("not pinned: %+v", r)
		}
	}
	_, _, _, byAbility := h.b.Snapshot()
	if byAbility["upload/add"] != 3 || byAbility["store/add"] == 0 {
		t.Errorf("tasks %v: want one upload/add per anchor, once", byAbility)
	}
	if _, err := os.Stat(StatePath(h.dir, "w3")); err == nil {
		t.Error("the finished batch state was kept")
	}
	h.b.NoProblems(t)
}

// TestBridgeRefusedTokensArePermanent: a 401 stops every request with the
// service's message and never the token; pins --retry (Force) tries again.
func TestBridgeRefusedTokensArePermanent(t *testing.T) {
	h := newBridgeHarness(t, "uWRONG-SECRET-VALUE")
	ctx := context.Background()
	if _, err := h.d.Drain(ctx, DrainOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range h.list(t) {
		if r.Status != StatusFailed || !r.Permanent || !strings.Contains(r.LastError, "HTTP 401") ||
			!strings.Contains(r.LastError, "X-Auth-Secret or Authorization is not valid") || strings.Contains(r.LastError, "WRONG-SECRET") {
			t.Errorf("after a 401: %+v", r)
		}
	}
	rep, err := h.d.Drain(ctx, DrainOptions{})
	if err != nil || rep.Pushed != 0 {
		t.Fatalf("a permanent failure was pushed again without --retry: %d (%v)", rep.Pushed, err)
	}
	qb, _ := os.ReadFile(h.d.Queue.Path())
	sb, _ := os.ReadFile(StatePath(h.dir, "w3"))
	if bytes.Contains(qb, []byte("WRONG-SECRET")) || bytes.Contains(sb, []byte("WRONG-SECRET")) || bytes.Contains(sb, []byte(h.b.Authz)) {
		t.Error("a token is in the queue or the batch state")
	}
	h.setSecret(t, h.b.Secret)
	if _, err := h.d.Drain(ctx, DrainOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	for _, r := range h.list(t) {
		if !r.Done() {
			t.Errorf("not pinned after the forced retry: %+v", r)
		}
	}
	h.b.NoProblems(t)
}
