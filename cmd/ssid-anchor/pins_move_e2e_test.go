package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/boxo/path"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/pinning/psatest"
	"github.com/ssid/ssid-anchor/anchor/storacha/bridgetest"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/node"
)

// fetched is what a fetching service's own node pulled, by CID.
type fetched struct {
	mu  sync.Mutex
	got map[string][]byte
}

func (f *fetched) of(c string) []byte { f.mu.Lock(); defer f.mu.Unlock(); return f.got[c] }

// fetchingService is a Pinning Service API stand-in whose pins are real: its
// own IPFS node (air-gapped, loopback, no router) fetches every block over
// bitswap from whoever it is connected to. With origins it dials the origins
// a request names, as Filecoin Pin does; with delegates it offers its
// addresses, as IPFS Cluster and Pinata do, so a client that dials them is a
// source. A pin is pinned only when the whole DAG is in the service's node.
func fetchingService(t *testing.T, delegates, origins bool) (*psatest.Server, *fetched) {
	t.Helper()
	svcNode := serviceNode(t)
	srv := psatest.New()
	t.Cleanup(srv.Close)
	if delegates {
		srv.Delegates = svcNode.Addrs()
	}
	f := &fetched{got: map[string][]byte{}}
	dialOrigins := origins
	srv.Fetch = func(ctx context.Context, c cid.Cid, origins []string) error {
		if !dialOrigins {
			origins = nil
		}
		var mas []ma.Multiaddr
		for _, o := range origins {
			if m, err := ma.NewMultiaddr(o); err == nil {
				mas = append(mas, m)
			}
		}
		if infos, err := peer.AddrInfosFromP2pAddrs(mas...); err == nil {
			for _, ai := range infos {
				svcNode.API().Swarm().Connect(ctx, ai) // a dead origin is not fatal: delegates may bring the peer
			}
		}
		if err := svcNode.API().Pin().Add(ctx, path.FromCid(c)); err != nil {
			return err
		}
		nd, err := svcNode.API().Unixfs().Get(ctx, path.FromCid(c))
		if err != nil {
			return err
		}
		b, err := io.ReadAll(nd.(files.File))
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.got[c.String()] = b
		f.mu.Unlock()
		return nil
	}
	return srv, f
}

// runEnv runs the built binary with env added and returns exit code, stdout
// and stderr.
func runEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(anchorBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// checkFetched: the service's node holds every anchored file byte for byte.
func checkFetched(t *testing.T, f *fetched, root string) {
	t.Helper()
	for _, r := range readManifest(t, root).Records {
		want, err := os.ReadFile(filepath.Join(root, r.FilePath))
		if err != nil {
			t.Fatal(err)
		}
		if got := f.of(r.IPFSCID); !bytes.Equal(got, want) {
			t.Errorf("%s: the service fetched %d bytes, the file has %d", r.FilePath, len(got), len(want))
		}
	}
}

// TestWeb3StorageAsItIsToday (issue 23): against a bridge answering as
// Storacha's public service does today, `anchor --web3-storage` anchors
// (exit 0); the first drain fails every request for good with the service's
// words, the dates and the way forward, keeping the verified refusal;
// later drains, forced or not, send nothing; nothing is lost. `pins move` to
// the filecoin-pin preset (a stand-in on loopback that fetches from our
// node's origins, without a token, as `filecoin-pin server --allow-no-auth`)
// then pins every anchor there, the moved entries stay in the manifest's
// history, and verify passes.
func TestWeb3StorageAsItIsToday(t *testing.T) {
	for _, mode := range []string{"live today", "writes disabled"} {
		t.Run(mode, func(t *testing.T) {
			b := bridgetest.New(t)
			want := `HandlerNotFound: service does not implement {can: "store/add"} handler`
			if mode == "live today" {
				b.LiveToday()
			} else {
				b.WritesDisabled = true
				want = `ServiceUnavailable: The "store/add" capability is currently disabled.`
			}
			fp, got := fetchingService(t, false, true)
			fp.Open = true
			root, repo, cfg := pinTree(t)
			mustWrite(t, cfg, []byte(`{"remote_pinning": {"services": [
  {"name": "web3-storage", "endpoint": "`+b.Endpoint()+`", "space": "`+b.Space+`", "shard_size": 1048576,
   "service_did": "`+b.DID+`", "service_issuer": "`+b.Issuer+`"},
  {"name": "filecoin-pin", "endpoint": "`+fp.URL+`"}]}}`))
			g := []string{"--root", root, "--repo", repo, "--config", cfg}
			env := []string{"WEB3_STORAGE_AUTH_SECRET=" + b.Secret, "WEB3_STORAGE_AUTHORIZATION=" + b.Authz, "FILECOIN_PIN_TOKEN="}

			code, _, errA := runEnv(t, env, append(g, "anchor", "--web3-storage")...)
			if code != 0 {
				t.Fatalf("anchor --web3-storage: exit %d\n%s", code, errA)
			}
			records := readManifest(t, root).Records
			if len(records) != 3 {
				t.Fatalf("%d records anchored, want 3", len(records))
			}
			code, out, errR := runEnv(t, env, append(g, "pins", "--retry", "--wait", "30s")...)
			if code != exitFailure {
				t.Fatalf("pins --retry against a service that refuses: exit %d, want 1\n%s\n%s", code, out, errR)
			}
			for _, r := range queueOf(t, repo) {
				if r.Status != pinning.StatusFailed || !r.ServiceGone || !strings.Contains(r.LastError, want) ||
					!strings.Contains(r.LastError, "stopped taking uploads on 15 April 2026") ||
					!strings.Contains(r.LastError, "ssid-anchor pins move --from web3-storage --to NAME") {
					t.Fatalf("request %+v", r)
				}
				var ev pinning.BridgeEvidence
				if err := json.Unmarshal(r.Evidence, &ev); err != nil || len(ev.Receipts) == 0 || !ev.Receipts[0].Verified ||
					!strings.Contains(want, ev.Receipts[0].Error+":") || len(ev.Receipts[0].Receipt) == 0 {
					t.Fatalf("the refusing receipt is not kept, verified: %s", r.Evidence)
				}
			}
			// `pins` shows the service's words and what to do, naming the
			// service the requests can go to.
			code, out, errP := runEnv(t, env, append(g, "pins")...)
			for _, w := range []string{want, "Web3.Storage (Storacha) stopped taking uploads on 15 April 2026",
				"3 requests refused for good", "ssid-anchor pins move --from web3-storage --to filecoin-pin"} {
				if !strings.Contains(out, w) {
					t.Errorf("pins does not say %q:\n%s", w, out)
				}
			}
			if code != 0 {
				t.Errorf("pins: exit %d\n%s", code, errP)
			}
			posts, _, _, _ := b.Snapshot()
			if posts != 1 {
				t.Errorf("%d bridge requests for one refused batch", posts)
			}
			// Later drains send nothing: forced ones and the daemon's.
			runEnv(t, env, append(g, "pins", "--retry", "--wait", "1s")...)
			scheduledDrain(t, root, repo, cfg, env)
			if p, _, _, _ := b.Snapshot(); p != posts {
				t.Fatalf("%d more requests reached the service after it refused for good", p-posts)
			}
			// Nothing lost: the anchors verify, the manifest records the
			// failure, the queue still holds every request.
			if code, _, e := runEnv(t, env, append(g, "verify")...); code != 0 {
				t.Fatalf("verify after the refusal: exit %d\n%s", code, e)
			}
			for _, r := range readManifest(t, root).Records {
				if len(r.RemotePins) != 1 || r.RemotePins[0].Status != "failed" {
					t.Errorf("%s: remote_pins %+v", r.FilePath, r.RemotePins)
				}
			}

			// The way forward.
			code, out, errM := runEnv(t, env, append(g, "pins", "move", "--from", "web3-storage", "--to", "filecoin-pin", "--wait", "90s")...)
			if code != 0 {
				t.Fatalf("pins move: exit %d\n%s\n%s", code, out, errM)
			}
			if !strings.Contains(out, "moved 3 requests from web3-storage to filecoin-pin") {
				t.Errorf("pins move does not say what it did:\n%s", out)
			}
			checkFetched(t, got, root)
			for _, c := range fp.Calls() {
				if c.Method == "POST" && !bytes.Contains(c.Body, []byte(`"origins":["/ip`)) {
					t.Errorf("a request to filecoin-pin without our origins: %s", c.Body)
				}
			}
			m := readManifest(t, root)
			for _, r := range m.Records {
				byService := map[string]string{}
				for _, p := range r.RemotePins {
					byService[p.Service] = p.Status + ">" + p.MovedTo
				}
				if byService["web3-storage"] != "moved>filecoin-pin" || byService["filecoin-pin"] != "pinned>" {
					t.Errorf("%s: remote_pins %+v", r.FilePath, r.RemotePins)
				}
			}
			if code, _, e := runEnv(t, env, append(g, "verify")...); code != 0 {
				t.Fatalf("verify after the move: exit %d\n%s", code, e)
			}
			if p, _, _, _ := b.Snapshot(); p != posts {
				t.Fatal("the move sent something to the old service")
			}
			qb, _ := os.ReadFile(filepath.Join(repo, "remote-pins", "queue.json"))
			mb, _ := os.ReadFile(filepath.Join(root, tManifest))
			noTokens(t, b, map[string]string{"anchor": errA, "retry": out + errR, "pins": errP, "move": errM, "queue": string(qb), "manifest": string(mb)})
		})
	}
}

// scheduledDrain runs the daemon's remote-pins step (drainRemotePins, not
// forced) once, in this process, on the repo's node online.
func scheduledDrain(t *testing.T, root, repo, cfgPath string, env []string) {
	t.Helper()
	cfg, err := appconfig.Load(cfgPath, true)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	g := &globalOptions{Root: root, Repo: repo, cfg: cfg, stdout: io.Discard, stderr: io.Discard,
		log: slog.New(slog.DiscardHandler), now: func() time.Time { return time.Now().UTC() },
		getenv: func(k string) string { return vars[k] }}
	n, err := node.Open(context.Background(), repo, node.OpenOptions{Online: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := ops.DrainRemotePins(context.Background(), g.opsEnv(), n); err != nil {
		t.Fatalf("the scheduled drain: %v", err)
	}
}

// TestWeb3StorageForgedRefusal (issue 23): a ServiceUnavailable receipt
// signed by another key than the service's is not taken as the service's
// word: the requests stay queued (stopped, unverified), the manifest does
// not call them failed, and `pins` says the signature is why.
func TestWeb3StorageForgedRefusal(t *testing.T) {
	b := bridgetest.New(t)
	b.WritesDisabled = true
	b.BadKeyFor["store/add"] = true
	g, root, repo := w3Setup(t, b, b.DID)
	if code, _, e := runW3(t, b, append(g, "anchor", "--web3-storage")...); code != 0 {
		t.Fatalf("anchor: exit %d\n%s", code, e)
	}
	code, out, errOut := runW3(t, b, append(g, "pins", "--retry", "--wait", "20s")...)
	if code != exitFailure {
		t.Fatalf("pins --retry: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, r := range queueOf(t, repo) {
		if r.Status != pinning.StatusQueued || r.ServiceGone || !r.Permanent || !strings.Contains(r.LastError, "signature") {
			t.Errorf("a forged refusal was taken as the service's word: %+v", r)
		}
	}
	code, out, _ = runW3(t, b, append(g, "pins")...)
	if code != 0 || !strings.Contains(out, "signature") || strings.Contains(out, "refused for good") || !strings.Contains(out, "queued (stopped)") {
		t.Errorf("pins does not say the signature is why:\n%s", out)
	}
	for _, r := range readManifest(t, root).Records {
		for _, p := range r.RemotePins {
			if p.Status == "failed" {
				t.Errorf("%s recorded failed on a forged receipt", r.FilePath)
			}
		}
	}
}

// refusedThenMove is a tree anchored for web3-storage on bridge b, whose
// requests b refused for good, and a service "cluster" at srv to move them
// to. g is the global flags (--root, --repo, --config, in that order), env
// the tokens of both.
func refusedThenMove(t *testing.T, b *bridgetest.Bridge, srv *psatest.Server) (g, env []string, root, repo string) {
	t.Helper()
	root, repo, cfg := pinTree(t)
	mustWrite(t, cfg, []byte(`{"remote_pinning": {"services": [
  {"name": "web3-storage", "endpoint": "`+b.Endpoint()+`", "space": "`+b.Space+`", "service_did": "`+b.DID+`", "service_issuer": "`+b.Issuer+`"},
  {"name": "cluster", "endpoint": "`+srv.URL+`", "token_env": "`+pinTokenEnv+`"}]}}`))
	g = []string{"--root", root, "--repo", repo, "--config", cfg}
	env = []string{"WEB3_STORAGE_AUTH_SECRET=" + b.Secret, "WEB3_STORAGE_AUTHORIZATION=" + b.Authz, pinTokenEnv + "=" + srv.Token}
	if code, _, e := runEnv(t, env, append(g, "anchor", "--web3-storage")...); code != 0 {
		t.Fatalf("anchor: exit %d\n%s", code, e)
	}
	if code, _, e := runEnv(t, env, append(g, "pins", "--retry", "--wait", "10s")...); code != exitFailure {
		t.Fatalf("pins --retry: exit %d\n%s", code, e)
	}
	return g, env, root, repo
}

// TestPinsMoveSurvivesSIGKILL (issue 23): `pins move` killed while the new
// service creates its pins (the queue already moved, the manifest not yet
// told), then run again: exactly one pin request per CID on the new
// service, every anchor pinned there by a service that really fetched it
// over bitswap, the old entries kept in the manifest as moved, verify ok.
func TestPinsMoveSurvivesSIGKILL(t *testing.T) {
	b := bridgetest.New(t)
	b.LiveToday()
	srv, got := fetchingService(t, true, true)
	g, env, root, repo := refusedThenMove(t, b, srv)

	killAtCreate(t, srv, env, append(g, "pins", "move", "--from", "web3-storage", "--to", "cluster")...)
	// Mid-move: the queue moved, the manifest not told yet.
	for _, r := range queueOf(t, repo) {
		if r.Service == "web3-storage" && r.Status != pinning.StatusMoved {
			t.Fatalf("the killed move left the queue half moved: %+v", r)
		}
	}
	for _, r := range readManifest(t, root).Records {
		for _, p := range r.RemotePins {
			if p.Status == "moved" {
				t.Fatal("the manifest was told before the kill: the kill was not mid-move")
			}
		}
	}
	if len(srv.Pins()) == 0 {
		t.Fatal("the service holds no pin from the killed run")
	}

	code, out, errM := runEnv(t, env, append(g, "pins", "move", "--from", "web3-storage", "--to", "cluster", "--wait", "90s")...)
	if code != 0 {
		t.Fatalf("pins move after SIGKILL: exit %d\n%s\n%s", code, out, errM)
	}
	if !strings.Contains(out, "moved 0 requests") || !strings.Contains(out, "3 moved by an earlier run") {
		t.Errorf("the second move does not say it found the first one's work:\n%s", out)
	}
	perCID := map[string]int{}
	for _, p := range srv.Pins() {
		perCID[p.Pin.CID]++
		if p.Status != "pinned" {
			t.Errorf("pin %s is %s", p.Pin.CID, p.Status)
		}
	}
	onB := map[string]int{}
	for _, r := range queueOf(t, repo) {
		if r.Service == "cluster" {
			onB[r.CID]++
			if r.Status != pinning.StatusPinned {
				t.Errorf("not pinned on cluster: %+v", r)
			}
		}
	}
	m := readManifest(t, root)
	for _, r := range m.Records {
		if perCID[r.IPFSCID] != 1 || onB[r.IPFSCID] != 1 {
			t.Errorf("%s: %d pins on the service, %d requests in the queue; want 1 and 1", r.FilePath, perCID[r.IPFSCID], onB[r.IPFSCID])
		}
		byService := map[string]string{}
		for _, p := range r.RemotePins {
			byService[p.Service] = p.Status + ">" + p.MovedTo
		}
		if byService["web3-storage"] != "moved>cluster" || byService["cluster"] != "pinned>" {
			t.Errorf("%s: remote_pins %+v", r.FilePath, r.RemotePins)
		}
	}
	if len(srv.Pins()) != len(m.Records) {
		t.Errorf("the service holds %d pins for %d anchors", len(srv.Pins()), len(m.Records))
	}
	checkFetched(t, got, root)
	if code, _, e := runEnv(t, env, append(g, "verify")...); code != 0 {
		t.Fatalf("verify after the move: exit %d\n%s", code, e)
	}
}

// TestPinsMoveThroughDaemon (issue 23): with the daemon running, `pins
// move` runs in it (the CLI cannot open the repo the daemon holds): the
// requests Storacha refused are pinned on the new service from the
// daemon's node, and the daemon says it ran the command.
func TestPinsMoveThroughDaemon(t *testing.T) {
	b := bridgetest.New(t)
	b.LiveToday()
	srv, got := fetchingService(t, true, true)
	g, env, root, repo := refusedThenMove(t, b, srv)
	d := startDaemonWith(t, root, repo, env, g[4:6])
	code, out, errM := runEnv(t, env, append(g, "pins", "move", "--from", "web3-storage", "--to", "cluster", "--wait", "90s")...)
	if code != 0 {
		t.Fatalf("pins move through the daemon: exit %d\n%s\n%s\n%s", code, out, errM, d.log.String())
	}
	if !strings.Contains(out, "moved 3 requests from web3-storage to cluster") {
		t.Errorf("pins move output:\n%s", out)
	}
	if !strings.Contains(d.log.String(), "pins -- move --from web3-storage --to cluster") {
		t.Errorf("the daemon did not run the move:\n%s", d.log.String())
	}
	for _, r := range queueOf(t, repo) {
		if r.Service == "cluster" && r.Status != pinning.StatusPinned {
			t.Errorf("not pinned: %+v", r)
		}
	}
	checkFetched(t, got, root)
	if code := d.stop(t); code != 0 {
		t.Fatalf("daemon: exit %d\n%s", code, d.log.String())
	}
	if code, _, e := runEnv(t, env, append(g, "verify")...); code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, e)
	}
}
