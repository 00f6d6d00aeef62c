package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/pinning/psatest"
	"github.com/ssid/ssid-anchor/anchor/storacha/bridgetest"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/node"
)

// TestPinsRefusesDamagedQueue (finding 25.1): a queue holding a null
// request is refused as damaged, naming the file and what to do; `pins`
// does not crash on it.
func TestPinsRefusesDamagedQueue(t *testing.T) {
	for name, body := range map[string]string{
		"null request":     `{"version":1,"requests":[null]}`,
		"trailing garbage": `{"version":1,"requests":[]}{"version":1,"requests":[null]}`,
	} {
		t.Run(name, func(t *testing.T) {
			repo := initRepo(t)
			q := filepath.Join(repo, "remote-pins", "queue.json")
			mustWrite(t, q, []byte(body))
			code, out, stderr := runCLI(t, "--repo", repo, "--root", newTree(t), "pins")
			if code != exitFailure || !strings.Contains(stderr, q) || !strings.Contains(stderr, "move it away") {
				t.Fatalf("pins on a damaged queue: exit %d\n%s\n%s", code, out, stderr)
			}
		})
	}
}

// TestPinsPrintsNoTerminalEscapes (finding 25.14): whatever a queue entry
// holds (a service's words kept by an older build, a file name), `pins`
// prints it without control characters.
func TestPinsPrintsNoTerminalEscapes(t *testing.T) {
	repo := initRepo(t)
	now := time.Now().UTC().Format(time.RFC3339)
	mustWrite(t, filepath.Join(repo, "remote-pins", "queue.json"), []byte(`{"version":1,"requests":[{"service":"cluster",
 "cid":"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG","name":"n",
 "meta":{"file_path":"a\u001b[2Jb.md","sha256":"x"},"status":"failed","attempts":0,"next_attempt":"`+now+`",
 "last_error":"HTTP 401: \u001b]0;pwned\u0007\u001b[31mUNAUTHORIZED\u001b[0m\r\nsecond line\u009b2J","permanent":true,
 "created":"`+now+`","updated":"`+now+`"}]}`))
	code, out, stderr := runCLI(t, "--repo", repo, "--root", newTree(t), "pins")
	if code != 0 {
		t.Fatalf("pins: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(out, "UNAUTHORIZED") || !strings.Contains(out, "second line") {
		t.Fatalf("the service's words are gone:\n%q", out)
	}
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u009b"} {
		if strings.Contains(out, bad) {
			t.Fatalf("pins printed %q:\n%q", bad, out)
		}
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 1 {
		t.Fatalf("one request took %d lines:\n%s", n, out)
	}
}

// TestStatusBoundsRemotePinStatuses (finding 25.18): 50,000 made-up
// statuses in the manifest's remote_pins are summarised, not printed one
// by one on a 3 MB line.
func TestStatusBoundsRemotePinStatuses(t *testing.T) {
	stats := anchorStats{Records: 1, Files: 1, RemotePins: map[string]int{"pinned": 2, "queued": 1}}
	for i := range 50000 {
		stats.RemotePins["made-up-status-"+strings.Repeat("x", i%40)+strconv.Itoa(i)]++
	}
	var errb bytes.Buffer
	g := &globalOptions{stdout: &errb, stderr: io.Discard} // status's summary is its result: stdout
	printStatus(g, &statusDoc{anchorStats: stats, Addresses: []string{}})
	var line string
	for _, l := range strings.Split(errb.String(), "\n") {
		if strings.HasPrefix(l, "anchors:") {
			line = l
		}
	}
	if len(line) > 200 || !strings.Contains(line, "50000 other") || !strings.Contains(line, "2 pinned") || !strings.Contains(line, "1 queued") {
		t.Fatalf("status line of %d bytes: %.300s", len(line), line)
	}
}

// TestAirGappedDrainDialsOnlyLoopback (finding 25.3): the daemon's drain on
// an air-gapped node dials the service's loopback delegates only; a
// private, a link-local and a DNS delegate are named, never dialed. (They
// carry this node's own peer ID, so even a build that dialed them would
// fail before sending a packet: "dial to self".)
func TestAirGappedDrainDialsOnlyLoopback(t *testing.T) {
	svcNode := serviceNode(t)
	srv := psatest.New()
	defer srv.Close()
	root, repo, cfgPath := pinTree(t)
	writePinConfig(t, cfgPath, srv.URL, "")
	if code, _, e := runPinsBin(t, srv.Token, "--root", root, "--repo", repo, "--config", cfgPath, "anchor", "--remote", "cluster"); code != 0 {
		t.Fatalf("anchor: %s", e)
	}
	cfg, err := appconfig.Load(cfgPath, true)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), repo, node.OpenOptions{Online: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	self := "/p2p/" + n.PeerID()
	srv.Delegates = append(svcNode.Addrs(),
		"/ip4/10.11.12.13/tcp/4001"+self,
		"/ip4/169.254.169.254/tcp/4001"+self,
		"/dns4/delegate.example/tcp/4001"+self)
	g := &globalOptions{Root: root, Repo: repo, cfg: cfg, stdout: io.Discard, stderr: io.Discard,
		log: slog.New(slog.DiscardHandler), now: func() time.Time { return time.Now().UTC() },
		getenv: func(k string) string { return map[string]string{pinTokenEnv: srv.Token}[k] }}
	if _, err := ops.DrainRemotePins(context.Background(), g.opsEnv(), n); err != nil {
		t.Fatal(err)
	}
	for _, r := range queueOf(t, repo) {
		if !strings.Contains(r.LastError, "not dialing 3 of the service's delegates") || strings.Contains(r.LastError, "dial") && strings.Contains(r.LastError, "self") {
			t.Fatalf("the hostile delegates were dialed or not named: %q", r.LastError)
		}
		for _, w := range []string{"private", "link-local", "DNS name"} {
			if !strings.Contains(r.LastError, w) {
				t.Errorf("the refusal does not say %q: %q", w, r.LastError)
			}
		}
	}
	if svcNode.ConnectedPeers() == 0 {
		t.Fatal("the loopback delegate was not dialed")
	}
}

// TestPinsRetryWaitBoundsADrippingBridge (finding 25.7): a bridge that
// drips its answer a byte a second cannot hold `pins --retry --wait 3s`
// (and the repo) for its whole answer: the push is stopped when the wait
// runs out, the bridge sees the client go, and the command says so (exit 1).
func TestPinsRetryWaitBoundsADrippingBridge(t *testing.T) {
	b := bridgetest.New(t)
	b.DripAnswer = time.Second
	g, _, repo := w3Setup(t, b, b.DID)
	if code, _, e := runW3(t, b, append(g, "anchor", "--web3-storage")...); code != 0 {
		t.Fatalf("anchor: %s", e)
	}
	cmd := exec.Command(anchorBinary(t), append(g, "pins", "--retry", "--wait", "3s")...)
	cmd.Env = w3Env(b)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute): // liveness guard, not a timing claim
		cmd.Process.Kill()
		<-done
		t.Fatalf("pins --retry --wait 3s still held the repo 3 minutes later\n%s", errb.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(errb.String(), "--wait 3s ran out") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	b.Mu.Lock()
	cut := b.DripCut
	b.Mu.Unlock()
	if cut != 1 {
		t.Errorf("the bridge saw %d answers abandoned, want 1", cut)
	}
	for _, r := range queueOf(t, repo) {
		if r.Status == pinning.StatusPinned || !strings.Contains(r.LastError, "stopped before the service answered") {
			t.Errorf("request %+v", r)
		}
	}
	// The repo is free again.
	if code, _, e := runW3(t, b, append(g, "pins")...); code != 0 {
		t.Fatalf("pins after the cut: exit %d\n%s", code, e)
	}
}
