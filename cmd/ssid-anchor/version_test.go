package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/release"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/buildinfo"
)

// goModKubo is the kubo version go.mod requires: what the binary must say
// it embeds.
func goModKubo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/ipfs/kubo (v\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod requires no github.com/ipfs/kubo")
	}
	return string(m[1])
}

// versionText is what `version` prints for in.
func versionText(in buildinfo.Info) string {
	s := "ssid-anchor " + in.Version + "\n"
	if in.Commit == "" {
		s += "commit:  unknown (built without VCS information; make build stamps it)\n"
	} else {
		s += "commit:  " + in.CommitLabel() + "\ndate:    " + in.Date + "\n"
	}
	return s + "go:      " + in.GoVersion + " " + in.Platform + "\nkubo:    " + in.KuboVersion + "\n"
}

// TestVersionCommand: `version` and `--version` print the build on stdout
// (text, or one JSON document with --json) and exit 0, even where the
// appliance config is broken: a version must always be answerable.
func TestVersionCommand(t *testing.T) {
	want := buildinfo.Read()
	if want.KuboVersion != goModKubo(t) {
		t.Errorf("kubo version %q, go.mod requires %s", want.KuboVersion, goModKubo(t))
	}
	broken := filepath.Join(t.TempDir(), "appliance.json")
	mustWrite(t, broken, []byte(`{"http": {"listen": `))
	for _, args := range [][]string{
		{"version"}, {"--version"}, {"--config", broken, "version"},
		{"version", "--json"}, {"--json", "version"}, {"--version", "--json"}, {"--json", "--config", broken, "--version"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errb := runCLI(t, args...)
			if code != 0 || errb != "" {
				t.Fatalf("exit %d, stderr %q", code, errb)
			}
			if !slices.Contains(args, "--json") {
				if out != versionText(want) {
					t.Errorf("stdout:\n%s\nwant:\n%s", out, versionText(want))
				}
				return
			}
			var got buildinfo.Info
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil || dec.More() {
				t.Fatalf("not one JSON document (%v): %s", err, out)
			}
			if got != want {
				t.Errorf("--json %+v, want %+v", got, want)
			}
			for _, k := range []string{`"version":`, `"commit":`, `"date":`, `"modified":`, `"go_version":`, `"kubo_version":`} {
				if !strings.Contains(out, k) {
					t.Errorf("--json lacks %s: %s", k, out)
				}
			}
		})
	}
	if code, out, errb := runCLI(t, "version", "extra"); code != exitUsage || out != "" || !strings.Contains(errb, `version takes no arguments (got "extra")`) {
		t.Errorf("version extra: exit %d, stdout %q, stderr %q", code, out, errb)
	}
}

var madeBinary struct {
	once sync.Once
	path string
	err  error
}

// madeBinaryPath is the binary `make build` makes: SSID_ANCHOR_BIN (make
// test builds it with make build), else make build into a temporary
// directory now. Not a plain go build: what is tested is that the
// build the Makefile makes carries its commit.
func madeBinaryPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SSID_ANCHOR_BIN"); p != "" {
		return p
	}
	madeBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "ssid-anchor-make-")
		if err != nil {
			madeBinary.err = err
			return
		}
		madeBinary.path = filepath.Join(dir, "ssid-anchor")
		out, err := exec.Command("make", "-C", "../..", "build", "BIN="+madeBinary.path).CombinedOutput()
		if err != nil {
			madeBinary.err = fmt.Errorf("make build: %v\n%s", err, out)
		}
	})
	if madeBinary.err != nil {
		t.Fatal(madeBinary.err)
	}
	return madeBinary.path
}

func git(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		t.Fatalf("git %s: %v (the tests run from a git checkout of ssid-anchor)", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

func binVersion(t *testing.T, bin string) buildinfo.Info {
	t.Helper()
	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatalf("%s version --json: %v", bin, err)
	}
	var in buildinfo.Info
	if err := json.Unmarshal(out, &in); err != nil {
		t.Fatalf("version --json: %v\n%s", err, out)
	}
	return in
}

// TestVersionOfBuiltBinary: the binary make build made names the commit of
// this checkout (git rev-parse HEAD), with "+dirty" exactly when git status
// lists changes, as go build's own stamp does; in a linked git worktree,
// where go build stamps nothing, too. The tree must not change between
// make build and this test: then the binary is the tested build.
func TestVersionOfBuiltBinary(t *testing.T) {
	bin := madeBinaryPath(t)
	head := git(t, "rev-parse", "HEAD")
	status := git(t, "status", "--porcelain")
	dirty := status != ""
	in := binVersion(t, bin)
	t.Logf("%s: %+v; HEAD %s, git status %q", bin, in, head, status)
	if in.Commit != head {
		t.Fatalf("version --json commit %q, HEAD is %s: %s was not built from this checkout by make build", in.Commit, head, bin)
	}
	if in.Modified != dirty {
		t.Errorf("version --json modified=%v, but git status --porcelain lists %q (did the tree change after make build?)", in.Modified, status)
	}
	wantLabel := head
	if dirty {
		wantLabel += "+dirty"
	}
	commitTime, err := exec.Command("git", "log", "-1", "--format=%cI", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	if in.CommitLabel() != wantLabel || !strings.Contains(in.Version, head[:12]) || strings.HasSuffix(in.Version, "+dirty") != dirty ||
		!sameInstant(t, in.Date, strings.TrimSpace(string(commitTime))) || in.KuboVersion != goModKubo(t) {
		t.Errorf("version --json %+v: want commit %s, a version naming %s, date %s, kubo %s", in, wantLabel, head[:12], commitTime, goModKubo(t))
	}
	r := runBin(t, t.TempDir(), "--version")
	if r.code != 0 || r.stdout != versionText(in) || !strings.Contains(r.stdout, "commit:  "+wantLabel+"\n") {
		t.Errorf("--version: exit %d\n%s", r.code, r.stdout)
	}
}

// getOK is the body of the daemon's answer to GET path; anything but 200
// fails the test.
func (d *daemonProc) getOK(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + d.http + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

func sameInstant(t *testing.T, a, b string) bool {
	t.Helper()
	ta, ea := time.Parse(time.RFC3339, a)
	tb, eb := time.Parse(time.RFC3339, b)
	return ea == nil && eb == nil && ta.Equal(tb)
}

// TestBuildInfoInDaemon: the daemon's /metrics has
// ssid_anchor_build_info{version,commit,go_version,kubo_version} 1 and
// /status and `status` (answered by the daemon) name the same build as the
// binary's `version --json`; so does `status` without the daemon.
func TestBuildInfoInDaemon(t *testing.T) {
	bin := madeBinaryPath(t)
	t.Setenv("SSID_ANCHOR_BIN", bin) // startDaemon and runBin run this build
	in := binVersion(t, bin)
	root := newTree(t)
	repo := initRepo(t)
	d := startDaemon(t, root, repo, nil)
	metric := fmt.Sprintf(`ssid_anchor_build_info{commit=%q,go_version=%q,kubo_version=%q,version=%q} 1`, in.CommitLabel(), in.GoVersion, in.KuboVersion, in.Version)
	if m := d.getOK(t, "/metrics"); !strings.Contains(m, "\n"+metric+"\n") {
		t.Errorf("/metrics lacks %s:\n%s", metric, grepLines(m, "build_info"))
	}
	var st struct {
		Build buildinfo.Info `json:"build"`
	}
	if err := json.Unmarshal([]byte(d.getOK(t, "/status")), &st); err != nil || st.Build != in {
		t.Errorf("/status build %+v (%v), want %+v", st.Build, err, in)
	}
	line := "version:    " + in.String() + "\n"
	if r := runBin(t, root, "--repo", repo, "status"); r.code != 0 || !strings.Contains(r.stderr+r.stdout, line) || !strings.Contains(r.stderr+r.stdout, "daemon:     running") {
		t.Errorf("status with the daemon: exit %d, want the line %q:\n%s%s", r.code, line, r.stdout, r.stderr)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("daemon exit %d", code)
	}
	r := runBin(t, root, "--repo", repo, "--json", "status")
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil || st.Build != in {
		t.Errorf("status --json without the daemon: exit %d, build %+v (%v), want %+v", r.code, st.Build, err, in)
	}
}

// TestReleaseManifestNamesTheBuild: a bundle built by the binary names that
// build in the release manifest's metadata (the SSID template's last key:
// generator, generator_version), after SPEC 2.7's keys, and it stays last
// once external_anchors.ipfs is recorded.
func TestReleaseManifestNamesTheBuild(t *testing.T) {
	bin := madeBinaryPath(t)
	t.Setenv("SSID_ANCHOR_BIN", bin)
	in := binVersion(t, bin)
	const q = "2026-Q1"
	root := bundleTree(t, q)
	if r := runBin(t, root, "--root", root, "--repo", t.TempDir(), "bundle", "--quarter", q); r.code != 0 {
		t.Fatalf("bundle: exit %d\n%s", r.code, r.stderr)
	}
	rel := fmt.Sprintf(tReleaseMan, q)
	b := readFile(t, filepath.Join(root, rel))
	var man release.Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	if man.Metadata == nil || man.Metadata.Generator != "ssid-anchor" || man.Metadata.GeneratorVersion != in.Version {
		t.Fatalf("release manifest metadata %+v, want generator ssid-anchor, generator_version %s\n%s", man.Metadata, in.Version, b)
	}
	tmpl := topKeys(t, readFile(t, "testdata/release/quarterly_release_manifest_TEMPLATE.json"))
	gi := indexOf(tmpl, "governance_system")
	want := strings.Join(tmpl[:gi+1], ",")
	if got := strings.Join(topKeys(t, b), ","); got != want+",metadata" {
		t.Errorf("manifest keys %s, want %s,metadata", got, want)
	}
	r, err := tree.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	qq, err := release.ParseQuarter(q)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := release.RecordIPFS(r, tree.DefaultPaths(), qq, release.IPFSAnchor{CID: "bafkqaaa", GatewayURL: "https://ipfs.io/ipfs/bafkqaaa", Pinned: true, PinnedAt: "2026-04-01T00:00:00Z"}); err != nil {
		t.Fatal(err)
	}
	b = readFile(t, filepath.Join(root, rel))
	if got := strings.Join(topKeys(t, b), ","); got != want+",external_anchors,metadata" {
		t.Errorf("after external_anchors: keys %s, want %s,external_anchors,metadata", got, want)
	}
	if err := json.Unmarshal(b, &man); err != nil || man.Metadata == nil || man.Metadata.GeneratorVersion != in.Version {
		t.Errorf("recording the CID lost metadata: %+v (%v)", man.Metadata, err)
	}
}
