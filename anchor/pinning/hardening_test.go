package pinning

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/pinning/psatest"
	"github.com/ssid/ssid-anchor/anchor/storacha"
)

// recordingConnect stands for the node's swarm connect: it keeps every
// address it was asked to dial.
type recordingConnect struct {
	mu    sync.Mutex
	addrs []string
}

func (c *recordingConnect) connect(_ context.Context, addrs []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addrs = append(c.addrs, addrs...)
	return nil
}

const peer = "/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"

// TestPSADelegatesFollowTheProfile (finding 25.3): the air-gapped profile
// dials only loopback delegates, never a name; the public profile dials
// public ones and names, no link-local ever, private only for a service on
// a private address. Refused delegates are named on the request.
func TestPSADelegatesFollowTheProfile(t *testing.T) {
	hostile := []string{
		"/ip4/127.0.0.1/tcp/4001" + peer,
		"/ip6/::1/tcp/4001" + peer,
		"/ip4/8.8.8.8/tcp/4001" + peer,
		"/ip4/10.0.0.7/tcp/4001" + peer,
		"/ip4/169.254.169.254/tcp/80" + peer,
		"/ip6/fe80::1/tcp/4001" + peer,
		"/dns4/delegate.example/tcp/4001" + peer,
		"/dnsaddr/cluster.example" + peer,
		"/ip4/0.0.0.0/tcp/4001" + peer,
		"/ip4/127.0.0.1/tcp/4001", // no peer ID
	}
	for _, tc := range []struct {
		name   string
		policy DelegatePolicy
		want   []string
	}{
		{"air-gapped", AirGappedDelegates(), hostile[:2]},
		{"public, public service", PublicDelegates("https://api.pinata.cloud/psa"), []string{hostile[2], hostile[6], hostile[7]}},
		{"public, service on the LAN", PublicDelegates("http://10.0.0.5:9097"), []string{hostile[0], hostile[1], hostile[2], hostile[3], hostile[6], hostile[7]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := psatest.New()
			defer srv.Close()
			srv.Delegates = hostile
			h := newHarness(t, srv, srv.URL)
			rc := &recordingConnect{}
			p := tc.policy
			psa, err := NewPSA(h.svc, PSAOptions{Getenv: func(string) string { return srv.Token }, Connect: rc.connect, Delegates: &p, Now: h.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			h.d.Backends["cluster"] = psa
			c := h.enqueue(1)[0]
			h.drain(false)
			rc.mu.Lock()
			got := append([]string(nil), rc.addrs...)
			rc.mu.Unlock()
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("dialed %v\nwant   %v", got, tc.want)
			}
			r := h.req(c)
			if !strings.Contains(r.LastError, "not dialing") {
				t.Fatalf("the refused delegates are not named: %q", r.LastError)
			}
		})
	}
}

// TestPSARefusesCrossOriginRedirects (finding 25.10): a redirect to another
// port, or from https to http, is refused and the token never leaves the
// configured origin; a redirect within the origin is followed.
func TestPSARefusesCrossOriginRedirects(t *testing.T) {
	var leaked atomic.Int32
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"count":0,"results":[]}`))
	}))
	defer sink.Close()
	srv := psatest.New()
	defer srv.Close()
	redirect := func(to string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/moved/") {
				http.StripPrefix("/moved", srv).ServeHTTP(w, r)
				return
			}
			target := to + r.URL.Path
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusTemporaryRedirect)
		}
	}
	for _, tc := range []struct {
		name   string
		server func() *httptest.Server
		to     func(self string) string
		ok     bool
	}{
		{"another port", func() *httptest.Server { return httptest.NewServer(nil) }, func(string) string { return sink.URL }, false},
		{"https to http", func() *httptest.Server { return httptest.NewTLSServer(nil) }, func(string) string { return sink.URL }, false},
		{"same origin", func() *httptest.Server { return httptest.NewServer(nil) }, func(self string) string { return self + "/moved" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaked.Store(0)
			front := tc.server()
			defer front.Close()
			front.Config.Handler = redirect(tc.to(front.URL))
			h := newHarness(t, srv, front.URL)
			psa, err := NewPSA(h.svc, PSAOptions{Getenv: func(string) string { return srv.Token }, HTTPClient: front.Client(), Now: h.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			h.d.Backends["cluster"] = psa
			c := h.enqueue(1)[0]
			h.drain(false)
			r := h.req(c)
			if n := leaked.Load(); n != 0 {
				t.Fatalf("the token reached another origin %d times", n)
			}
			if tc.ok {
				if r.RequestID == "" || r.LastError != "" {
					t.Fatalf("a same-origin redirect was not followed: %+v", r)
				}
				return
			}
			if r.Status != StatusFailed || !r.Permanent || !strings.Contains(r.LastError, "redirected to another origin") {
				t.Fatalf("want a permanent refusal of the redirect, got %+v", r)
			}
			h.noLeak(r.LastError)
		})
	}
}

// TestPSAServiceTextIsMadeSafe (finding 25.14): what a service says is kept
// and shown without terminal escapes, and its echo of the token is
// redacted in any letter case and in base64.
func TestPSAServiceTextIsMadeSafe(t *testing.T) {
	for name, as := range map[string]func(string) string{
		"lower case": strings.ToLower,
		"upper case": strings.ToUpper,
		"base64": func(s string) string {
			return base64.StdEncoding.EncodeToString([]byte(strings.TrimPrefix(s, "Bearer ")))
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := psatest.New()
			defer srv.Close()
			srv.AddFaults(psatest.Fault{Match: "GET /pins", Code: 401, Reason: "\x1b]0;pwned\x07\x1b[2J\x1b[31mUNAUTHORIZED",
				Details: "token\r\nrevoked\u202e", EchoAuth: true, EchoAuthAs: as})
			h := newHarness(t, srv, srv.URL)
			c := h.enqueue(1)[0]
			h.drain(false)
			r := h.req(c)
			for _, bad := range []string{"\x1b", "\x07", "\r", "\n", "\u202e"} {
				if strings.Contains(r.LastError, bad) {
					t.Fatalf("the service's control characters were kept: %q", r.LastError)
				}
			}
			if !strings.Contains(r.LastError, "UNAUTHORIZED") || !strings.Contains(r.LastError, "[redacted]") {
				t.Fatalf("the service's words or the redaction are missing: %q", r.LastError)
			}
			tok := srv.Token
			for _, form := range []string{tok, strings.ToLower(tok), strings.ToUpper(tok), base64.StdEncoding.EncodeToString([]byte(tok))} {
				qb, _ := os.ReadFile(h.q.Path())
				if strings.Contains(r.LastError, form) || strings.Contains(string(qb), form) {
					t.Fatalf("the token is kept as %q: %q", form, r.LastError)
				}
			}
		})
	}
}

// TestPSABoundsWhatItKeeps (finding 25.7): an answer larger than any real
// one is refused unread, and an unusable request id is not stored.
func TestPSABoundsWhatItKeeps(t *testing.T) {
	t.Run("huge answer", func(t *testing.T) {
		big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"count":1,"results":[{"requestid":"` + strings.Repeat("a", 9<<20) + `"}]}`))
		}))
		defer big.Close()
		h := newHarness(t, psatest.New(), big.URL)
		c := h.enqueue(1)[0]
		h.drain(false)
		r := h.req(c)
		qb, _ := os.ReadFile(h.q.Path())
		if !strings.Contains(r.LastError, "larger than 8 MiB") || len(qb) > 16<<10 {
			t.Fatalf("a 9 MiB answer: %q, queue %d bytes", r.LastError, len(qb))
		}
	})
	t.Run("unusable request id", func(t *testing.T) {
		odd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if r.Method == http.MethodGet {
				w.Write([]byte(`{"count":0,"results":[]}`))
				return
			}
			w.WriteHeader(http.StatusAccepted)
			json.NewEncoder(w).Encode(map[string]any{"requestid": strings.Repeat("\x1b[2J", 2000), "status": "queued",
				"created": time.Now().UTC(), "pin": map[string]string{"cid": "x"}, "delegates": []string{}})
		}))
		defer odd.Close()
		h := newHarness(t, psatest.New(), odd.URL)
		c := h.enqueue(1)[0]
		h.drain(false)
		r := h.req(c)
		if r.RequestID != "" || !strings.Contains(r.LastError, "unusable requestid") || strings.Contains(r.LastError, "\x1b") || len(r.LastError) > 700 {
			t.Fatalf("%+v", r)
		}
	})
}

// TestPSAOptionalToken: a service whose token is optional (filecoin-pin run
// with --allow-no-auth) is asked without one while its variable is unset.
func TestPSAOptionalToken(t *testing.T) {
	srv := psatest.New()
	defer srv.Close()
	srv.Open = true
	h := newHarness(t, srv, srv.URL)
	svc := h.svc
	svc.TokenOptional = true
	psa, err := NewPSA(svc, PSAOptions{Getenv: func(string) string { return "" }, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h.d.Backends["cluster"] = psa
	c := h.enqueue(1)[0]
	h.drain(false)
	if r := h.req(c); r.RequestID == "" || r.LastError != "" {
		t.Fatalf("%+v", r)
	}
	for _, call := range srv.Calls() {
		if call.Authorized != true {
			t.Fatalf("call %+v refused", call)
		}
	}
}

// TestGoneRequestsAreNotSentAgain: a request the service refused for good
// is left alone by every drain, forced ones (pins --retry) included; only a
// drain naming the service with RetryGone sends it again.
func TestGoneRequestsAreNotSentAgain(t *testing.T) {
	srv := psatest.New()
	defer srv.Close()
	h := newHarness(t, srv, srv.URL)
	c := h.enqueue(1)[0]
	err := h.q.Update(func(reqs []*Request) ([]*Request, error) {
		reqs[0].Status, reqs[0].Permanent, reqs[0].ServiceGone, reqs[0].LastError = StatusFailed, true, true, "gone"
		return reqs, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.drain(false)
	h.drain(true)
	if rep, err := h.d.Settle(context.Background(), 0); err != nil || rep.Pushed != 0 {
		t.Fatalf("Settle pushed %d: %v", rep.Pushed, err)
	}
	if n := len(srv.Calls()); n != 0 {
		t.Fatalf("%d requests reached the service for a request it refused for good", n)
	}
	if _, err := h.d.Drain(context.Background(), DrainOptions{Force: true, Services: []string{"other"}, RetryGone: true}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Calls()); n != 0 {
		t.Fatal("RetryGone for another service sent this one")
	}
	if _, err := h.d.Drain(context.Background(), DrainOptions{Force: true, Services: []string{"cluster"}, RetryGone: true}); err != nil {
		t.Fatal(err)
	}
	if r := h.req(c); r.ServiceGone || r.RequestID == "" {
		t.Fatalf("--retry --service did not send it again: %+v", r)
	}
}

// TestQueueMove: pins move queues each CID once on the new service, marks
// the old requests moved (a pinned one stays, or is copied with all), and
// running it again changes nothing.
func TestQueueMove(t *testing.T) {
	clock := newClock()
	q := OpenQueue(t.TempDir(), clock.Now)
	var add []Request
	for i := range 4 {
		add = append(add, Request{Service: "old", CID: testCID(t, i), Name: "n", Meta: Meta{FilePath: "f"}})
	}
	add = append(add, Request{Service: "new", CID: testCID(t, 3)}, Request{Service: "third", CID: testCID(t, 9)})
	if _, err := q.Enqueue(add); err != nil {
		t.Fatal(err)
	}
	err := q.Update(func(reqs []*Request) ([]*Request, error) {
		reqs[0].Status = StatusPinned
		reqs[1].Status, reqs[1].ServiceGone, reqs[1].Permanent = StatusFailed, true, true
		return reqs, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := q.Move("old", "new", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Moved != 3 || rep.Queued != 2 || rep.KeptPinned != 1 {
		t.Fatalf("%+v", rep)
	}
	before, _ := os.ReadFile(q.Path())
	again, err := q.Move("old", "new", false)
	if err != nil || again.Moved != 0 || again.Queued != 0 || again.Before != 3 {
		t.Fatalf("second move: %+v %v", again, err)
	}
	if after, _ := os.ReadFile(q.Path()); string(after) != string(before) {
		t.Fatal("running the move again changed the queue")
	}
	all, err := q.Move("old", "new", true)
	if err != nil || all.Copied != 1 || all.Queued != 1 {
		t.Fatalf("--all: %+v %v", all, err)
	}
	reqs, _ := q.List()
	per := map[string]int{}
	for _, r := range reqs {
		if r.Service == "new" {
			per[r.CID]++
			if r.Status != StatusQueued || r.Meta.FilePath == "" && r.CID != testCID(t, 3) {
				t.Errorf("new request %+v", r)
			}
		}
		if r.Service == "old" && r.CID != testCID(t, 0) && (r.Status != StatusMoved || r.MovedTo != "new" || r.ServiceGone) {
			t.Errorf("old request not moved: %+v", r)
		}
		if r.Service == "old" && r.CID == testCID(t, 0) && r.Status != StatusPinned {
			t.Errorf("the pinned request changed: %+v", r)
		}
	}
	for c, n := range per {
		if n != 1 {
			t.Errorf("%s queued %d times on new", c, n)
		}
	}
	if len(per) != 4 {
		t.Errorf("%d CIDs on new, want 4", len(per))
	}
	if _, err := q.Move("nobody", "new", false); err == nil || !strings.Contains(err.Error(), "new, old, third") {
		t.Fatalf("moving from a service with no requests: %v", err)
	}
}

// TestBridgeLiveServiceRefusesForGood: against the bridge as Storacha's
// public service answers today, a drain fails every request for good with
// the service's words and the way forward, keeps the verified refusal as
// evidence, drops the batch, and no later drain, forced or not, sends
// anything.
func TestBridgeLiveServiceRefusesForGood(t *testing.T) {
	h := newBridgeHarness(t, "")
	h.b.LiveToday()
	h.d.Drain(context.Background(), DrainOptions{})
	for _, r := range h.list(t) {
		if r.Status != StatusFailed || !r.ServiceGone || !r.Permanent ||
			!strings.Contains(r.LastError, `HandlerNotFound: service does not implement {can: "store/add"} handler`) ||
			!strings.Contains(r.LastError, "ssid-anchor pins move --from w3 --to NAME") {
			t.Fatalf("%+v", r)
		}
		var ev BridgeEvidence
		if err := json.Unmarshal(r.Evidence, &ev); err != nil || len(ev.Receipts) == 0 || ev.Receipts[0].Error != storacha.HandlerNotFound || !ev.Receipts[0].Verified {
			t.Fatalf("evidence %s (%v)", r.Evidence, err)
		}
	}
	if _, err := os.Stat(StatePath(h.dir, "w3")); err == nil {
		t.Error("the refused batch is kept for a resume that can never succeed")
	}
	if left, _ := filepath.Glob(filepath.Join(h.dir, "storacha-w3.shards", "*")); len(left) != 0 {
		t.Errorf("%d shard files left", len(left))
	}
	posts, _, _, _ := h.b.Snapshot()
	h.clock.Advance(48 * time.Hour)
	h.d.Drain(context.Background(), DrainOptions{})
	h.d.Drain(context.Background(), DrainOptions{Force: true})
	if p, _, _, _ := h.b.Snapshot(); p != posts {
		t.Fatalf("%d more requests reached a service that refused for good", p-posts)
	}
}

// TestBridgeForgedRefusalIsNotBelieved: a ServiceUnavailable signed by
// another key leaves the requests queued (stopped), not failed, and says
// the signature is why.
func TestBridgeForgedRefusalIsNotBelieved(t *testing.T) {
	h := newBridgeHarness(t, "")
	h.b.WritesDisabled = true
	h.b.BadKeyFor["store/add"] = true
	h.d.Drain(context.Background(), DrainOptions{})
	for _, r := range h.list(t) {
		if r.Status != StatusQueued || r.ServiceGone || !r.Permanent || !strings.Contains(r.LastError, "signature") {
			t.Fatalf("%+v", r)
		}
	}
}

// TestBridgeQueueStaysSmall (finding 25.7): receipts larger than receipts
// are are not kept in the queue; receipts too large for an answer are not
// even read.
func TestBridgeQueueStaysSmall(t *testing.T) {
	for _, pad := range []int{200 << 10, 3 << 20} {
		h := newBridgeHarness(t, "")
		h.b.PadReceipts = pad
		h.d.Drain(context.Background(), DrainOptions{})
		qb, _ := os.ReadFile(h.d.Queue.Path())
		sb, _ := os.ReadFile(StatePath(h.dir, "w3"))
		if len(qb) > 64<<10 || len(sb) > 64<<10 {
			t.Fatalf("receipts padded by %d bytes: queue.json %d bytes, batch state %d bytes", pad, len(qb), len(sb))
		}
	}
}

// TestBridgeKeepsNoUploadCredentials (finding 25.12): after an upload the
// queue and the batch state hold no presigned URL, upload token or header
// value.
func TestBridgeKeepsNoUploadCredentials(t *testing.T) {
	h := newBridgeHarness(t, "")
	h.d.Drain(context.Background(), DrainOptions{})
	for _, r := range h.list(t) {
		if r.Status != StatusPinned {
			t.Fatalf("%+v", r)
		}
	}
	qb, _ := os.ReadFile(h.d.Queue.Path())
	if !strings.Contains(string(qb), `"store/add"`) {
		t.Fatal("no store/add receipt kept: nothing checked")
	}
	for _, bad := range []string{"X-Amz-Signature", "/put/"} {
		if strings.Contains(string(qb), bad) {
			t.Fatalf("queue.json holds %q", bad)
		}
	}
	if strings.Count(string(qb), `"x-amz-checksum-sha256":"`) != strings.Count(string(qb), `"x-amz-checksum-sha256":"[redacted]"`) {
		t.Fatal("queue.json holds an upload header value")
	}
}
