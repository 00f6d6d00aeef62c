package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/control"
	"github.com/ssid/ssid-anchor/node"
)

// stockCLI runs the stock kubo `ipfs` CLI with IPFS_PATH=repo and nothing
// else pointing it at the daemon: it finds the API through <repo>/api.
type stockCLI struct {
	t    *testing.T
	repo string
	// seen collects every output, for the secret-leak checks.
	seen *bytes.Buffer
}

func newStockCLI(t *testing.T, repo string) stockCLI {
	return stockCLI{t: t, repo: repo, seen: &bytes.Buffer{}}
}

func (c stockCLI) run(stdin io.Reader, args ...string) cliResult {
	c.t.Helper()
	cmd := exec.Command(stockIPFS(c.t), args...)
	cmd.Env = append(os.Environ(), "IPFS_PATH="+c.repo)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		c.t.Fatal(err)
	}
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = a
		if strings.HasPrefix(a, "--api-auth") {
			shown[i] = "--api-auth=***" // the test's own log shows no secret either
		}
	}
	c.t.Logf("ipfs %s: exit %d in %s", strings.Join(shown, " "), cmd.ProcessState.ExitCode(), time.Since(start).Round(time.Millisecond))
	c.seen.Write(out.Bytes())
	c.seen.Write(errb.Bytes())
	return cliResult{cmd.ProcessState.ExitCode(), out.String(), errb.String()}
}

// ok runs a command that must exit 0.
func (c stockCLI) ok(args ...string) cliResult {
	c.t.Helper()
	r := c.run(nil, args...)
	if r.code != 0 {
		c.t.Fatalf("ipfs %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// apiURL reads <repo>/api and returns the HTTP base of its /api/v0.
func apiURL(t *testing.T, repo string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "api"))
	if err != nil {
		t.Fatalf("<repo>/api: %v", err)
	}
	m, err := ma.NewMultiaddr(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	_, host, err := manet.DialArgs(m)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + host + "/api/v0"
}

func rpcPost(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runRoot finds the recursive pin an anchoring run made.
func runRoot(t *testing.T, ipfs stockCLI) string {
	t.Helper()
	out := ipfs.ok("pin", "ls", "--type", "recursive", "--names").stdout
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[1] == "recursive" && strings.HasPrefix(strings.Join(f[2:], " "), "ssid-anchor run ") {
			return f[0]
		}
	}
	t.Fatalf("no anchoring run root among the recursive pins:\n%s", out)
	return ""
}

// TestStockCLIAgainstDaemon: with the daemon up, the stock kubo CLI, given
// only IPFS_PATH, finds the daemon's RPC API through <repo>/api and runs
// id, pin ls, cat (exact bytes of an anchor), dag export (a CAR that
// verify --car accepts), add, swarm peers and routing provide on the
// daemon's node. `ipfs pin rm` of the anchors' run root is refused naming
// the records it would lose, so `ipfs repo gc` keeps them and verify still
// passes. After SIGTERM the api file is gone and the stock CLI opens the
// repo itself.
func TestStockCLIAgainstDaemon(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	d := startDaemon(t, root, repo, nil, "--anchor-debounce", "1h")
	d.waitLog(t, `msg="job done" job=anchor`)
	ipfs := newStockCLI(t, repo)

	// status names the address <repo>/api holds.
	st := daemonStatus(t, root, repo)
	rpc, _ := st["rpc"].(map[string]any)
	apiFile, _ := os.ReadFile(filepath.Join(repo, "api"))
	if rpc == nil || rpc["listen"] != string(apiFile) || rpc["api_file"] != filepath.Join(repo, "api") {
		t.Fatalf("status rpc %v, <repo>/api %q", st["rpc"], apiFile)
	}
	if r := runBin(t, root, "--root", root, "--repo", repo, "status"); r.code != 0 || !strings.Contains(r.stdout, "rpc:        "+string(apiFile)+" (kubo RPC API") {
		t.Errorf("status does not show the RPC address %s: %+v", apiFile, r)
	}

	var id struct{ ID string }
	if r := ipfs.ok("id"); json.Unmarshal([]byte(r.stdout), &id) != nil || id.ID != st["peer_id"] {
		t.Fatalf("ipfs id: %s, want the daemon's peer ID %v", r.stdout, st["peer_id"])
	}
	if r := ipfs.ok("repo", "stat"); !strings.Contains(r.stdout, "RepoPath:   "+repo+"\n") {
		t.Errorf("ipfs repo stat does not name the daemon's repo %s:\n%s", repo, r.stdout)
	}
	rootCID := runRoot(t, ipfs)
	rec := readManifest(t, root).Records[0]
	want, err := os.ReadFile(filepath.Join(root, rec.FilePath))
	if err != nil {
		t.Fatal(err)
	}
	if r := ipfs.ok("cat", rec.IPFSCID); r.stdout != string(want) {
		t.Fatalf("ipfs cat %s: %d bytes, want the %d bytes of %s", rec.IPFSCID, len(r.stdout), len(want), rec.FilePath)
	}

	// dag export of every record and every manifest of the chain (the
	// run root links them): CARs an air-gapped verify accepts.
	verifyArgs := []string{"verify", "--manifest", filepath.Join(root, tManifest)}
	exports := map[string]bool{}
	for _, r := range readManifest(t, root).Records {
		exports[r.IPFSCID] = true
	}
	for _, l := range strings.Split(ipfs.ok("ls", rootCID).stdout, "\n") {
		if f := strings.Fields(l); len(f) == 3 && strings.HasSuffix(f[2], "manifest.json") {
			exports[f[0]] = true
		}
	}
	if len(exports) < 3 {
		t.Fatalf("want at least a record and two manifests to export, got %v", exports)
	}
	cars := t.TempDir()
	for c := range exports {
		car := filepath.Join(cars, c+".car")
		mustWrite(t, car, []byte(ipfs.ok("dag", "export", c).stdout))
		verifyArgs = append(verifyArgs, "--car", car)
	}
	if code, out := binRun(t, 2*time.Minute, verifyArgs...); code != 0 {
		t.Fatalf("verify --car of the CARs ipfs dag export wrote: exit %d\n%s", code, out)
	}

	// add of a new file: stored and pinned on the daemon's node.
	newFile := filepath.Join(t.TempDir(), "notes.txt")
	mustWrite(t, newFile, []byte("not an anchor "+hex.EncodeToString(randomBytes(t, 8))))
	added := strings.TrimSpace(ipfs.ok("add", "-Q", newFile).stdout)
	if r := ipfs.ok("cat", added); !strings.HasPrefix(r.stdout, "not an anchor ") {
		t.Fatalf("ipfs cat of the added file: %q", r.stdout)
	}

	// routing provide: with no peer the daemon answers as stock kubo does
	// on a router-less node (Routing.Type none, `ipfs daemon`): there is
	// no one to tell. A peer on loopback makes it exit 0, as it does for
	// stock kubo.
	if r := ipfs.run(nil, "routing", "provide", rec.IPFSCID); r.code != 1 || !strings.Contains(r.stderr, "cannot provide, no connected peers") {
		t.Fatalf("routing provide with no peers: %+v (want kubo's own refusal)", r)
	}
	peer := onlinePeer(t, node.RoutingNone)
	ipfs.ok("swarm", "connect", peer.Addrs()[0])
	if r := ipfs.ok("swarm", "peers"); !strings.Contains(r.stdout, peer.PeerID()) {
		t.Fatalf("ipfs swarm peers does not list the connected peer %s:\n%s", peer.PeerID(), r.stdout)
	}
	ipfs.ok("routing", "provide", rec.IPFSCID)

	// The anchors stay pinned: pin rm of their run root is refused, naming
	// a record; repo gc then keeps them.
	r := ipfs.run(nil, "pin", "rm", rootCID)
	if r.code != 1 || !strings.Contains(r.stderr, "refusing to unpin "+rootCID) || !strings.Contains(r.stderr, "record "+rec.FilePath) ||
		!strings.Contains(r.stderr, rec.IPFSCID) || !strings.Contains(r.stderr, "stop the daemon") {
		t.Fatalf("ipfs pin rm of the anchors' run root: %+v", r)
	}
	if got := runRoot(t, ipfs); got != rootCID {
		t.Fatalf("run root after the refused pin rm: %s, want %s", got, rootCID)
	}
	// While an anchoring run holds the manifest, the guard cannot know
	// what that run is about to record: no unpin at all.
	unlock, err := tree.LockDir(filepath.Dir(filepath.Join(root, tManifest)))
	if err != nil {
		t.Fatal(err)
	}
	r = ipfs.run(nil, "pin", "rm", added)
	unlock()
	if r.code != 1 || !strings.Contains(r.stderr, "an anchoring run holds the manifest") {
		t.Fatalf("ipfs pin rm while the manifest is locked: %+v", r)
	}
	if r := ipfs.run(nil, "pin", "update", "--unpin=true", rootCID, added); r.code != 1 || !strings.Contains(r.stderr, "refusing to unpin") {
		t.Fatalf("ipfs pin update --unpin away from the run root: %+v", r)
	}
	ipfs.ok("pin", "rm", added) // not an anchor: removed as usual
	ipfs.ok("repo", "gc")
	if r := ipfs.run(nil, "cat", "--offline", added); r.code == 0 {
		t.Fatalf("the unpinned file survived repo gc: %+v", r)
	}
	if r := ipfs.ok("cat", rec.IPFSCID); r.stdout != string(want) {
		t.Fatal("an anchor changed after repo gc")
	}
	if r := runBin(t, root, "--root", root, "--repo", repo, "verify"); r.code != 0 {
		t.Fatalf("verify after pin rm and repo gc through the RPC API: %+v", r)
	}

	if code := d.stop(t); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM:\n%s", code, d.log.String())
	}
	if _, err := os.Stat(filepath.Join(repo, "api")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("<repo>/api after SIGTERM: %v", err)
	}
	// No api file, no lock: the stock CLI opens the repo itself.
	if got := runRoot(t, ipfs); got != rootCID {
		t.Fatalf("offline pin ls: run root %s, want %s", got, rootCID)
	}
	if r := ipfs.ok("cat", rec.IPFSCID); r.stdout != string(want) {
		t.Fatal("offline ipfs cat of the anchor differs")
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDaemonRefusesRemoteRPC: a non-loopback rpc.listen without
// rpc.allow_remote is a config error (exit 2) before anything listens,
// from the flag and from the config file.
func TestDaemonRefusesRemoteRPC(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	for _, args := range [][]string{
		{"--root", root, "--repo", repo, "daemon", "--http", "127.0.0.1:0", "--rpc", "/ip4/0.0.0.0/tcp/0"},
		{"--root", root, "--repo", repo, "--config", writeConfig(t, `{"rpc": {"listen": "/ip6/::/tcp/0"}}`), "daemon", "--http", "127.0.0.1:0"},
	} {
		r := runBin(t, root, args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "rpc.listen") || !strings.Contains(r.stderr, "rpc.allow_remote") {
			t.Errorf("%v: %+v, want exit 2 naming rpc.listen and rpc.allow_remote", args, r)
		}
		for _, f := range []string{filepath.Join(repo, "api"), control.SocketPath(repo)} {
			if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused daemon left %s: %v", f, err)
			}
		}
	}
	if r := runBin(t, root, "--root", root, "--repo", repo, "--config", writeConfig(t, `{"rpc": {"listen": "127.0.0.1:5001"}}`), "status"); r.code != exitUsage || !strings.Contains(r.stderr, "rpc.listen: \"127.0.0.1:5001\" is not a multiaddr") {
		t.Errorf("rpc.listen as host:port: %+v", r)
	}
}

// TestDaemonRPCOff: rpc.listen "" serves no RPC API, removes an api file a
// crashed process left, and status says so.
func TestDaemonRPCOff(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	mustWrite(t, filepath.Join(repo, "api"), []byte("/ip4/127.0.0.1/tcp/1"))
	cfg := writeConfig(t, `{"rpc": {"listen": ""}}`)
	d := startDaemonWith(t, root, repo, nil, []string{"--config", cfg}, "--rpc", "")
	if _, err := os.Stat(filepath.Join(repo, "api")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale api file with the RPC API off: %v", err)
	}
	r := runBin(t, root, "--root", root, "--repo", repo, "--config", cfg, "status")
	if r.code != 0 || !strings.Contains(r.stdout, `rpc:        off (rpc.listen is "")`) {
		t.Errorf("status with the RPC API off: %+v", r)
	}
	if st := daemonStatus(t, root, repo); st["rpc"] != nil {
		t.Errorf("status --json rpc %v with the RPC API off", st["rpc"])
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestRPCAuthorizationsFromEnv: with rpc.authorizations set, kubo's
// handler refuses a call without the secret (403) and the stock CLI works
// with --api-auth; the secret, taken from the environment, appears in no
// output, log, status, kubo request log or file of the repo. A missing
// variable, or secrets in the repo's kubo config, stop the daemon at start
// with exit 2.
func TestRPCAuthorizationsFromEnv(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	token := hex.EncodeToString(randomBytes(t, 16))
	const envName = "SSID_TEST_RPC_SECRET"
	cfg := writeConfig(t, `{"rpc": {"authorizations": {"ci": {"auth_secret_env": "`+envName+`", "allowed_paths": ["/api/v0"]}}}}`)

	r := runBin(t, root, "--root", root, "--repo", repo, "--config", cfg, "daemon", "--http", "127.0.0.1:0", "--rpc", "/ip4/127.0.0.1/tcp/0")
	if r.code != exitUsage || !strings.Contains(r.stderr, "rpc.authorizations.ci.auth_secret_env: "+envName+" is not set") {
		t.Fatalf("daemon without the secret's variable: %+v", r)
	}

	d := startDaemonWith(t, root, repo, []string{envName + "=bearer:" + token}, []string{"--config", cfg}, "--anchor-debounce", "1h")
	ipfs := newStockCLI(t, repo)
	base := apiURL(t, repo)
	code, body := rpcPost(t, base+"/id", http.Header{})
	if code != http.StatusForbidden || !strings.Contains(body, "Kubo RPC Access Denied") {
		t.Fatalf("POST /api/v0/id without the token: %d %q, want kubo's 403", code, body)
	}
	if code, _ := rpcPost(t, base+"/id", http.Header{"Authorization": {"Bearer " + token}}); code != 200 {
		t.Fatalf("POST /api/v0/id with the token: %d", code)
	}
	// A browser page on another origin is refused even with the token.
	if code, _ := rpcPost(t, base+"/id", http.Header{"Authorization": {"Bearer " + token}, "Origin": {"http://evil.example"}}); code != http.StatusForbidden {
		t.Fatalf("cross-origin POST with the token: %d, want 403", code)
	}
	if r := ipfs.run(nil, "id"); r.code != 1 || !strings.Contains(r.stderr, "Kubo RPC Access Denied") {
		t.Fatalf("ipfs id without --api-auth: %+v", r)
	}
	auth := "--api-auth=bearer:" + token
	ipfs.ok(auth, "id")
	ipfs.ok(auth, "pin", "ls", "--type", "recursive")
	diag := ipfs.ok(auth, "diag", "cmds", "--verbose").stdout
	if !strings.Contains(diag, "pin/ls") {
		t.Fatalf("ipfs diag cmds does not list the earlier call:\n%s", diag)
	}
	ipfs.ok(auth, "config", "show")
	st := runBin(t, root, "--root", root, "--repo", repo, "--config", cfg, "--json", "status")
	sth := runBin(t, root, "--root", root, "--repo", repo, "--config", cfg, "status")
	if st.code != 0 || sth.code != 0 {
		t.Fatalf("status: %+v %+v", st, sth)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}

	for what, s := range map[string]string{
		"stock CLI output (id, pin ls, diag cmds, config show)": ipfs.seen.String(),
		"daemon log":    d.log.String(),
		"status --json": st.stdout + st.stderr,
		"status":        sth.stdout + sth.stderr,
	} {
		if strings.Contains(s, token) {
			t.Errorf("the RPC secret appears in %s", what)
		}
	}
	filepath.WalkDir(repo, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(token)) {
			t.Errorf("the RPC secret is stored in %s", p)
		}
		return nil
	})

	// Secrets in the repo's kubo config (as `ipfs config` would put them)
	// are refused at start, and not printed.
	old := hex.EncodeToString(randomBytes(t, 16))
	ipfs.ok("config", "--json", "API.Authorizations", `{"old": {"AuthSecret": "bearer:`+old+`", "AllowedPaths": ["/api/v0"]}}`)
	r = runBin(t, root, "--root", root, "--repo", repo, "daemon", "--http", "127.0.0.1:0", "--rpc", "/ip4/127.0.0.1/tcp/0")
	if r.code != exitUsage || !strings.Contains(r.stderr, "API.Authorizations") || !strings.Contains(r.stderr, "rpc.authorizations") || strings.Contains(r.stderr+r.stdout, old) {
		t.Fatalf("daemon with secrets in the repo config: %+v", r)
	}
}

// readmeIPFSLines: every stock `ipfs` line README.md shows, as written
// (comment removed, spaces collapsed). TestREADMEIPFSLines runs each against
// a running daemon.
var readmeIPFSLines = []string{
	"IPFS_PATH=~/.ssid-anchor ipfs id",
	"IPFS_PATH=~/.ssid-anchor ipfs pin ls --type recursive",
	"ipfs --api /ip4/127.0.0.1/tcp/5001 cat <cid>",
	"ipfs --api /ip4/127.0.0.1/tcp/5001 dag export <cid> > a.car",
}

// TestREADMEIPFSLines runs the README's stock `ipfs` lines as a user types
// them, with the stock CLI first on PATH and HOME holding the repo at
// ~/.ssid-anchor, while the daemon runs. The daemon listens on a free port
// instead of 5001 (tests run side by side), and <cid> is an anchor.
func TestREADMEIPFSLines(t *testing.T) {
	lines := readmeLines(t, regexp.MustCompile(`^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*ipfs\s`))
	if !slices.Equal(lines, readmeIPFSLines) {
		t.Fatalf("README.md's ipfs lines are\n%q\nreadmeIPFSLines (rpc_e2e_test.go) has\n%q\nkeep them equal, in README order", lines, readmeIPFSLines)
	}
	home := t.TempDir()
	repo := filepath.Join(home, ".ssid-anchor")
	if code, _, stderr := runCLI(t, "--repo", repo, "init", "--profile", "air-gapped"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	root := newTree(t)
	d := startDaemon(t, root, repo, nil, "--anchor-debounce", "1h")
	d.waitLog(t, `msg="job done" job=anchor`)
	api, err := os.ReadFile(filepath.Join(repo, "api"))
	if err != nil {
		t.Fatal(err)
	}
	rec := readManifest(t, root).Records[0]
	bin := filepath.Join(home, "bin")
	mustMkdir(t, bin)
	if err := os.Symlink(stockIPFS(t), filepath.Join(bin, "ipfs")); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	outputs := map[string]string{}
	for _, line := range lines {
		run := strings.NewReplacer("/ip4/127.0.0.1/tcp/5001", string(api), "<cid>", rec.IPFSCID).Replace(line)
		cmd := exec.Command("bash", "-c", run)
		cmd.Dir = work
		cmd.Env = []string{"HOME=" + home, "PATH=" + bin + ":" + os.Getenv("PATH")}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("README line %q (run as %q): %v\n%s%s", line, run, err, out.String(), errb.String())
		}
		outputs[line] = out.String()
	}
	want, err := os.ReadFile(filepath.Join(root, rec.FilePath))
	if err != nil {
		t.Fatal(err)
	}
	if got := outputs[readmeIPFSLines[2]]; got != string(want) {
		t.Errorf("ipfs cat: %d bytes, want the %d bytes of %s", len(got), len(want), rec.FilePath)
	}
	if car, err := os.Stat(filepath.Join(work, "a.car")); err != nil || car.Size() <= int64(len(want)) {
		t.Errorf("dag export > a.car: %v (want a CAR holding the %d-byte anchor)", err, len(want))
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestRPCConfigErrors: every mistake in the rpc section is exit 2 naming
// the key, for every command (the config is validated when loaded).
func TestRPCConfigErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"rpc": {"listen": "/ip4/0.0.0.0/tcp/5001"}}`, `rpc.listen: "/ip4/0.0.0.0/tcp/5001" is not a loopback address; set rpc.allow_remote`},
		{`{"rpc": {"listen": "/ip4/192.0.2.1/tcp/5001"}}`, "rpc.allow_remote"},
		{`{"rpc": {"listen": "localhost:5001"}}`, `rpc.listen: "localhost:5001" is not a multiaddr`},
		{`{"rpc": {"authorizations": {"ci": {"allowed_paths": ["/api/v0"]}}}}`, "rpc.authorizations.ci.auth_secret_env: required"},
		{`{"rpc": {"authorizations": {"ci": {"auth_secret_env": "MY-SECRET", "allowed_paths": ["/api/v0"]}}}}`, `rpc.authorizations.ci.auth_secret_env: "MY-SECRET" is not an environment variable name`},
		{`{"rpc": {"authorizations": {"ci": {"auth_secret_env": "S"}}}}`, "rpc.authorizations.ci.allowed_paths: required"},
		{`{"rpc": {"authorizations": {"ci": {"auth_secret_env": "S", "allowed_paths": ["/pin/ls"]}}}}`, "rpc.authorizations.ci.allowed_paths[0]"},
		{`{"rpc": {"authorizations": {"ci": {"auth_secret": "bearer:x", "allowed_paths": ["/api/v0"]}}}}`, `unknown key "rpc.authorizations.ci.auth_secret"`},
		{`{"rpc": {"authorizations": null}}`, "key rpc.authorizations: null"},
	} {
		p := writeConfig(t, tc.body)
		_, err := appconfig.Load(p, true)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to name %q", tc.body, err, tc.want)
		}
		if code, _ := exitCode(err); code != exitUsage {
			t.Errorf("%s: exit code %d, want 2", tc.body, code)
		}
	}
	for _, ok := range []string{
		`{"rpc": {"listen": ""}}`,
		`{"rpc": {"listen": "/ip6/::1/tcp/5001"}}`,
		`{"rpc": {"listen": "/unix/run/ssid-anchor-rpc.sock"}}`,
		`{"rpc": {"listen": "/ip4/0.0.0.0/tcp/5001", "allow_remote": true}}`,
	} {
		if _, err := appconfig.Load(writeConfig(t, ok), true); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}

	// The secrets themselves, read at daemon start: each error names the
	// key and the variable, never the value.
	cfg := appconfig.RPC{Authorizations: map[string]appconfig.RPCAuthorization{
		"a": {AuthSecretEnv: "A", AllowedPaths: []string{"/api/v0"}},
		"b": {AuthSecretEnv: "B", AllowedPaths: []string{"/api/v0/id"}},
	}}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"A": "bearer:one"}, "rpc.authorizations.b.auth_secret_env: B is not set"},
		{map[string]string{"A": "digest:one-secret", "B": "bearer:other-secret"}, "rpc.authorizations.a: the value of A is not one of kubo's AuthSecret forms"},
		{map[string]string{"A": "bearer:same-secret", "B": "same-secret"}, "rpc.authorizations.b: B holds the same secret as rpc.authorizations.a"},
	} {
		_, err := rpcAuthorizations(cfg, func(k string) string { return tc.env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
		for _, v := range tc.env {
			if err != nil && strings.Contains(err.Error(), v) {
				t.Errorf("the error shows the secret %q: %v", v, err)
			}
		}
	}
	got, err := rpcAuthorizations(cfg, func(k string) string { return map[string]string{"A": "bearer:one", "B": "basic:audit:pw"}[k] })
	if err != nil || got["a"].AuthSecret != "bearer:one" || got["b"].AuthSecret != "basic:audit:pw" || got["b"].AllowedPaths[0] != "/api/v0/id" {
		t.Errorf("rpcAuthorizations: %v %+v", err, got)
	}
}

// TestDaemonRPCPortTaken: a port already held (a separate `ipfs daemon`
// still running) stops the daemon at start with exit 1 saying so; nothing
// is left behind.
func TestDaemonRPCPortTaken(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	r := runBin(t, root, "--root", root, "--repo", repo, "daemon", "--http", "127.0.0.1:0", "--rpc", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
	if r.code != exitFailure || !strings.Contains(r.stderr, fmt.Sprintf("rpc.listen /ip4/127.0.0.1/tcp/%d", port)) || !strings.Contains(r.stderr, "a separate `ipfs daemon` may still hold the port") {
		t.Fatalf("daemon on a taken RPC port: %+v", r)
	}
	for _, f := range []string{filepath.Join(repo, "api"), control.SocketPath(repo)} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a daemon that did not start left %s: %v", f, err)
		}
	}
	// The repo is free again: a one-shot command opens it.
	if r := runBin(t, root, "--root", root, "--repo", repo, "status"); r.code != 0 {
		t.Errorf("status after the failed start: %+v", r)
	}
}
