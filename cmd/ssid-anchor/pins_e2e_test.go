package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/pinning/psatest"
	"github.com/ssid/ssid-anchor/node"
)

const pinTokenEnv = "SSID_E2E_PIN_TOKEN"

// pinTree is a governance tree whose first anchoring run records three
// files, one of them large enough to span several blocks.
func pinTree(t *testing.T) (root, repo, cfg string) {
	t.Helper()
	root = newTree(t)
	randomFile(t, filepath.Join(root, "05_documentation/reports/dashboard/SSID_Governance_Dashboard.md"), 1<<20+12345)
	mustWrite(t, filepath.Join(root, "05_documentation/reports/dashboard/dashboard_data.csv"), []byte("quarter,date,compliance_score\n2026-Q1,2026-01-01,97\n"))
	repo = initRepo(t)
	cfg = filepath.Join(t.TempDir(), "appliance.json")
	return root, repo, cfg
}

func writePinConfig(t *testing.T, cfg, endpoint string, extra string) {
	t.Helper()
	mustWrite(t, cfg, []byte(`{"remote_pinning": {"services": [
  {"name": "cluster", "endpoint": "`+endpoint+`", "token_env": "`+pinTokenEnv+`"}`+extra+`]}}`))
}

// runPinsBin runs the built binary with the token in its environment.
func runPinsBin(t *testing.T, token string, args ...string) (int, string, string) {
	t.Helper()
	return runEnv(t, []string{pinTokenEnv + "=" + token}, args...)
}

func queueOf(t *testing.T, repo string) []*pinning.Request { return queueOfTB(t, repo) }

func queueOfTB(t testing.TB, repo string) []*pinning.Request {
	t.Helper()
	reqs, err := pinning.OpenQueue(pinning.QueueDir(repo), nil).List()
	if err != nil {
		t.Fatal(err)
	}
	return reqs
}

// serviceNode is the pinning service's own IPFS node: air-gapped, loopback.
func serviceNode(t *testing.T) *node.Node {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "service-repo")
	if _, err := node.Init(repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), repo, node.OpenOptions{Online: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestRemotePinDelegatesFetchOverBitswap: `anchor --remote` anchors and
// queues without contacting the service; `pins --retry` creates the pins
// with our multiaddrs as origins, connects to the delegates, and the
// service's own node fetches every block from ours over bitswap; the
// manifest then records each pin and the service as a storage provider,
// and verify still passes. The token appears nowhere.
func TestRemotePinDelegatesFetchOverBitswap(t *testing.T) {
	// Only what our connection to the delegates makes possible: the
	// service node has no router and never dials the origins.
	srv, fetched := fetchingService(t, true, false)
	root, repo, cfg := pinTree(t)
	writePinConfig(t, cfg, srv.URL, "")
	g := []string{"--root", root, "--repo", repo, "--config", cfg}

	code, stdout, stderr := runPinsBin(t, srv.Token, append(g, "anchor", "--remote", "cluster")...)
	if code != 0 {
		t.Fatalf("anchor --remote: exit %d\n%s", code, stderr)
	}
	if len(srv.Calls()) != 0 {
		t.Fatal("anchoring contacted the service; it must only queue")
	}
	reqs := queueOf(t, repo)
	m := readManifest(t, root)
	if len(reqs) != 3 || len(m.Records) != 3 {
		t.Fatalf("%d requests for %d records, want 3 and 3; stderr:\n%s", len(reqs), len(m.Records), stderr)
	}
	if !strings.Contains(stderr, "queued 3 remote pin requests for cluster") {
		t.Errorf("anchor did not say what it queued:\n%s", stderr)
	}

	code, stdout2, stderr2 := runPinsBin(t, srv.Token, append(g, "pins", "--retry", "--wait", "90s")...)
	if code != 0 {
		t.Fatalf("pins --retry: exit %d\n%s\n%s", code, stdout2, stderr2)
	}
	for _, r := range queueOf(t, repo) {
		if r.Status != pinning.StatusPinned || r.RequestID == "" || r.LastError != "" {
			t.Errorf("request not pinned: %+v", r)
		}
	}
	if n := len(srv.Pins()); n != 3 {
		t.Fatalf("service holds %d pins, want 3", n)
	}
	// The service's node has every file, byte for byte.
	m = readManifest(t, root)
	for _, r := range m.Records {
		want, err := os.ReadFile(filepath.Join(root, r.FilePath))
		if err != nil {
			t.Fatal(err)
		}
		got := fetched.of(r.IPFSCID)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the service fetched %d bytes, the file has %d", r.FilePath, len(got), len(want))
		}
		if len(r.RemotePins) != 1 || r.RemotePins[0].Service != "cluster" || r.RemotePins[0].Status != "pinned" || r.RemotePins[0].RequestID == "" {
			t.Errorf("%s: remote_pins %+v", r.FilePath, r.RemotePins)
		}
	}
	// Origins were our node's addresses.
	for _, c := range srv.Calls() {
		if c.Method == "POST" && !bytes.Contains(c.Body, []byte(`"origins":["/ip`)) {
			t.Errorf("create without origins: %s", c.Body)
		}
	}
	mb, _ := os.ReadFile(filepath.Join(root, tManifest))
	if !bytes.Contains(mb, []byte(`"pinning-service:cluster"`)) {
		t.Error("statistics.storage_providers does not list the service")
	}

	code, stdout3, stderr3 := runPinsBin(t, srv.Token, append(g, "--json", "pins")...)
	if code != 0 {
		t.Fatalf("pins --json: exit %d: %s", code, stderr3)
	}
	var doc struct {
		Requests []pinning.Request `json:"requests"`
	}
	if err := json.Unmarshal([]byte(stdout3), &doc); err != nil || len(doc.Requests) != 3 {
		t.Fatalf("pins --json: %v\n%s", err, stdout3)
	}
	code, _, stderr4 := runPinsBin(t, srv.Token, append(g, "verify")...)
	if code != 0 {
		t.Fatalf("verify after remote pinning: exit %d\n%s", code, stderr4)
	}
	qb, _ := os.ReadFile(filepath.Join(repo, "remote-pins", "queue.json"))
	for name, s := range map[string]string{"anchor stdout": stdout, "anchor stderr": stderr, "pins stdout": stdout2,
		"pins stderr": stderr2, "pins --json": stdout3, "verify": stderr4, "queue": string(qb), "manifest": string(mb)} {
		if strings.Contains(s, srv.Token) {
			t.Errorf("the token appears in %s", name)
		}
	}
}

// killAtCreate runs the binary until the service srv has created a pin,
// holds the service's answers, SIGKILLs it, and lets the service go on.
func killAtCreate(t *testing.T, srv *psatest.Server, env []string, args ...string) {
	t.Helper()
	release := make(chan struct{})
	created := make(chan struct{}, 16)
	srv.OnCreate = func(psatest.PinStatus) {
		created <- struct{}{}
		<-release
	}
	var once sync.Once
	free := func() { once.Do(func() { srv.OnCreate = nil; close(release) }) }
	defer free()
	cmd := exec.Command(anchorBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-created:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no pin was created\n%s", errb.String())
	}
	time.Sleep(200 * time.Millisecond) // let the other workers' creates arrive too
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

// TestRemotePinSurvivesSIGKILL: the binary is killed while the service has
// created pins whose answers it never received; after a restart every
// request is pinned, none lost, and the service holds exactly one pin per
// anchor.
func TestRemotePinSurvivesSIGKILL(t *testing.T) {
	srv := psatest.New()
	defer srv.Close()
	root, repo, cfg := pinTree(t)
	writePinConfig(t, cfg, srv.URL, "")
	g := []string{"--root", root, "--repo", repo, "--config", cfg}
	if code, _, stderr := runPinsBin(t, srv.Token, append(g, "anchor", "--remote", "cluster")...); code != 0 {
		t.Fatalf("anchor: %s", stderr)
	}
	killAtCreate(t, srv, []string{pinTokenEnv + "=" + srv.Token}, append(g, "pins", "--retry")...)
	for _, r := range queueOf(t, repo) {
		if r.RequestID != "" {
			t.Fatalf("the killed drain saved a request id it never received: %+v", r)
		}
	}
	before := len(srv.Pins())
	if before == 0 {
		t.Fatal("the service holds no pin from the killed run")
	}

	code, stdout, stderr := runPinsBin(t, srv.Token, append(g, "pins", "--retry", "--wait", "60s")...)
	if code != 0 {
		t.Fatalf("pins --retry after SIGKILL: exit %d\n%s\n%s", code, stdout, stderr)
	}
	reqs := queueOf(t, repo)
	if len(reqs) != 3 {
		t.Fatalf("%d requests after restart, want 3", len(reqs))
	}
	perCID := map[string]int{}
	for _, p := range srv.Pins() {
		perCID[p.Pin.CID]++
	}
	for _, r := range reqs {
		if r.Status != pinning.StatusPinned {
			t.Errorf("not pinned after restart: %+v", r)
		}
		if perCID[r.CID] != 1 {
			t.Errorf("%s: %d pins on the service, want 1", r.CID, perCID[r.CID])
		}
	}
	if len(srv.Pins()) != 3 {
		t.Errorf("service holds %d pins, want 3 (the %d created before the kill were reused)", len(srv.Pins()), before)
	}
}

// TestAnchorRemoteFlags: an unknown service is a usage error before
// anything is anchored; --web3-storage needs its space; a storacha-bridge
// request without its token variables stays queued and `pins` names them;
// auto services get every anchor.
func TestAnchorRemoteFlags(t *testing.T) {
	root, repo, cfg := pinTree(t)
	writePinConfig(t, cfg, "http://127.0.0.1:9/", "")
	g := []string{"--root", root, "--repo", repo, "--config", cfg}
	code, _, stderr := runCLI(t, append(g, "anchor", "--remote", "nope")...)
	if code != exitUsage || !strings.Contains(stderr, `no remote pinning service named "nope" (configured: cluster)`) {
		t.Fatalf("unknown service: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runCLI(t, append(g, "anchor", "--web3-storage")...)
	if code != exitUsage || !strings.Contains(stderr, "web3-storage") || !strings.Contains(stderr, "space") {
		t.Fatalf("--web3-storage without an entry: exit %d\n%s", code, stderr)
	}
	if len(readManifest(t, root).Records) != 0 {
		t.Fatal("a usage error anchored something")
	}

	writePinConfig(t, cfg, "http://127.0.0.1:9/", `,
  {"name": "web3-storage", "space": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "auto": true}`)
	code, _, stderr = runCLI(t, append(g, "anchor")...)
	if code != 0 {
		t.Fatalf("anchor with an auto service: exit %d\n%s", code, stderr)
	}
	reqs := queueOf(t, repo)
	if len(reqs) != 3 || reqs[0].Service != "web3-storage" {
		t.Fatalf("auto service queue: %+v", reqs)
	}
	if !strings.Contains(stderr, "WEB3_STORAGE_AUTH_SECRET and WEB3_STORAGE_AUTHORIZATION not set") {
		t.Errorf("anchor does not warn about the missing token variables:\n%s", stderr)
	}
	// A drain without the tokens: nothing sent, the variables named.
	code, stdout, stderr := runCLI(t, append(g, "pins", "--retry", "--wait", "0s")...)
	if code != exitFailure {
		t.Fatalf("pins --retry without the bridge tokens: exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "environment variable WEB3_STORAGE_AUTH_SECRET and WEB3_STORAGE_AUTHORIZATION not set") {
		t.Fatalf("pins does not say why:\n%s", stdout)
	}
	// One line per request: service, CID, status, age, file, last error.
	for _, r := range reqs {
		found := false
		for _, line := range strings.Split(stdout, "\n") {
			f := strings.Fields(line)
			if len(f) >= 6 && f[0] == "web3-storage" && f[1] == r.CID && f[2] == "queued" && strings.HasSuffix(f[4], "ago") && f[5] == r.Meta.FilePath {
				found = true
			}
		}
		if !found {
			t.Errorf("no line for %s (%s) in:\n%s", r.CID, r.Meta.FilePath, stdout)
		}
	}
	for _, r := range readManifest(t, root).Records {
		if len(r.RemotePins) != 1 || r.RemotePins[0].Status != "queued" || r.RemotePins[0].Service != "web3-storage" {
			t.Errorf("%s: remote_pins %+v", r.FilePath, r.RemotePins)
		}
	}
}
