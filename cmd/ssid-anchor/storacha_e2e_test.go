package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/storacha/bridgetest"
)

// w3Setup is a governance tree, a repo and an appliance config whose
// web3-storage service points at a loopback bridge (receipts verified
// against the bridge's key, 1 MiB shards so the large file spans two).
func w3Setup(t *testing.T, b *bridgetest.Bridge, serviceDID string) (g []string, root, repo string) {
	t.Helper()
	root, repo, cfg := pinTree(t)
	did := ""
	if serviceDID != "" {
		did = `, "service_did": "` + serviceDID + `", "service_issuer": "` + b.Issuer + `"`
	}
	mustWrite(t, cfg, []byte(`{"remote_pinning": {"services": [
  {"name": "web3-storage", "endpoint": "`+b.Endpoint()+`", "space": "`+b.Space+`", "shard_size": 1048576`+did+`}]}}`))
	return []string{"--root", root, "--repo", repo, "--config", cfg}, root, repo
}

func w3Env(b *bridgetest.Bridge) []string {
	return append(os.Environ(), "WEB3_STORAGE_AUTH_SECRET="+b.Secret, "WEB3_STORAGE_AUTHORIZATION="+b.Authz)
}

func runW3(t *testing.T, b *bridgetest.Bridge, args ...string) (int, string, string) {
	t.Helper()
	return runEnv(t, []string{"WEB3_STORAGE_AUTH_SECRET=" + b.Secret, "WEB3_STORAGE_AUTHORIZATION=" + b.Authz}, args...)
}

// checkCARsGiveBackFiles imports every CAR the bridge received into a fresh
// stock kubo repo and reads each anchored file back from it.
func checkCARsGiveBackFiles(t *testing.T, b *bridgetest.Bridge, root string) {
	t.Helper()
	bin := stockIPFS(t)
	ipfsRepo := filepath.Join(t.TempDir(), "fresh")
	env := append(os.Environ(), "IPFS_PATH="+ipfsRepo)
	run := func(args ...string) []byte {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out
	}
	run("init", "--profile", "test")
	b.Mu.Lock()
	var cars []string
	for link, data := range b.Cars {
		p := filepath.Join(t.TempDir(), link+".car")
		mustWrite(t, p, data)
		cars = append(cars, p)
	}
	b.Mu.Unlock()
	if len(cars) < 2 {
		t.Fatalf("the bridge received %d CARs, want at least 2 (1 MiB shards)", len(cars))
	}
	run(append([]string{"dag", "import", "--offline", "--pin-roots=false"}, cars...)...)
	for _, r := range readManifest(t, root).Records {
		want, err := os.ReadFile(filepath.Join(root, r.FilePath))
		if err != nil {
			t.Fatal(err)
		}
		got := run("cat", "--offline", r.IPFSCID)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the imported CARs give %d bytes, the file has %d", r.FilePath, len(got), len(want))
		}
	}
}

func noTokens(t *testing.T, b *bridgetest.Bridge, where map[string]string) {
	t.Helper()
	for name, s := range where {
		if strings.Contains(s, b.Secret) || strings.Contains(s, b.Authz) {
			t.Errorf("a bridge token appears in %s", name)
		}
	}
}

// TestWeb3StorageThroughFaults: `anchor --web3-storage` only queues;
// `pins --retry` uploads every anchor through a 500 on the first bridge
// request and a 503 on the first PUT; each ends pinned with verified
// receipts, the manifest records it and names the provider, and the CARs
// the bridge received give back every file byte for byte.
func TestWeb3StorageThroughFaults(t *testing.T) {
	b := bridgetest.New(t)
	b.FailPOST = []int{http.StatusInternalServerError}
	b.FailPUT = []int{http.StatusServiceUnavailable}
	b.RetryAfter = "1"
	g, root, repo := w3Setup(t, b, b.DID)

	code, out1, err1 := runW3(t, b, append(g, "anchor", "--web3-storage")...)
	if code != 0 {
		t.Fatalf("anchor --web3-storage: exit %d\n%s", code, err1)
	}
	if posts, _, _, _ := b.Snapshot(); posts != 0 {
		t.Fatal("anchoring contacted the bridge; it must only queue")
	}
	if n := len(queueOf(t, repo)); n != 3 {
		t.Fatalf("%d requests queued, want 3", n)
	}
	code, out2, err2 := runW3(t, b, append(g, "pins", "--retry", "--wait", "90s")...)
	if code != 0 {
		t.Fatalf("pins --retry: exit %d\n%s\n%s", code, out2, err2)
	}
	b.NoProblems(t)
	for _, r := range queueOf(t, repo) {
		if r.Status != pinning.StatusPinned || r.LastError != "" || !bytes.Contains(r.Evidence, []byte(`"receipts verified"`)) || !bytes.Contains(r.Evidence, []byte(`"upload/add"`)) {
			t.Errorf("request not pinned with verified receipts: %+v evidence %s", r, r.Evidence)
		}
	}
	_, putTries, puts, byAbility := b.Snapshot()
	for car, n := range puts {
		if n != 1 {
			t.Errorf("CAR %s was PUT %d times", car, n)
		}
	}
	if putTries != len(puts)+1 || byAbility["upload/add"] != 3 {
		t.Errorf("%d PUT tries for %d CARs (want one retry), upload/add tasks %d (want 3)", putTries, len(puts), byAbility["upload/add"])
	}
	m := readManifest(t, root)
	for _, r := range m.Records {
		if len(r.RemotePins) != 1 || r.RemotePins[0].Service != "web3-storage" || r.RemotePins[0].Status != "pinned" {
			t.Errorf("%s: remote_pins %+v", r.FilePath, r.RemotePins)
		}
	}
	mb, _ := os.ReadFile(filepath.Join(root, tManifest))
	if !bytes.Contains(mb, []byte(`"storacha-bridge:web3-storage"`)) {
		t.Error("statistics.storage_providers does not list the bridge")
	}
	checkCARsGiveBackFiles(t, b, root)

	code, out3, err3 := runW3(t, b, append(g, "pins")...)
	if code != 0 || !strings.Contains(out3, "receipts verified") || strings.Count(out3, "pinned") < 3 {
		t.Errorf("pins: exit %d\n%s\n%s", code, out3, err3)
	}
	if _, err := os.Stat(pinning.StatePath(pinning.QueueDir(repo), "web3-storage")); err == nil {
		t.Error("the finished batch state was not removed")
	}
	qb, _ := os.ReadFile(filepath.Join(repo, "remote-pins", "queue.json"))
	noTokens(t, b, map[string]string{"anchor stdout": out1, "anchor stderr": err1, "pins --retry stdout": out2,
		"pins --retry stderr": err2, "pins": out3 + err3, "queue": string(qb), "manifest": string(mb)})
}

// TestWeb3StorageBadReceipt: a bridge signing upload/add receipts with
// another key than service_did pins nothing, and `pins` says why.
func TestWeb3StorageBadReceipt(t *testing.T) {
	b := bridgetest.New(t)
	b.BadKeyFor["upload/add"] = true
	g, root, repo := w3Setup(t, b, b.DID)
	if code, _, e := runW3(t, b, append(g, "anchor", "--web3-storage")...); code != 0 {
		t.Fatalf("anchor: exit %d\n%s", code, e)
	}
	code, out, errOut := runW3(t, b, append(g, "pins", "--retry", "--wait", "20s")...)
	if code != 1 {
		t.Errorf("pins --retry with bad receipts: exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "receipt signature does not verify") {
		t.Errorf("pins does not say why:\n%s", out)
	}
	for _, r := range queueOf(t, repo) {
		if r.Status == pinning.StatusPinned || !r.Permanent || !strings.Contains(r.LastError, "receipt signature does not verify") {
			t.Errorf("request %+v: want failed permanently on the receipt", r)
		}
	}
	for _, r := range readManifest(t, root).Records {
		for _, p := range r.RemotePins {
			if p.Status == "pinned" {
				t.Errorf("%s recorded pinned despite a bad receipt", r.FilePath)
			}
		}
	}
	noTokens(t, b, map[string]string{"pins": out + errOut})
}

// TestWeb3StorageCrashAfterPuts: a drain SIGKILLed while upload/add is in
// flight (every shard PUT already) finishes on the next drain at upload/add
// with no second PUT; the saved batch state holds no token.
func TestWeb3StorageCrashAfterPuts(t *testing.T) {
	b := bridgetest.New(t)
	inUploadAdd := make(chan struct{}, 1)
	holding := true
	b.BeforePost = func(r *http.Request, body []byte) {
		b.Mu.Lock()
		hold := holding
		b.Mu.Unlock()
		if hold && bytes.Contains(body, []byte(`"upload/add"`)) {
			select {
			case inUploadAdd <- struct{}{}:
			default:
			}
			<-r.Context().Done() // until the client dies
		}
	}
	g, _, repo := w3Setup(t, b, b.DID)
	if code, _, e := runW3(t, b, append(g, "anchor", "--web3-storage")...); code != 0 {
		t.Fatalf("anchor: exit %d\n%s", code, e)
	}
	cmd := exec.Command(anchorBinary(t), append(g, "pins", "--retry", "--wait", "60s")...)
	cmd.Env = w3Env(b)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inUploadAdd:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("upload/add never came\n%s", errb.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	_, putsBefore, putsMap, _ := b.Snapshot()
	if putsBefore == 0 || len(putsMap) == 0 {
		t.Fatal("no shard was PUT before upload/add")
	}
	state, err := os.ReadFile(pinning.StatePath(pinning.QueueDir(repo), "web3-storage"))
	if err != nil {
		t.Fatalf("no batch state after the kill: %v", err)
	}
	b.Mu.Lock()
	holding = false
	b.Mu.Unlock()

	code, out2, err2 := runW3(t, b, append(g, "pins", "--retry", "--wait", "60s")...)
	if code != 0 {
		t.Fatalf("pins --retry after the kill: exit %d\n%s\n%s", code, out2, err2)
	}
	_, putsAfter, _, byAbility := b.Snapshot()
	if putsAfter != putsBefore {
		t.Errorf("%d PUTs after the resume, %d before: a shard was sent twice", putsAfter, putsBefore)
	}
	if byAbility["upload/add"] < 3 {
		t.Errorf("upload/add tasks %d", byAbility["upload/add"])
	}
	for _, r := range queueOf(t, repo) {
		if r.Status != pinning.StatusPinned {
			t.Errorf("not pinned after the resume: %+v", r)
		}
	}
	b.NoProblems(t)
	noTokens(t, b, map[string]string{"state after kill": string(state), "killed run": out.String() + errb.String(), "resume": out2 + err2})
}

// TestWeb3StorageMissingTokens: without the token variables, `anchor
// --web3-storage` still anchors and queues but warns by variable name;
// `pins` names them and says receipts are unverified without service_did;
// `pins --retry` leaves the requests queued, contacts nobody and exits 1.
func TestWeb3StorageMissingTokens(t *testing.T) {
	b := bridgetest.New(t)
	g, _, repo := w3Setup(t, b, "")
	run := func(args ...string) (int, string, string) {
		cmd := exec.Command(anchorBinary(t), args...)
		var env []string
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "WEB3_STORAGE_") {
				env = append(env, e)
			}
		}
		cmd.Env = env
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
	code, _, errOut := run(append(g, "anchor", "--web3-storage")...)
	if code != 0 || !strings.Contains(errOut, "WEB3_STORAGE_AUTH_SECRET and WEB3_STORAGE_AUTHORIZATION not set") {
		t.Fatalf("anchor --web3-storage without tokens: exit %d\n%s", code, errOut)
	}
	code, out, errOut := run(append(g, "pins", "--retry", "--wait", "1s")...)
	if code != 1 || !strings.Contains(out, "receipts unverified (no service_did configured)") || !strings.Contains(out, "WEB3_STORAGE_AUTH_SECRET and WEB3_STORAGE_AUTHORIZATION not set") {
		t.Errorf("pins --retry without tokens: exit %d\n%s\n%s", code, out, errOut)
	}
	if posts, _, _, _ := b.Snapshot(); posts != 0 {
		t.Errorf("%d requests reached the bridge without tokens", posts)
	}
	for _, r := range queueOf(t, repo) {
		if r.Status == pinning.StatusPinned || !strings.Contains(r.LastError, "WEB3_STORAGE_AUTH_SECRET") {
			t.Errorf("request %+v", r)
		}
	}
}
