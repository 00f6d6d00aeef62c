package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/pinning/psatest"
	"github.com/ssid/ssid-anchor/anchor/release"
)

// readmeCase is what one README command line must do.
type readmeCase struct {
	// code is the exit code the line must end with.
	code int
	// skip, when set, is why the line is not run here (and which test
	// covers it instead).
	skip string
	// subst rewrites parts of the line that cannot run literally here
	// (say why next to each); {scratch} and {slack} are filled in.
	subst map[string]string
	// before prepares the scratch tree for the line.
	before func(t *testing.T, e *readmeEnv)
	// interrupt: the command runs until stopped; send SIGINT after this.
	interrupt time.Duration
}

// readmeEnv is the scratch world README lines run in.
type readmeEnv struct {
	dir   string // scratch: HOME, bin/, and the tree at tree/
	tree  string // the working directory: a governance tree (--root .)
	slack *httptest.Server
	hits  atomic.Int32
	psa   *psatest.Server
}

// readmeExpectations: every command line in README.md's code blocks, as
// written (trailing "# comment" removed, spaces collapsed), in README
// order. Lines run one after the other on one scratch tree and one repo
// (HOME is the scratch dir, so the default repo is ~/.ssid-anchor there).
// A README line missing here fails the test: add it with its exit code.
var readmeExpectations = map[string]readmeCase{
	// Opening and Install: make targets are not run from inside `go test`.
	"make run":   {skip: "builds the binary and runs the demo; TestREADMECommands itself runs the commands make run chains"},
	"make test":  {skip: "runs this test suite; running it from here would recurse"},
	"make build": {skip: "builds bin/ssid-anchor; this test runs the binary make test built (SSID_ANCHOR_BIN)"},
	"make soak":  {skip: "a 10-minute soak of the daemon; go test ./scripts/bench runs the same harness's soak case for seconds"},
	"make bench": {skip: "runs every benchmark for many minutes; go test ./scripts/bench runs the anchoring benchmark at tiny sizes"},
	`make bench BENCH_FLAGS="-size 256MiB -treefiles 5000 -runs 5 -json bench-out/bench.json"`: {skip: "a benchmark run; go test ./scripts/bench runs the same harness at tiny sizes"},

	// Install: the build installed on PATH.
	"ssid-anchor version":        {code: 0},
	"ssid-anchor --json version": {code: 0},

	// Shell completion and man page: into the scratch home's directories
	// the shells read (made first, as a user has them).
	"ssid-anchor completion bash > ~/.local/share/bash-completion/completions/ssid-anchor": {code: 0, before: completionDirs},
	"ssid-anchor completion zsh > ~/.zfunc/_ssid-anchor":                                   {code: 0},
	"ssid-anchor completion fish > ~/.config/fish/completions/ssid-anchor.fish":            {code: 0},
	"ssid-anchor man | man -l -":                                                           {code: 0},

	// Init.
	"ssid-anchor init --profile air-gapped": {code: 0},

	// Anchoring.
	"ssid-anchor --root . anchor": {code: 0},
	"ssid-anchor --root . event --event governance_release_approved --version v4.3.0 --hash abc123": {code: 0},
	"ssid-anchor --root . anchor --json":                                                        {code: 0},
	"ssid-anchor --root . anchor --dry-run":                                                     {code: 0},
	`ssid-anchor --root . anchor --github-output "$GITHUB_OUTPUT" --markdown`:                   {code: 0},
	`ssid-anchor --root . anchor --github-output "$GITHUB_OUTPUT" --markdown > proof-anchor.md`: {code: 0},

	// Verifying.
	"ssid-anchor --root . verify":                                  {code: 0},
	"ssid-anchor --root . verify --network --peer /ip4/…/p2p/<id>": {skip: "the multiaddr is a placeholder for a peer holding the anchors; TestVerifyNetwork runs it against a second node on loopback"},
	"ssid-anchor --root . verify --gateway http://127.0.0.1:8080":  {skip: "needs a gateway serving the anchors on that port; TestVerifyGateway runs it against stock kubo's gateway on a free loopback port"},
	"ssid-anchor --root . anchor --verify":                         {code: 0},

	// The air-gapped audit.
	"ssid-anchor --root . export --car out/":                                                       {code: 0},
	"ssid-anchor verify --manifest out/ipfs_anchor_manifest.json --car out/*.car":                  {code: 0},
	"ssid-anchor verify --manifest out/ipfs_anchor_manifest.json --car out/*.car --root tree-copy": {code: 0, before: copyTree},
	"ssid-anchor --repo /audit/repo init": {code: 0,
		subst: map[string]string{"/audit/repo": "{scratch}/audit/repo"}}, // not outside the scratch dir
	"ssid-anchor --repo /audit/repo import out/*.car": {code: 0,
		subst: map[string]string{"/audit/repo": "{scratch}/audit/repo"}},
	"ssid-anchor --repo /audit/repo --root tree-copy verify": {code: 0,
		subst: map[string]string{"/audit/repo": "{scratch}/audit/repo"}},

	// Web3.Storage (Storacha).
	"ssid-anchor --root . anchor --web3-storage":                  {skip: "needs a space and tokens; TestWeb3StorageAsItIsToday runs it against a loopback bridge answering as Storacha does today"},
	"ssid-anchor pins move --from web3-storage --to filecoin-pin": {skip: "needs requests refused by Storacha and Filecoin Pin on port 3456; TestWeb3StorageAsItIsToday runs it against stand-ins of both"},

	// Telemetry (the seed config: every channel disabled).
	"ssid-anchor --root . telemetry --check-config": {code: 0},
	"ssid-anchor --root . telemetry":                {code: 0},
	"ssid-anchor --root . telemetry --test":         {code: exitUsage}, // no channel enabled in the seed config
	"ssid-anchor --root . telemetry --dry-run":      {code: 0},
	"ssid-anchor --root . telemetry --watch":        {code: 0, interrupt: 1500 * time.Millisecond},
	"ssid-anchor --root . guard":                    {code: 0, before: tidyTree},
	"SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T/B/X ssid-anchor --root . telemetry --test": {code: 0,
		before: enableSlack,
		// Slack itself is not dialled from a test: a loopback server that
		// answers as Slack does ("ok") stands in.
		subst: map[string]string{"https://hooks.slack.com/services/T/B/X": "{slack}/services/T/B/X"}},

	// Anchoring, more.
	"ssid-anchor --root . anchor --reprocess all": {code: 0},
	"ssid-anchor --root . --json guard":           {code: 0},

	// Signed manifests.
	"ssid-anchor --root . verify --trust 12D3KooW…":   {skip: "12D3KooW… stands for the anchoring box's peer ID; TestVerifyTrust runs --trust with the repo's real peer ID, and with another"},
	"ssid-anchor --root . --json verify | jq .signer": {code: 0},

	// Remote pinning: "pinata" is a loopback Pinning Service API server
	// (psatest) configured under that name, its token in PINATA_JWT.
	"ssid-anchor --root . anchor --remote pinata": {code: 0, before: configurePinata},
	"ssid-anchor pins":                            {code: 0},
	"ssid-anchor pins --retry":                    {code: 0},

	// The quarterly release (inputs of the last ended quarter and of 2026-Q3).
	"ssid-anchor --root . bundle":                   {code: 0, before: releaseInputs},
	"ssid-anchor --root . bundle --quarter 2026-Q3": {code: 0},
	"ssid-anchor --root . release":                  {code: 0},
	`ssid-anchor --root . release --github-output "$GITHUB_OUTPUT" --markdown > "$RUNNER_TEMP/pr_body.md"`: {code: 0},
	// "cluster" is the loopback Pinning Service configured with "pinata".
	"ssid-anchor --root . release --remote cluster": {code: 0},

	// The daemon. The repo was created air-gapped above, so `init --profile
	// public` leaves it as it is (init is idempotent) and the daemon never
	// dials the public network from a test.
	"ssid-anchor init --profile public": {code: 0},
	"ssid-anchor --root /srv/ssid daemon": {code: 0, before: mustStayAirGapped, interrupt: 5 * time.Second,
		subst: map[string]string{"/srv/ssid daemon": "{tree} daemon --http 127.0.0.1:0 --rpc /ip4/127.0.0.1/tcp/0"}}, // free ports, not 8089 and 5001
	"ssid-anchor --root /srv/ssid anchor": {code: 0, subst: map[string]string{"/srv/ssid": "{tree}"}},
	"ssid-anchor status":                  {code: 0},
	"ssid-anchor --json status":           {code: 0},

	// Appliance config: show and check (the repo's config names "pinata"
	// and "cluster" with PINATA_JWT, from the remote pinning lines).
	"ssid-anchor config show":                                {code: 0},
	"ssid-anchor config show --json | jq .secret_env":        {code: 0},
	"ssid-anchor config check ~/.ssid-anchor/appliance.json": {code: 0},
	"ssid-anchor config profile apply --dry-run public":      {code: 0},
	// Applied to a repo of its own, so the README's repo stays air-gapped
	// for any line after it; only its config is rewritten, no node starts.
	"ssid-anchor config profile apply public": {code: 0, before: profileDemoRepo,
		subst: map[string]string{"ssid-anchor config": "ssid-anchor --repo {scratch}/profile-demo config"}},
}

// profileDemoRepo creates the air-gapped repo the profile line switches.
func profileDemoRepo(t *testing.T, e *readmeEnv) {
	t.Helper()
	if code, _, errb := runCLI(t, "--repo", filepath.Join(e.dir, "profile-demo"), "init"); code != exitOK {
		t.Fatalf("init profile-demo: %s", errb)
	}
}

// readmeCommands extracts the command lines of README.md's fenced code
// blocks: lines starting with ssid-anchor or make, or with VAR=value
// assignments before ssid-anchor. Other lines (install, …) are not
// commands of this project; those of the systemd section (install,
// systemctl, sudo -u ssid-anchor …) run in scripts/systemdunit
// (TestSystemdInstall).
func readmeCommands(t *testing.T) []string {
	return readmeLines(t, regexp.MustCompile(`^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*(?:ssid-anchor|make)(?:\s|$)`))
}

// readmeLines extracts the lines of README.md's fenced code blocks that
// match cmdLine, as readmeCommands does.
func readmeLines(t *testing.T, cmdLine *regexp.Regexp) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			in = !in
			continue
		}
		if !in {
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.Join(strings.Fields(line), " ")
		if cmdLine.MatchString(line) {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestREADMECommands runs every command line the README shows, as a user
// types it, with the built binary, and checks its exit code.
func TestREADMECommands(t *testing.T) {
	lines := readmeCommands(t)
	if len(lines) < 20 {
		t.Fatalf("found only %d command lines in README.md; the extraction is broken", len(lines))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
		if _, ok := readmeExpectations[l]; !ok {
			t.Errorf("README line %q has no entry in readmeExpectations (readme_test.go): add it with the exit code it must have", l)
		}
	}
	for l := range readmeExpectations {
		if !seen[l] {
			t.Errorf("readmeExpectations has %q, which README.md no longer shows: remove it", l)
		}
	}
	if t.Failed() {
		return
	}

	e := newReadmeEnv(t)
	for _, line := range lines {
		tc := readmeExpectations[line]
		if tc.skip != "" {
			t.Logf("not run: %s (%s)", line, tc.skip)
			continue
		}
		if tc.before != nil {
			tc.before(t, e)
		}
		run := line
		for from, to := range tc.subst {
			to = strings.NewReplacer("{scratch}", e.dir, "{slack}", e.slack.URL, "{tree}", e.tree).Replace(to)
			run = strings.ReplaceAll(run, from, to)
		}
		code, out := e.run(t, run, tc.interrupt)
		t.Logf("exit %d: %s", code, run)
		if code != tc.code {
			t.Errorf("README line %q: exit %d, want %d\n%s", line, code, tc.code, out)
		}
	}
	if e.hits.Load() == 0 {
		t.Error("the Slack line sent nothing to the loopback Slack")
	}
	if b, err := os.ReadFile(filepath.Join(e.dir, "github_output")); err != nil || !bytes.Contains(b, []byte("manifest_cid=")) {
		t.Errorf("$GITHUB_OUTPUT after the CI lines: %q %v", b, err)
	}
}

func newReadmeEnv(t *testing.T) *readmeEnv {
	t.Helper()
	e := &readmeEnv{dir: t.TempDir()}
	e.tree = filepath.Join(e.dir, "tree")
	src := newTree(t)
	if out, err := exec.Command("cp", "-a", src, e.tree).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for src, dst := range map[string]string{
		"../../telemetry/testdata/telemetry_config.json": tTelemetryConfig,
		"testdata/dashboard_data.csv":                    tDashboardCSV,
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, filepath.Join(e.tree, dst), b)
	}
	bin := filepath.Join(e.dir, "bin")
	mustMkdir(t, bin)
	if err := os.Symlink(anchorBinary(t), filepath.Join(bin, "ssid-anchor")); err != nil {
		t.Fatal(err)
	}
	e.slack = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var payload map[string]any
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/services/") || json.NewDecoder(r.Body).Decode(&payload) != nil || payload["text"] == nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		e.hits.Add(1)
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(e.slack.Close)
	e.psa = psatest.New()
	t.Cleanup(e.psa.Close)
	return e
}

// run runs one line with bash in the tree, the binary first on PATH.
func (e *readmeEnv) run(t *testing.T, line string, interrupt time.Duration) (int, string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", line)
	cmd.Dir = e.tree
	cmd.Env = []string{
		"HOME=" + e.dir,
		"PATH=" + filepath.Join(e.dir, "bin") + ":" + os.Getenv("PATH"),
		"GITHUB_OUTPUT=" + filepath.Join(e.dir, "github_output"),
		"RUNNER_TEMP=" + e.dir,
		"PINATA_JWT=" + e.psa.Token,
		// Once the Slack line has enabled the channel, later lines (the
		// release's telemetry notice) need its URL, from the environment
		// as an operator sets it; it is the loopback Slack.
		"SLACK_WEBHOOK_URL=" + e.slack.URL + "/services/T/B/X",
	}
	// SIGINT goes to bash's whole process group, as a terminal's ^C does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if interrupt > 0 {
		time.AfterFunc(interrupt, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) })
	}
	timer := time.AfterFunc(2*time.Minute, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer timer.Stop()
	err := cmd.Wait()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// completionDirs makes the directories the README's completion lines
// write into.
func completionDirs(t *testing.T, e *readmeEnv) {
	for _, d := range []string{".local/share/bash-completion/completions", ".zfunc", ".config/fish/completions"} {
		mustMkdir(t, filepath.Join(e.dir, d))
	}
}

// copyTree makes ./tree-copy, the copy of the tree an auditor carries.
func copyTree(t *testing.T, e *readmeEnv) {
	t.Helper()
	dst := filepath.Join(e.tree, "tree-copy")
	if _, err := os.Stat(dst); err == nil {
		return
	}
	tmp := filepath.Join(e.dir, "tree-copy")
	if out, err := exec.Command("cp", "-a", e.tree, tmp).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// tidyTree removes what the earlier lines left at the tree's top level
// (out/, tree-copy/, proof-anchor.md): an operator keeps them elsewhere, and
// guard would rightly count them against Root-24-LOCK.
func tidyTree(t *testing.T, e *readmeEnv) {
	t.Helper()
	for _, p := range []string{"out", "tree-copy", "proof-anchor.md"} {
		if err := os.RemoveAll(filepath.Join(e.tree, p)); err != nil {
			t.Fatal(err)
		}
	}
}

// enableSlack turns the Slack channel on; its URL comes from the
// environment, as the README line shows.
func enableSlack(t *testing.T, e *readmeEnv) {
	t.Helper()
	p := filepath.Join(e.tree, tTelemetryConfig)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	channelCfg(cfg, "slack")["enabled"] = true
	b, _ = json.MarshalIndent(cfg, "", "  ")
	mustWrite(t, p, b)
}

// configurePinata names the loopback Pinning Service API server "pinata"
// (and "cluster", for the release line) in the repo's appliance config, as
// the README's examples do.
func configurePinata(t *testing.T, e *readmeEnv) {
	t.Helper()
	cfg := fmt.Sprintf(`{"remote_pinning": {"services": [
		{"name": "pinata", "endpoint": %q, "token_env": "PINATA_JWT"},
		{"name": "cluster", "endpoint": %[1]q, "token_env": "PINATA_JWT"}]}}`, e.psa.URL)
	mustWrite(t, filepath.Join(e.dir, ".ssid-anchor", "appliance.json"), []byte(cfg))
}

// releaseInputs writes the nine release inputs for the quarter that ended
// last (what `bundle` takes by default) and for 2026-Q3.
func releaseInputs(t *testing.T, e *readmeEnv) {
	t.Helper()
	for _, q := range []string{release.LastEnded(time.Now().UTC()).String(), "2026-Q3"} {
		writeReleaseInputs(t, e.tree, q)
	}
}

// mustStayAirGapped: the daemon line must not turn a test into a client of
// the public IPFS network.
func mustStayAirGapped(t *testing.T, e *readmeEnv) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, ".ssid-anchor", "ssid-anchor-profile"))
	if err != nil || strings.TrimSpace(string(b)) != "air-gapped" {
		t.Fatalf("the README test's repo is not air-gapped (%q, %v): the daemon would dial public peers", b, err)
	}
}
