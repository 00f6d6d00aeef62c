package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/control"
)

// lockedBuffer collects a child's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type daemonProc struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	http string
	done chan struct{}
}

// startDaemon runs the real binary as a daemon on loopback (air-gapped
// repo, random ports) and waits until it says it is ready.
func startDaemon(t *testing.T, root, repo string, env []string, extra ...string) *daemonProc {
	t.Helper()
	return startDaemonWith(t, root, repo, env, nil, extra...)
}

// startDaemonWith also passes global flags (--config).
func startDaemonWith(t *testing.T, root, repo string, env, globals []string, extra ...string) *daemonProc {
	t.Helper()
	args := append(append([]string{"--root", root, "--repo", repo}, globals...), "daemon", "--http", "127.0.0.1:0", "--swarm", "/ip4/127.0.0.1/tcp/0")
	if !slices.Contains(extra, "--rpc") {
		// kubo's RPC API on a free port, not 5001: tests run side by side.
		args = append(args, "--rpc", "/ip4/127.0.0.1/tcp/0")
	}
	args = append(args, extra...)
	cmd := exec.Command(anchorBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	d := &daemonProc{cmd: cmd, log: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			cmd.Process.Kill()
			<-d.done
		}
	})
	re := regexp.MustCompile(`msg="daemon ready".* http=(\S+)`)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(d.log.String()); m != nil {
			d.http = m[1]
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("daemon exited early (%v):\n%s", cmd.ProcessState, d.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("daemon not ready after 60s:\n%s", d.log.String())
	return nil
}

// stop sends SIGTERM and returns the exit code.
func (d *daemonProc) stop(t *testing.T) int {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon did not stop within 60s of SIGTERM:\n%s", d.log.String())
	}
	return d.cmd.ProcessState.ExitCode()
}

// waitLog waits until the daemon's log matches re.
func (d *daemonProc) waitLog(t *testing.T, re string) {
	t.Helper()
	r := regexp.MustCompile(re)
	deadline := time.Now().Add(60 * time.Second)
	for !r.MatchString(d.log.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon log never matched %q:\n%s", re, d.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// runBin runs the real binary in dir (relative paths resolve there).
func runBin(t *testing.T, dir string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(anchorBinary(t), args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Run()
	return cliResult{cmd.ProcessState.ExitCode(), out.String(), errb.String()}
}

func sampleTelemetryConfig(t *testing.T, root string) {
	t.Helper()
	b, err := os.ReadFile("../../telemetry/testdata/telemetry_config.json")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "07_governance_legal/telemetry_config.json"), b)
}

// TestDaemonServesCommandsLikeOneShot runs the same commands with the
// daemon up (they go over the socket) and after it stopped (they open the
// repo): same stdout, stderr and exit codes. Relative paths resolve in the
// caller's directory, not the daemon's.
func TestDaemonServesCommandsLikeOneShot(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	sampleTelemetryConfig(t, root)
	work := t.TempDir()
	d := startDaemon(t, root, repo, nil, "--anchor-debounce", "1h")
	d.waitLog(t, `msg="job done" job=anchor`)

	// A new event, anchored by the CLI through the daemon.
	if r := runBin(t, work, "--root", root, "--repo", repo, "event", "--event", "governance_update", "--version", "v9", "--hash", "abc"); r.code != 0 {
		t.Fatalf("event: %+v", r)
	}
	r := runBin(t, work, "--root", root, "--repo", repo, "--json", "anchor")
	if r.code != 0 {
		t.Fatalf("anchor through the daemon: %+v", r)
	}
	var res struct {
		NewEvents int `json:"new_events"`
		Anchored  []struct {
			FilePath string `json:"file_path"`
		} `json:"anchored"`
		Rewritten bool `json:"manifest_rewritten"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.NewEvents != 1 || len(res.Anchored) != 1 || !res.Rewritten {
		t.Fatalf("anchor --json through the daemon: %v %+v\n%s", err, res, r.stdout)
	}
	if !strings.Contains(d.log.String(), `msg=command argv=`) {
		t.Fatalf("the daemon did not run the command:\n%s", d.log.String())
	}

	rel := func(p string) string {
		r, err := filepath.Rel(work, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cases := [][]string{
		{"--root", rel(root), "--repo", rel(repo), "anchor"},
		{"--root", rel(root), "--repo", rel(repo), "verify"},
		{"--root", rel(root), "--repo", rel(repo), "--json", "verify"},
		{"--root", rel(root), "--repo", rel(repo), "verify", "--manifest", "nope.json"},
		{"--root", rel(root), "--repo", rel(repo), "export", "--car", "cars"},
		{"--root", rel(root), "--repo", rel(repo), "telemetry", "--check-config"},
		{"--root", rel(root), "--repo", rel(repo), "--json", "telemetry", "--check-config"},
		{"--root", rel(root), "--repo", rel(repo), "verify", "--no-such-flag"},
	}
	with := make([]cliResult, len(cases))
	for i, args := range cases {
		with[i] = runBin(t, work, args...)
	}
	st := runBin(t, work, "--root", root, "--repo", repo, "--json", "status")
	if code := d.stop(t); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM:\n%s", code, d.log.String())
	}
	if _, err := os.Stat(control.SocketPath(repo)); !os.IsNotExist(err) {
		t.Errorf("control socket still there after stop: %v", err)
	}
	for i, args := range cases {
		without := runBin(t, work, args...)
		if without != with[i] {
			t.Errorf("%v:\nwith the daemon:    %+v\nwithout the daemon: %+v", args, with[i], without)
		}
	}
	if with[1].code != 0 || with[3].code == 0 || with[7].code != exitUsage {
		t.Errorf("unexpected exit codes: verify %d, verify of a missing manifest %d, bad flag %d", with[1].code, with[3].code, with[7].code)
	}
	if _, err := os.Stat(filepath.Join(work, "cars")); err != nil {
		t.Errorf("export --car cars did not write into the caller's directory: %v", err)
	}
	// Through the socket the streams stay apart (SPEC 3): verify's report
	// and export's list on stdout, the bad flag's error on stderr.
	if !strings.Contains(with[1].stdout, "records passed") || strings.Contains(with[1].stderr, "records passed") {
		t.Errorf("verify through the daemon: the report is not on stdout alone:\nstdout: %s\nstderr: %s", with[1].stdout, with[1].stderr)
	}
	if !strings.Contains(with[4].stdout, "wrote   ") || with[7].stdout != "" || !strings.Contains(with[7].stderr, "no-such-flag") {
		t.Errorf("export / bad flag through the daemon: streams mixed:\n%+v\n%+v", with[4], with[7])
	}

	// status: from the daemon, then from the repo.
	var live, offline map[string]any
	if st.code != 0 || json.Unmarshal([]byte(st.stdout), &live) != nil {
		t.Fatalf("status --json with the daemon: %+v", st)
	}
	so := runBin(t, work, "--root", root, "--repo", repo, "--json", "status")
	if so.code != 0 || json.Unmarshal([]byte(so.stdout), &offline) != nil {
		t.Fatalf("status --json without the daemon: %+v", so)
	}
	if live["daemon_running"] != true || offline["daemon_running"] != false {
		t.Errorf("daemon_running: %v / %v", live["daemon_running"], offline["daemon_running"])
	}
	if live["peer_id"] == "" || live["peer_id"] != offline["peer_id"] || live["anchors"] != offline["anchors"] || live["anchors"] != float64(2) {
		t.Errorf("peer_id %v/%v anchors %v/%v", live["peer_id"], offline["peer_id"], live["anchors"], offline["anchors"])
	}
	addrs, _ := live["addresses"].([]any)
	if len(addrs) == 0 {
		t.Fatalf("no addresses with the daemon: %v", live["addresses"])
	}
	for _, a := range addrs {
		if s := a.(string); !strings.HasPrefix(s, "/ip4/127.0.0.1/") || !strings.HasSuffix(s, "/p2p/"+live["peer_id"].(string)) {
			t.Errorf("address %q is not a full loopback multiaddr", s)
		}
	}
	jobs, _ := live["jobs"].([]any)
	names := []string{}
	for _, j := range jobs {
		names = append(names, j.(map[string]any)["name"].(string))
	}
	if strings.Join(names, ",") != "anchor,quarterly,telemetry" {
		t.Errorf("jobs %v", names)
	}
}

// TestDaemonConcurrentAnchorsWait: while the scheduled anchoring job works
// on a large bundle, two `anchor` commands wait for it (and say so), and
// all three finish with nothing recorded twice.
func TestDaemonConcurrentAnchorsWait(t *testing.T) {
	root, repo := releaseTree(t, 256<<20)
	d := startDaemon(t, root, repo, nil, "--anchor-debounce", "1h")
	d.waitLog(t, `msg="job started" job=anchor`)
	var wg sync.WaitGroup
	res := make([]cliResult, 2)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = runBin(t, t.TempDir(), "--root", root, "--repo", repo, "anchor")
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r.code != 0 {
			t.Errorf("anchor %d: %+v", i, r)
		}
		if !strings.Contains(r.stderr, "waiting for the running ") {
			t.Errorf("anchor %d did not say it waited: %s", i, r.stderr)
		}
	}
	d.waitLog(t, `msg="job done" job=anchor`)
	if code := d.stop(t); code != 0 {
		t.Fatalf("daemon exit %d", code)
	}
	seen := map[string]bool{}
	for _, r := range readManifest(t, root).Records {
		if seen[r.FilePath] {
			t.Errorf("recorded twice: %s", r.FilePath)
		}
		seen[r.FilePath] = true
	}
	if !seen[tReleases+"/big.zip"] {
		t.Error("big.zip not recorded")
	}
}

// TestDaemonSIGTERMDuringAnchoring: SIGTERM while a large file is being
// anchored: exit 0, a valid manifest, the lock released (a one-shot command
// opens the repo), and the next start completes the run.
func TestDaemonSIGTERMDuringAnchoring(t *testing.T) {
	root, repo := releaseTree(t, 256<<20)
	before, _ := os.ReadFile(filepath.Join(root, tManifest))
	d := startDaemon(t, root, repo, nil)
	d.waitLog(t, `msg="job started" job=anchor`)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, d.log.String())
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start))
	if strings.Contains(d.log.String(), `msg="job done" job=anchor`) {
		t.Fatalf("the run finished before SIGTERM; the test needs a larger file:\n%s", d.log.String())
	}
	after, _ := os.ReadFile(filepath.Join(root, tManifest))
	if !json.Valid(after) || !bytes.Equal(before, after) {
		t.Errorf("manifest changed or invalid after a cancelled run (valid %v)", json.Valid(after))
	}
	if r := runBin(t, root, "--root", root, "--repo", repo, "status"); r.code != 0 {
		t.Fatalf("repo still locked after the daemon stopped: %+v", r)
	}
	d2 := startDaemon(t, root, repo, nil)
	d2.waitLog(t, `msg="job done" job=anchor`)
	if code := d2.stop(t); code != 0 {
		t.Fatalf("second daemon exit %d", code)
	}
	found := false
	for _, r := range readManifest(t, root).Records {
		found = found || r.FilePath == tReleases+"/big.zip"
	}
	if !found {
		t.Fatalf("the next start did not complete the run:\n%s", d2.log.String())
	}
}

// TestDaemonHTTP: /healthz, /metrics, /status and the gateway answer; the
// gateway returns the anchored bytes; "/" without a console is a 404.
func TestDaemonHTTP(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	d := startDaemon(t, root, repo, nil)
	d.waitLog(t, `msg="job done" job=anchor`)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + d.http + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{"ssid_anchor_anchors 1", "ssid_anchor_pinned 1", `ssid_anchor_job_runs_total{job="anchor"} 1`,
		"ssid_anchor_provide_provided_total 0", "ssid_anchor_ready 1"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q (status %d)", want, code)
		}
	}
	code, body = get("/status")
	var st map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st["daemon_running"] != true || st["anchors"] != float64(1) {
		t.Errorf("/status: %d %s", code, body)
	}
	rec := readManifest(t, root).Records[0]
	code, body = get("/ipfs/" + rec.IPFSCID)
	want, _ := os.ReadFile(filepath.Join(root, rec.FilePath))
	if code != 200 || body != string(want) {
		t.Errorf("/ipfs/%s: %d, %d bytes, want the %d bytes of %s", rec.IPFSCID, code, len(body), len(want), rec.FilePath)
	}
	if code, _ := get("/ipfs/bafkqaaa" + "x"); code < 400 {
		t.Errorf("bad CID answered %d", code)
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, `<section id="anchors"`) {
		t.Errorf("/: %d %q", code, body)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestDaemonRefusesNonLoopbackHTTP(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	r := runBin(t, root, "--root", root, "--repo", repo, "daemon", "--http", "0.0.0.0:0")
	if r.code != exitUsage || !strings.Contains(r.stderr, "http.listen") || !strings.Contains(r.stderr, "allow_remote") {
		t.Fatalf("non-loopback listen: %+v", r)
	}
	if _, err := os.Stat(control.SocketPath(repo)); !os.IsNotExist(err) {
		t.Errorf("a refused daemon left a socket: %v", err)
	}
}

// TestDaemonSdNotify: with NOTIFY_SOCKET set (as systemd does for
// Type=notify) the daemon reports READY=1, feeds the watchdog, and says
// STOPPING=1 on SIGTERM.
func TestDaemonSdNotify(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	sock, msgs := notifySocket(t)
	d := startDaemon(t, root, repo, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"})
	got := awaitNotify(t, msgs, "READY=1", "WATCHDOG=1")
	d.stop(t)
	stopping := false
	for !stopping {
		select {
		case m := <-msgs:
			stopping = strings.Contains(m, "STOPPING=1")
		case <-time.After(10 * time.Second):
			t.Fatalf("no STOPPING=1 after SIGTERM; got %q", got)
		}
	}
}

// notifySocket listens where systemd would (NOTIFY_SOCKET) and passes on
// what the daemon says there; messages beyond a test's appetite are
// dropped rather than block the reader.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 1024)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			select {
			case msgs <- string(buf[:n]):
			default:
			}
		}
	}()
	return sock, msgs
}

// awaitNotify reads msgs until the wanted messages came, in order, and
// returns all it read.
func awaitNotify(t *testing.T, msgs <-chan string, want ...string) []string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	var got []string
	for len(want) > 0 {
		select {
		case m := <-msgs:
			got = append(got, m)
			if strings.Contains(m, want[0]) {
				want = want[1:]
			}
		case <-deadline:
			t.Fatalf("still waiting for %v; got %q", want, got)
		}
	}
	return got
}

// TestSecondDaemonIsRefused: a second daemon on the same repo fails with
// exit 3 and says a daemon already serves it.
func TestSecondDaemonIsRefused(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	d := startDaemon(t, root, repo, nil)
	r := runBin(t, root, "--root", root, "--repo", repo, "daemon", "--http", "127.0.0.1:0")
	if r.code != exitRepo || !strings.Contains(r.stderr, "a daemon already serves") {
		t.Errorf("second daemon: %+v", r)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestDaemonSIGHUPReloads: SIGHUP applies a new schedule at once and logs
// what changed; a bad config is logged and the one in force kept.
func TestDaemonSIGHUPReloads(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	cfg := writeConfig(t, `{"schedule": {"quarterly": "0 9 1 1,4,7,10 *"}}`)
	d := startDaemonWith(t, root, repo, nil, []string{"--config", cfg})
	quarterly := func() string {
		st := daemonStatus(t, root, repo)
		for _, j := range st["jobs"].([]any) {
			if m := j.(map[string]any); m["name"] == "quarterly" {
				return m["spec"].(string)
			}
		}
		return ""
	}
	if s := quarterly(); s != "0 9 1 1,4,7,10 *" {
		t.Fatalf("quarterly spec %q", s)
	}
	mustWrite(t, cfg, []byte(`{"schedule": {"quarterly": "30 6 * * 1"}, "node": {"routing": "none"}}`))
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, `msg="SIGHUP: configs reloaded" changed_sections="\[node schedule\]"`)
	d.waitLog(t, `takes effect only at restart" section=node`)
	if s := quarterly(); s != "30 6 * * 1" {
		t.Fatalf("after SIGHUP quarterly spec %q", s)
	}
	mustWrite(t, cfg, []byte(`{"schedule": {"quarterly": "not a spec"}}`))
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, `msg="SIGHUP: config not reloaded; keeping the one in force".*schedule.quarterly`)
	mustWrite(t, cfg, []byte(`{"schedule": {"quarterlyy": "1 1 * * *"}}`))
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, `config not reloaded.*quarterlyy`)
	if s := quarterly(); s != "30 6 * * 1" {
		t.Fatalf("a bad config replaced the schedule: %q", s)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
