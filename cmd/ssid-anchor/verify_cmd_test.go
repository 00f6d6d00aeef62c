package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/node"
)

// vcTree is a governance tree with the real sample log and manifest, a
// dashboard (600 KiB, so three chunks) and the sample dashboard CSV,
// anchored on a fresh air-gapped repo by the anchor command.
type vcTree struct {
	root, repo string
}

func vcWrite(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func vcTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vcGlobals(root, repo string) (*globalOptions, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &globalOptions{
		Root: root, Repo: repo, stdout: &out, stderr: &errb,
		log: slog.New(slog.DiscardHandler), cfg: appconfig.Default(),
		now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) },
	}, &out, &errb
}

func vcAnchoredTree(t *testing.T) vcTree {
	t.Helper()
	return vcAnchoredTreeWith(t, nil, nil)
}

// vcAnchoredTreeWith is vcAnchoredTree with more files in the tree and the
// anchoring run's options changed by opts (when not nil).
func vcAnchoredTreeWith(t *testing.T, files map[string][]byte, opts func(*globalOptions)) vcTree {
	t.Helper()
	dir := t.TempDir()
	tr := vcTree{root: filepath.Join(dir, "root"), repo: filepath.Join(dir, "repo")}
	p := tree.DefaultPaths()
	vcWrite(t, filepath.Join(tr.root, p.EventsLog), vcTestdata(t, "registry_events.log"))
	vcWrite(t, filepath.Join(tr.root, p.Manifest), vcTestdata(t, "ipfs_anchor_manifest.json"))
	vcWrite(t, filepath.Join(tr.root, p.DashboardCSV[0]), vcTestdata(t, "dashboard_data.csv"))
	r := rand.New(rand.NewChaCha8([32]byte{7}))
	var md bytes.Buffer
	md.WriteString("# SSID Governance Dashboard\n\n")
	for md.Len() < 600<<10 {
		md.WriteString("| metric | " + strconv.FormatUint(r.Uint64(), 36) + " |\n")
	}
	vcWrite(t, filepath.Join(tr.root, p.DashboardMarkdown), md.Bytes())
	for rel, b := range files {
		vcWrite(t, filepath.Join(tr.root, rel), b)
	}
	g, _, errb := vcGlobals(tr.root, tr.repo)
	if opts != nil {
		opts(g)
	}
	ctx := context.Background()
	if err := runInit(ctx, initOptions{Profile: node.ProfileAirGapped}, g); err != nil {
		t.Fatal(err)
	}
	if err := runAnchor(ctx, anchorOptions{}, g); err != nil {
		t.Fatalf("anchor: %v\n%s", err, errb)
	}
	return tr
}

func vcVerifyJSON(t *testing.T, g *globalOptions, o verifyOptions) (verifyResult, error) {
	t.Helper()
	g.JSON = true
	err := runVerify(context.Background(), o, g)
	var res verifyResult
	if jerr := json.Unmarshal(g.stdout.(*bytes.Buffer).Bytes(), &res); jerr != nil {
		t.Fatalf("verify --json output: %v\n%s\nstderr: %s", jerr, g.stdout, g.stderr)
	}
	return res, err
}

// vcCheck returns the named check of every record.
func vcChecks(res verifyResult, name string) []anchor.Check {
	var out []anchor.Check
	for _, r := range res.Records {
		for _, c := range r.Checks {
			if c.Name == name {
				out = append(out, c)
			}
		}
	}
	return out
}

func vcExport(t *testing.T, tr vcTree) (dir string, cars []string) {
	t.Helper()
	dir = t.TempDir()
	g, _, errb := vcGlobals(tr.root, tr.repo)
	if err := runExport(context.Background(), exportOptions{Dir: dir}, g); err != nil {
		t.Fatalf("export: %v\n%s", err, errb)
	}
	cars, _ = filepath.Glob(filepath.Join(dir, "*.car"))
	if len(cars) == 0 {
		t.Fatal("export wrote no CAR")
	}
	return dir, cars
}

func TestVerifyCommand(t *testing.T) {
	tr := vcAnchoredTree(t)

	t.Run("passes and reports every check", func(t *testing.T) {
		g, _, _ := vcGlobals(tr.root, tr.repo)
		res, err := vcVerifyJSON(t, g, verifyOptions{})
		if err != nil || !res.OK || res.Failed != 0 || len(res.Records) < 3 {
			t.Fatalf("verify: %v %+v", err, res.VerifyReport)
		}
		for _, name := range []string{"file", "cid", "blocks", "pinned"} {
			for _, c := range vcChecks(res, name) {
				if c.Status == anchor.StatusFailed {
					t.Errorf("%s: %+v", name, c)
				}
			}
		}
	})

	t.Run("anchor --verify is verify", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"ssid-anchor", "--root", tr.root, "--repo", tr.repo, "anchor", "--verify"}, &out, &errb)
		if code != 0 || !strings.Contains(out.String(), "records passed; chain intact; OK") {
			t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
		}
	})

	t.Run("a changed file fails with exit 1 and says so", func(t *testing.T) {
		p := filepath.Join(tr.root, tree.DefaultPaths().DashboardCSV[0])
		orig, _ := os.ReadFile(p)
		defer os.WriteFile(p, orig, 0o644)
		vcWrite(t, p, append(bytes.Clone(orig), '\n'))
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"ssid-anchor", "--root", tr.root, "--repo", tr.repo, "verify"}, &out, &errb)
		if code != exitFailure {
			t.Fatalf("exit %d, want 1\n%s", code, errb.String())
		}
		for _, want := range []string{"FAILED", "dashboard_data.csv", "changed after it was anchored", "1 of"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	})

	t.Run("no repo is exit 3", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"ssid-anchor", "--root", tr.root, "--repo", filepath.Join(t.TempDir(), "none"), "verify"}, &out, &errb)
		if code != exitRepo {
			t.Fatalf("exit %d, want 3\n%s", code, errb.String())
		}
	})
}

// TestVerifyNetwork: an audit node with its own repo fetches every anchor
// from the anchoring node over bitswap on loopback. A peer that has nothing
// makes the same check fail, so the fetch cannot have been served locally.
func TestVerifyNetwork(t *testing.T) {
	tr := vcAnchoredTree(t)
	_, cars := vcExport(t, tr)
	ctx := context.Background()

	origin, err := node.Open(ctx, tr.repo, node.OpenOptions{Online: true})
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	if len(origin.Addrs()) == 0 {
		t.Fatal("origin node has no listen address")
	}
	for _, a := range origin.Addrs() {
		if !strings.HasPrefix(a, "/ip4/127.0.0.1/") && !strings.HasPrefix(a, "/ip6/::1/") {
			t.Fatalf("origin listens on %s, not loopback", a)
		}
	}

	auditRepo := filepath.Join(t.TempDir(), "audit")
	g, _, errb := vcGlobals(tr.root, auditRepo)
	if err := runInit(ctx, initOptions{}, g); err != nil {
		t.Fatal(err)
	}
	if err := runImport(ctx, importOptions{CARs: cars}, g); err != nil {
		t.Fatalf("import: %v\n%s", err, errb)
	}

	g, _, _ = vcGlobals(tr.root, auditRepo)
	res, err := vcVerifyJSON(t, g, verifyOptions{Network: true, Peers: origin.Addrs(), Timeout: 20 * time.Second})
	if err != nil || !res.OK {
		t.Fatalf("verify --network: %v\n%+v", err, res.Records)
	}
	net := vcChecks(res, "network")
	if len(net) != len(res.Records) {
		t.Fatalf("%d network checks for %d records", len(net), len(res.Records))
	}
	for _, c := range net {
		if c.Status != anchor.StatusOK || !strings.Contains(c.Detail, "fetched") {
			t.Fatalf("network check: %+v", c)
		}
	}

	// A connected peer that holds nothing.
	emptyRepo := filepath.Join(t.TempDir(), "empty")
	if _, err := node.Init(emptyRepo, node.Config{}); err != nil {
		t.Fatal(err)
	}
	empty, err := node.Open(ctx, emptyRepo, node.OpenOptions{Online: true})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	g, _, _ = vcGlobals(tr.root, auditRepo)
	res, err = vcVerifyJSON(t, g, verifyOptions{Network: true, Peers: empty.Addrs(), Timeout: 2 * time.Second})
	if err == nil || res.OK {
		t.Fatal("verify --network passed with a peer that has none of the blocks")
	}
	for _, c := range vcChecks(res, "network") {
		if c.Status != anchor.StatusFailed || !strings.Contains(c.Detail, "no connected peer sent it") {
			t.Fatalf("network check with an empty peer: %+v", c)
		}
	}

	// No peer at all is said up front, not as a timeout per record.
	g, _, _ = vcGlobals(tr.root, auditRepo)
	err = runVerify(ctx, verifyOptions{Network: true, Timeout: 500 * time.Millisecond}, g)
	if code, _ := exitCode(err); code != exitFailure || !strings.Contains(err.Error(), "no peer is connected") {
		t.Fatalf("verify --network with no peer: exit %d, %v", code, err)
	}
}

func vcFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// vcStockGateway starts the stock kubo daemon (offline, loopback ports it
// was given) holding the CARs, and returns its gateway URL.
func vcStockGateway(t *testing.T, cars []string) string {
	t.Helper()
	bin := stockIPFS(t)
	env := append(os.Environ(), "IPFS_PATH="+filepath.Join(t.TempDir(), "ipfs"))
	ipfs := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ipfs %v: %v\n%s", args, err, out)
		}
	}
	ipfs("init", "--profile", "test")
	gwPort, apiPort := vcFreePort(t), vcFreePort(t)
	ipfs("config", "Addresses.Gateway", "/ip4/127.0.0.1/tcp/"+strconv.Itoa(gwPort))
	ipfs("config", "Addresses.API", "/ip4/127.0.0.1/tcp/"+strconv.Itoa(apiPort))
	ipfs("config", "--json", "Bootstrap", "[]")
	ipfs(append([]string{"dag", "import", "--pin-roots"}, cars...)...)

	cmd := exec.Command(bin, "daemon", "--offline")
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var gw string
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "Gateway server listening on ") {
				gw = strings.TrimPrefix(line, "Gateway server listening on ")
			}
			if line == "Daemon is ready" {
				ready <- gw
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case gw := <-ready:
		want := "/ip4/127.0.0.1/tcp/" + strconv.Itoa(gwPort)
		if gw != want {
			t.Fatalf("gateway listens on %q, want %q", gw, want)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("stock ipfs daemon did not become ready")
	}
	return "http://127.0.0.1:" + strconv.Itoa(gwPort)
}

// TestVerifyGateway: the stock kubo daemon's gateway serves the exported
// anchors and verify fetches them trustlessly; gateways that lie about a
// CID's bytes are caught, whether they send a CAR or raw blocks.
func TestVerifyGateway(t *testing.T) {
	tr := vcAnchoredTree(t)
	_, cars := vcExport(t, tr)
	gw := vcStockGateway(t, cars)

	t.Run("stock kubo gateway", func(t *testing.T) {
		g, _, _ := vcGlobals(tr.root, tr.repo)
		res, err := vcVerifyJSON(t, g, verifyOptions{Gateways: []string{gw}, Timeout: 20 * time.Second})
		if err != nil || !res.OK {
			t.Fatalf("verify --gateway %s: %v\n%+v", gw, err, res.Records)
		}
		checks := vcChecks(res, "gateway "+gw)
		if len(checks) != len(res.Records) {
			t.Fatalf("%d gateway checks for %d records", len(checks), len(res.Records))
		}
		for _, c := range checks {
			if c.Status != anchor.StatusOK {
				t.Fatalf("gateway check: %+v", c)
			}
		}
	})

	target, _ := url.Parse(gw)
	lying := []struct {
		name string
		h    http.HandlerFunc
	}{
		{
			// Relays the real CAR with one byte flipped near its end,
			// inside the last block's data.
			name: "car with a flipped byte",
			h: func(w http.ResponseWriter, r *http.Request) {
				resp, err := http.Get(target.String() + r.URL.RequestURI())
				if err != nil {
					http.Error(w, err.Error(), 502)
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if len(b) > 4 {
					b[len(b)-3] ^= 0x01
				}
				w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
				w.Write(b)
			},
		},
		{
			// Cannot send CARs; answers raw blocks, all of them wrong.
			name: "raw blocks with the wrong bytes",
			h: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("format") != "raw" {
					http.Error(w, "only raw", http.StatusNotAcceptable)
					return
				}
				w.Header().Set("Content-Type", "application/vnd.ipld.raw")
				w.Write([]byte("these are not the bytes you asked for"))
			},
		},
	}
	for _, l := range lying {
		t.Run(l.name, func(t *testing.T) {
			srv := httptest.NewServer(l.h)
			defer srv.Close()
			g, _, _ := vcGlobals(tr.root, tr.repo)
			res, err := vcVerifyJSON(t, g, verifyOptions{Gateways: []string{srv.URL}, Timeout: 10 * time.Second})
			if err == nil || res.OK {
				t.Fatal("verify passed against a lying gateway")
			}
			checks := vcChecks(res, "gateway "+srv.URL)
			for _, c := range checks {
				if c.Status != anchor.StatusFailed || !strings.Contains(c.Detail, "does not match its CID") {
					t.Fatalf("gateway check: %+v", c)
				}
			}
			// The local checks still pass: only the gateway is blamed.
			for _, name := range []string{"file", "blocks", "pinned"} {
				for _, c := range vcChecks(res, name) {
					if c.Status == anchor.StatusFailed {
						t.Fatalf("%s failed: %+v", name, c)
					}
				}
			}
		})
	}
}

// TestAirGapRoundTrip runs the built binary: anchor and export on one repo;
// verify from the CARs and the manifest in a fresh process with no repo and
// no network (its own empty network namespace, required); import
// into a new repo whose verify then passes.
func TestAirGapRoundTrip(t *testing.T) {
	bin := anchorBinary(t)
	// The audit side must really have no network: an empty network
	// namespace (needs root or unprivileged user namespaces). Without it
	// the test would prove nothing about "no network", so it fails.
	if out, err := exec.Command("unshare", "-n", "true").CombinedOutput(); err != nil {
		t.Fatalf("unshare -n (an empty network namespace for the audit side) does not work here: %v: %s; run the tests as root or enable unprivileged user namespaces", err, out)
	}
	tr := vcAnchoredTree(t)
	home := t.TempDir()
	exe := func(wantCode int, netns bool, args ...string) string {
		t.Helper()
		name, argv := bin, args
		if netns {
			name, argv = "unshare", append([]string{"-n", bin}, args...)
		}
		cmd := exec.Command(name, argv...)
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("ssid-anchor %v: exit %d, want %d\n%s", args, code, wantCode, out.String())
		}
		return out.String()
	}
	out := filepath.Join(t.TempDir(), "out")
	exe(0, false, "--root", tr.root, "--repo", tr.repo, "export", "--car", out)
	cars, _ := filepath.Glob(filepath.Join(out, "*.car"))
	manifest := filepath.Join(out, "ipfs_anchor_manifest.json")

	// The audit machine: a copy of the carried files only.
	audit := t.TempDir()
	exec.Command("cp", "-a", out, audit).Run()
	aout := filepath.Join(audit, "out")
	acars, _ := filepath.Glob(filepath.Join(aout, "*.car"))
	if len(acars) != len(cars) {
		t.Fatalf("copied %d CARs of %d", len(acars), len(cars))
	}
	noRepo := filepath.Join(audit, "no-repo-here")
	msg := exe(0, true, append([]string{"--repo", noRepo, "verify", "--manifest", filepath.Join(aout, "ipfs_anchor_manifest.json"), "--car"}, acars...)...)
	if !strings.Contains(msg, "chain intact; OK") || !strings.Contains(msg, "car     ok") {
		t.Fatalf("air-gapped verify output:\n%s", msg)
	}
	if _, err := os.Stat(noRepo); err == nil {
		t.Fatal("verify --car created a repo")
	}
	// With the tree copied along, the files are checked too.
	exe(0, true, append([]string{"--root", tr.root, "--repo", noRepo, "verify", "--manifest", manifest, "--car"}, cars...)...)

	// A damaged CAR on the audit machine is named.
	b, _ := os.ReadFile(acars[0])
	os.WriteFile(acars[0], b[:len(b)-5], 0o644)
	msg = exe(exitFailure, true, append([]string{"--repo", noRepo, "verify", "--manifest", filepath.Join(aout, "ipfs_anchor_manifest.json"), "--car"}, acars...)...)
	if !strings.Contains(msg, "truncated") || !strings.Contains(msg, filepath.Base(acars[0])) {
		t.Fatalf("truncated CAR not named:\n%s", msg)
	}

	// Import on the audit box's own node, then an ordinary verify.
	auditRepo := filepath.Join(audit, "repo")
	exe(0, true, "--repo", auditRepo, "init")
	exe(0, true, append([]string{"--repo", auditRepo, "import"}, cars...)...)
	msg = exe(0, true, "--root", tr.root, "--repo", auditRepo, "verify")
	if !strings.Contains(msg, "chain intact; OK") {
		t.Fatalf("verify after import:\n%s", msg)
	}
	// Every record is now pinned recursively, by the import.
	var res verifyResult
	jsonOut := exe(0, true, "--json", "--root", tr.root, "--repo", auditRepo, "verify")
	if err := json.Unmarshal([]byte(jsonOut[strings.Index(jsonOut, "{"):]), &res); err != nil {
		t.Fatalf("%v\n%s", err, jsonOut)
	}
	for _, c := range vcChecks(res, "pinned") {
		if c.Detail != node.PinRecursive {
			t.Fatalf("after import: %+v", c)
		}
	}
}
