package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/node"
)

// onlinePeer is an in-process node on loopback with the given router.
func onlinePeer(t *testing.T, routing string) *node.Node {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	if _, err := node.Init(repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), repo, node.OpenOptions{Online: true, Routing: routing, Swarm: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func daemonStatus(t *testing.T, root, repo string) map[string]any {
	t.Helper()
	r := runBin(t, root, "--root", root, "--repo", repo, "--json", "status")
	var st map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		t.Fatalf("status: %+v", r)
	}
	return st
}

// TestDaemonAnnouncesAndPublishesOnLoopbackDHT: three nodes on a loopback
// DHT (the daemon, b, c in a line). After an `anchor` through the daemon,
// c finds the daemon as provider of the new anchor and resolves the
// daemon's IPNS name to the new manifest's CID.
func TestDaemonAnnouncesAndPublishesOnLoopbackDHT(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	cfg := writeConfig(t, `{"node": {"routing": "dhtserver"}}`)
	d := startDaemonWith(t, root, repo, nil, []string{"--config", cfg}, "--anchor-debounce", "1h")
	d.waitLog(t, `msg="job done" job=anchor`)
	st := daemonStatus(t, root, repo)
	if st["routing"] != "dhtserver" {
		t.Fatalf("daemon routing %v", st["routing"])
	}
	addrs := []string{}
	for _, a := range st["addresses"].([]any) {
		addrs = append(addrs, a.(string))
	}
	b := onlinePeer(t, node.RoutingDHTServer)
	c := onlinePeer(t, node.RoutingDHTServer)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := b.Connect(ctx, addrs); err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx, b.Addrs()); err != nil {
		t.Fatal(err)
	}

	if r := runBin(t, root, "--root", root, "event", "--event", "governance_update", "--version", "v2", "--hash", "h"); r.code != 0 {
		t.Fatalf("event: %+v", r)
	}
	r := runBin(t, root, "--root", root, "--repo", repo, "--config", cfg, "--json", "anchor")
	var res struct {
		Anchored []struct {
			CID string `json:"ipfs_cid"`
		} `json:"anchored"`
		ManifestCID string `json:"manifest_cid"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || len(res.Anchored) != 1 || res.ManifestCID == "" {
		t.Fatalf("anchor: %+v", r)
	}
	if !strings.Contains(r.stderr, "published /ipns/") {
		t.Errorf("anchor did not report the IPNS publication: %s", r.stderr)
	}
	peerID := st["peer_id"].(string)
	found := false
	for !found && ctx.Err() == nil {
		fctx, fcancel := context.WithTimeout(ctx, 3*time.Second)
		ps, _ := c.FindProviders(fctx, res.Anchored[0].CID, 5)
		fcancel()
		for _, p := range ps {
			found = found || p == peerID
		}
		if !found {
			time.Sleep(300 * time.Millisecond)
		}
	}
	if !found {
		t.Fatalf("c never found the daemon as provider of %s", res.Anchored[0].CID)
	}
	name := st["ipns"].(map[string]any)["name"].(string)
	var got string
	var err error
	for ctx.Err() == nil {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		got, err = c.ResolveIPNS(rctx, name)
		rcancel()
		if err == nil && got == res.ManifestCID {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got != res.ManifestCID {
		t.Fatalf("%s resolved from c to %q (%v), want the new manifest %s", name, got, err, res.ManifestCID)
	}
	st = daemonStatus(t, root, repo)
	if ipns := st["ipns"].(map[string]any); ipns["value"] != res.ManifestCID {
		t.Errorf("status ipns %v", ipns)
	}
	if p := st["provide"].(map[string]any); p["provided"].(float64) < 1 {
		t.Errorf("status provide %v", p)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestStockKuboFetchesFromDaemon: the stock kubo daemon (loopback, no
// bootstrap, no router) connects to the running ssid-anchor daemon and
// fetches a fresh anchor over bitswap, byte-identical.
func TestStockKuboFetchesFromDaemon(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	d := startDaemon(t, root, repo, nil)
	d.waitLog(t, `msg="job done" job=anchor`)
	rec := readManifest(t, root).Records[0]
	want, _ := os.ReadFile(filepath.Join(root, rec.FilePath))
	st := daemonStatus(t, root, repo)
	addr := st["addresses"].([]any)[0].(string)

	stock := filepath.Join(t.TempDir(), "stock")
	env := append(os.Environ(), "IPFS_PATH="+stock)
	ipfs := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(stockIPFS(t), args...)
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
	kubo := exec.Command(stockIPFS(t), "daemon")
	kubo.Env = env
	klog := &lockedBuffer{}
	kubo.Stdout, kubo.Stderr = klog, klog
	if err := kubo.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		kubo.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { kubo.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			kubo.Process.Kill()
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(klog.String(), "Daemon is ready") {
		if time.Now().After(deadline) {
			t.Fatalf("stock daemon not ready:\n%s", klog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ipfs("swarm", "connect", addr)
	got := ipfs("cat", "--timeout=60s", rec.IPFSCID)
	if !bytes.Equal(got, want) {
		t.Fatalf("stock kubo fetched %d bytes, want the %d anchored", len(got), len(want))
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
