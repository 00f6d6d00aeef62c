package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// openOnline opens a fresh air-gapped repo online on loopback with the given
// router. Tests never dial anything but 127.0.0.1.
func openOnline(t *testing.T, routing string) *Node {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	if _, err := Init(repo, Config{Profile: ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), repo, OpenOptions{Online: true, Routing: routing, Swarm: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// addPinned adds data as one anchoring batch would and returns its CID.
func addPinned(t *testing.T, n *Node, data []byte) cid.Cid {
	t.Helper()
	p, err := ParamsFor(CIDProfileDefault)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.NewBatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.AddFile(bytes.NewReader(data), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Link("f", c)
	if _, err := b.Commit("test"); err != nil {
		t.Fatal(err)
	}
	return c
}

func mustParams(t *testing.T) ImportParams {
	t.Helper()
	p, err := ParamsFor(CIDProfileDefault)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func seededBytes(t *testing.T, size int) []byte {
	t.Helper()
	seed := time.Now().UnixNano()
	t.Logf("random content seed %d", seed)
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// TestGatewayServesLocalContentOnly: /ipfs/<cid> gives the exact bytes of a
// local anchor (deserialized, raw block and trustless CAR), and a CID the
// node does not hold is an error at once instead of a network fetch.
func TestGatewayServesLocalContentOnly(t *testing.T) {
	n := newTestNode(t)
	data := seededBytes(t, 700<<10) // three leaves and a root
	c := addPinned(t, n, data)
	mux := http.NewServeMux()
	mux.Handle("/ipfs/", n.GatewayHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path string, hdr map[string]string) (int, []byte, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}

	code, body, _ := get("/ipfs/"+c.String(), nil)
	if code != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET /ipfs/%s: %d, %d bytes; want 200 and the %d bytes added", c, code, len(body), len(data))
	}
	code, body, hdr := get("/ipfs/"+c.String()+"?format=car", nil)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/vnd.ipld.car") || len(body) < len(data) {
		t.Fatalf("trustless CAR: %d %q, %d bytes", code, hdr.Get("Content-Type"), len(body))
	}
	code, body, _ = get("/ipfs/"+c.String(), map[string]string{"Accept": "application/vnd.ipld.raw"})
	if code != 200 {
		t.Fatalf("raw block: %d", code)
	}
	if got, err := c.Prefix().Sum(body); err != nil || !got.Equals(c) {
		t.Fatalf("raw block does not hash to %s (got %v, %v)", c, got, err)
	}

	// A CID nobody here holds: the gateway must not wander off to fetch it.
	// The offline exchange answers "not found" (404) at once; a gateway that
	// asked the network would run into its retrieval timeout (504) instead.
	absent, err := ComputeCID(bytes.NewReader(seededBytes(t, 1000)), mustParams(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := get("/ipfs/"+absent.String(), nil); code != http.StatusNotFound {
		t.Fatalf("absent CID answered %d (%s), want 404 from the local blockstore", code, body)
	}
}

// TestLoopbackDHTProvideAndIPNS: three nodes form a DHT on loopback; an
// anchor provided by one is found by another, and the IPNS name the first
// publishes resolves from the third to the manifest CID it named.
func TestLoopbackDHTProvideAndIPNS(t *testing.T) {
	a := openOnline(t, RoutingDHTServer)
	b := openOnline(t, RoutingDHTServer)
	c := openOnline(t, RoutingDHTServer)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// A line: a - b - c, so c learns of a's records only through the DHT.
	if err := b.Connect(ctx, a.Addrs()); err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx, b.Addrs()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, b, c} {
		if n.Routing() != RoutingDHTServer {
			t.Fatalf("routing %q", n.Routing())
		}
	}

	anchor := addPinned(t, a, seededBytes(t, 4096))
	manifest := addPinned(t, a, []byte(`{"anchors":[]}`))
	if err := a.Provide(ctx, anchor.String()); err != nil {
		t.Fatal(err)
	}
	if st := a.ProvideStats(); st.Provided != 1 || st.Strategy != "pinned" || st.LastProvide.IsZero() {
		t.Fatalf("provide stats %+v", st)
	}

	// Providing is asynchronous: poll.
	found := false
	for !found && ctx.Err() == nil {
		fctx, fcancel := context.WithTimeout(ctx, 3*time.Second)
		ps, _ := c.FindProviders(fctx, anchor.String(), 5)
		fcancel()
		for _, p := range ps {
			if p == a.PeerID() {
				found = true
			}
		}
		if !found {
			time.Sleep(300 * time.Millisecond)
		}
	}
	if !found {
		t.Fatalf("node c never found node a as provider of %s", anchor)
	}

	name, err := a.PublishIPNS(ctx, manifest.String())
	if err != nil {
		t.Fatal(err)
	}
	if name != a.IPNSName() {
		t.Fatalf("published under %s, IPNSName says %s", name, a.IPNSName())
	}
	var got string
	for ctx.Err() == nil {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		got, err = c.ResolveIPNS(rctx, name)
		rcancel()
		if err == nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got != manifest.String() {
		t.Fatalf("%s resolved from node c to %q (%v), want %s", name, got, err, manifest)
	}
}

// TestNoRouterRefusesToPublish: the air-gapped default has nobody to tell,
// and says so instead of pretending to publish.
func TestNoRouterRefusesToPublish(t *testing.T) {
	n := openOnline(t, RoutingAuto)
	if n.Routing() != RoutingNone {
		t.Fatalf("air-gapped auto routing = %q", n.Routing())
	}
	c := addPinned(t, n, []byte("x"))
	if _, err := n.PublishIPNS(context.Background(), c.String()); !errorsIs(err, ErrNoRouting) {
		t.Fatalf("PublishIPNS without router: %v, want ErrNoRouting", err)
	}
	if err := n.Provide(context.Background(), c.String()); err != nil {
		t.Fatalf("Provide without router: %v, want nil (nothing to announce to)", err)
	}
}

// TestStockKuboFetchesOverBitswap: the stock kubo daemon (built from this
// module graph, loopback only, no bootstrap) connects to our online node
// and fetches a fresh anchor byte for byte.
func TestStockKuboFetchesOverBitswap(t *testing.T) {
	ipfsBin := os.Getenv("SSID_IPFS_BIN")
	if ipfsBin == "" {
		t.Fatal("SSID_IPFS_BIN is not set: run through `make test`, which builds the stock ipfs CLI")
	}
	n := openOnline(t, RoutingAuto)
	data := seededBytes(t, 1<<20+123)
	c := addPinned(t, n, data)

	stock := filepath.Join(t.TempDir(), "stock")
	env := append(os.Environ(), "IPFS_PATH="+stock)
	ipfs := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(ipfsBin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	ipfs("init", "--profile", "test")
	ipfs("config", "--json", "Bootstrap", "[]")
	ipfs("config", "--json", "AutoConf.Enabled", "false")
	ipfs("config", "--json", "Addresses.Swarm", `["/ip4/127.0.0.1/tcp/0"]`)
	ipfs("config", "Addresses.API", "/ip4/127.0.0.1/tcp/0")
	ipfs("config", "Addresses.Gateway", "/ip4/127.0.0.1/tcp/0")
	ipfs("config", "Routing.Type", "none")
	daemon := exec.Command(ipfsBin, "daemon", "--offline=false")
	daemon.Env = env
	var dlog bytes.Buffer
	daemon.Stdout, daemon.Stderr = &dlog, &dlog
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		daemon.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { daemon.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			daemon.Process.Kill()
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(dlog.String(), "Daemon is ready") {
		if time.Now().After(deadline) {
			t.Fatalf("stock daemon not ready:\n%s", dlog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ipfs(append([]string{"swarm", "connect"}, n.Addrs()[0])...)
	got := ipfs("cat", "--timeout=60s", c.String())
	if !bytes.Equal(got, data) {
		t.Fatalf("stock kubo fetched %d bytes, want the %d anchored (%s)", len(got), len(data), fmt.Sprint(c))
	}
}
