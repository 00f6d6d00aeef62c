package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// Issue 21 items 2 and 6 (SPEC 3, streams): help and results on stdout;
// logs, warnings, errors and progress on stderr; --json's stdout is JSON
// only; --quiet silences progress and notices; a stderr that is not a
// terminal gets a progress line every few seconds.

// commandPaths lists every command and subcommand of the app as the words
// that name it ("pins move" is run by pins itself, so it is listed by hand).
func commandPaths() [][]string {
	var out [][]string
	var walk func(prefix []string, cmds []*cli.Command)
	walk = func(prefix []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(append([]string{}, prefix...), c.Name)
			out = append(out, p)
			walk(p, c.Subcommands)
		}
	}
	walk(nil, newApp(&globalOptions{stdout: io.Discard, stderr: io.Discard}).Commands)
	return append(out, []string{"pins", "move"})
}

// TestHelpOnStdout: `ssid-anchor CMD --help` and `ssid-anchor help CMD`
// print the command's help on stdout and nothing on stderr, for every
// command the app has (so `anchor --help | grep dry-run` finds it).
func TestHelpOnStdout(t *testing.T) {
	dir := t.TempDir()
	runs := [][]string{{"--help"}, {"help"}}
	for _, p := range commandPaths() {
		runs = append(runs, append(append([]string{}, p...), "--help"))
		if len(p) == 1 {
			runs = append(runs, []string{"help", p[0]})
		}
	}
	if len(runs) < 2+2*10 {
		t.Fatalf("only %d help runs: the command list is not the app's", len(runs))
	}
	for _, args := range runs {
		r := runBin(t, dir, append([]string{"--repo", filepath.Join(dir, "repo")}, args...)...)
		last := args[len(args)-1]
		if last == "--help" || last == "help" {
			last = "ssid-anchor"
		}
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "USAGE:") || !strings.Contains(r.stdout, last) {
			t.Errorf("%v: exit %d, want the help on stdout and nothing on stderr:\nstdout: %.300s\nstderr: %.300s", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runBin(t, dir, "anchor", "--help"); !strings.Contains(r.stdout, "--dry-run") {
		t.Errorf("anchor --help | grep dry-run finds nothing:\n%s", r.stdout)
	}
	// A usage error's help (a missing required flag) is not a result: it
	// stays on stderr, and --json's stdout holds the error document only.
	r := runBin(t, dir, "--json", "event")
	var doc struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); r.code != exitUsage || err != nil || doc.ExitCode != exitUsage || !strings.Contains(doc.Error, "event") {
		t.Errorf("--json event without its flags: exit %d, stdout is not one error document (%v):\n%s", r.code, err, r.stdout)
	}
	// The message is the one-line "missing required flags ..." of the
	// did-you-mean work (checkRequiredHere), no longer urfave/cli's
	// "Required flags ...".
	if !strings.Contains(strings.ToLower(r.stderr), "required flags") {
		t.Errorf("--json event without its flags: stderr lacks the error:\n%s", r.stderr)
	}
}

// streamsTree is an anchored tree and its repo.
func streamsTree(t *testing.T) (root, repo string) {
	t.Helper()
	root, repo = newTree(t), initRepo(t)
	if code, _, errb := runCLI(t, "--root", root, "--repo", repo, "anchor"); code != 0 {
		t.Fatalf("anchor: exit %d\n%s", code, errb)
	}
	return root, repo
}

// TestResultsOnStdout: each command's text result is on stdout (so
// `verify > report.txt` keeps the report) and not on stderr; with --json
// stdout is exactly one JSON document, also when the command fails.
func TestResultsOnStdout(t *testing.T) {
	root, repo := streamsTree(t)
	dir := t.TempDir()
	base := []string{"--root", root, "--repo", repo}
	// The event is a new one, so the anchor below has work to report.
	if r := runBin(t, dir, append(base, "event", "--event", "governance_update", "--version", "v9", "--hash", "abc")...); r.code != 0 || !strings.HasPrefix(r.stdout, "Proof-Anchor: SHA256: ") {
		t.Fatalf("event: %+v", r)
	}
	cases := []struct {
		args []string
		want string // a line of the result
	}{
		{[]string{"anchor"}, "new registry events; anchored "},
		{[]string{"verify"}, "records passed; chain intact; OK"},
		{[]string{"guard"}, "Root-24-LOCK: active"},
		{[]string{"status"}, "daemon:     not running"},
		{[]string{"pins"}, "no remote pin requests"},
		{[]string{"export", "--car", filepath.Join(dir, "cars")}, "manifest copied to "},
		{[]string{"--repo", filepath.Join(dir, "repo2"), "init", "--profile", "air-gapped"}, "initialised repo "},
	}
	for _, c := range cases {
		r := runBin(t, dir, append(append([]string{}, base...), c.args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, c.want) || strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, want %q on stdout only:\nstdout: %s\nstderr: %s", c.args, r.code, c.want, r.stdout, r.stderr)
		}
	}
	// `verify > report.txt` as the shell does it: a file as stdout.
	report := filepath.Join(dir, "report.txt")
	f, err := os.Create(report)
	if err != nil {
		t.Fatal(err)
	}
	cmd := binCommand(t, dir, append(base, "verify")...)
	cmd.Stdout = f
	err = cmd.Run()
	f.Close()
	if b, _ := os.ReadFile(report); err != nil || !bytes.Contains(b, []byte("records passed")) {
		t.Errorf("verify > report.txt: %v, report holds %q", err, b)
	}

	// --json: stdout is one JSON document and nothing else, success or not.
	for _, args := range [][]string{
		{"anchor"}, {"verify"}, {"guard"}, {"status"}, {"pins"},
		{"verify", "--manifest", filepath.Join(dir, "nope.json")},
		{"verify", "--no-such-flag"},
		{"anchr"},
	} {
		r := runBin(t, dir, append(append(append([]string{}, base...), "--json"), args...)...)
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			t.Errorf("--json %v: stdout is not JSON (%v):\n%s", args, err, r.stdout)
			continue
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Errorf("--json %v: more than one JSON document on stdout:\n%s", args, r.stdout)
		}
		if r.code != 0 {
			code, _ := doc["exit_code"].(float64)
			if msg, _ := doc["error"].(string); msg == "" || int(code) != r.code {
				t.Errorf("--json %v: exit %d but stdout is not {\"error\", \"exit_code\": %d}:\n%s", args, r.code, r.code, r.stdout)
			}
		}
	}
}

// TestQuietSilencesNotices: --quiet (anywhere on the line, or -q) drops the
// notices and progress from stderr and keeps the results on stdout.
func TestQuietSilencesNotices(t *testing.T) {
	root, repo := streamsTree(t)
	dir := t.TempDir()
	base := []string{"--root", root, "--repo", repo}
	ev := []string{"event", "--event", "governance_update", "--version", "v9", "--hash", "abc"}
	loud := runBin(t, dir, append(base, ev...)...)
	if loud.code != 0 || !strings.Contains(loud.stderr, "appended governance_update") {
		t.Fatalf("event without --quiet: no notice on stderr: %+v", loud)
	}
	ev[4] = "v10"
	quiet := runBin(t, dir, append(append(base, "--quiet"), ev...)...)
	if quiet.code != 0 || quiet.stderr != "" || !strings.HasPrefix(quiet.stdout, "Proof-Anchor: SHA256: ") {
		t.Errorf("event --quiet: want the proof anchor on stdout and nothing on stderr: %+v", quiet)
	}
	// export: the hint for the audit machine is a notice; progress lines
	// (made due on every update here) are silenced too.
	t.Setenv(progressIntervalEnv, "1ns")
	for _, q := range []string{"", "--quiet", "-q"} {
		args := append(append([]string{}, base...), "export", "--car", filepath.Join(dir, "cars"+q))
		if q != "" {
			args = append(args, q)
		}
		r := runBin(t, dir, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "manifest copied to ") {
			t.Fatalf("export %s: exit %d, no result on stdout:\n%s\n%s", q, r.code, r.stdout, r.stderr)
		}
		hint, progress := strings.Contains(r.stderr, "on the audit machine:"), progressLine.MatchString(r.stderr)
		if q == "" && (!hint || !progress) {
			t.Errorf("export: want the hint and progress on stderr:\n%s", r.stderr)
		}
		if q != "" && r.stderr != "" {
			t.Errorf("export %s: stderr is not empty:\n%s", q, r.stderr)
		}
	}
}

// progressLine is a progress line on a stderr that is not a terminal.
var progressLine = regexp.MustCompile(`(?m)^\[\d+:\d\d\] \d+( of \d+)? (files|records|CARs)`)

// TestProgressLinesWithoutTerminal: anchor, verify and export print
// progress lines on a stderr that is not a terminal, none with --quiet and
// none with the interval off. The interval (SSID_ANCHOR_PROGRESS_INTERVAL)
// is 1ns here, so every update is due: the test does not depend on how
// long the run takes. A 3 MiB file is anchored (chunks of 256 KiB: several
// byte updates within one file).
func TestProgressLinesWithoutTerminal(t *testing.T) {
	root, repo := newTree(t), initRepo(t)
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	mustWrite(t, filepath.Join(root, "05_documentation/releases/ssid_v9.zip"), big)
	dir := t.TempDir()
	base := []string{"--root", root, "--repo", repo}
	if code, _, errb := runCLI(t, append(base, "event", "--event", "governance_release_approved", "--version", "v9", "--hash", "abc")...); code != 0 {
		t.Fatalf("event: exit %d\n%s", code, errb)
	}
	runs := []struct {
		name string
		args []string
		want *regexp.Regexp
	}{
		{"anchor", []string{"anchor"}, regexp.MustCompile(`(?m)^\[\d+:\d\d\] \d+ of \d+ files, [0-9.]+ [KM]iB read; 05_documentation/releases/ssid_v9.zip \d+% of 3.0 MiB$`)},
		{"verify", []string{"verify"}, regexp.MustCompile(`(?m)^\[\d+:\d\d\] [1-9]\d* records$`)},
		{"export", []string{"export", "--car", filepath.Join(dir, "cars")}, regexp.MustCompile(`(?m)^\[\d+:\d\d\] [1-9]\d* of [1-9]\d* CARs, [0-9.]+ [KM]?i?B written$`)},
	}
	t.Setenv(progressIntervalEnv, "1ns")
	for _, r := range runs {
		res := runBin(t, dir, append(append([]string{}, base...), r.args...)...)
		if res.code != 0 || !r.want.MatchString(res.stderr) {
			t.Errorf("%s: exit %d, no progress line %v on stderr:\n%s", r.name, res.code, r.want, res.stderr)
		}
		if progressLine.MatchString(res.stdout) {
			t.Errorf("%s: progress on stdout:\n%s", r.name, res.stdout)
		}
	}
	// --quiet, and the interval off: none (verify and export, which have
	// the same work to report again).
	for _, q := range []struct{ flag, env string }{{"--quiet", "1ns"}, {"", "off"}} {
		t.Setenv(progressIntervalEnv, q.env)
		for _, r := range runs[1:] {
			args := append(append([]string{}, base...), r.args...)
			if r.name == "export" {
				args[len(args)-1] += "-again"
			}
			if q.flag != "" {
				args = append(args, q.flag)
			}
			res := runBin(t, dir, args...)
			if res.code != 0 || progressLine.MatchString(res.stderr) {
				t.Errorf("%s %s (interval %s): exit %d, progress printed:\n%s", r.name, q.flag, q.env, res.code, res.stderr)
			}
		}
	}
}

// TestProgressLineEveryInterval drives the progress lines with a fake
// clock and ticker: a line when the interval has passed (on a tick or on
// an update), none before, in restic's form.
func TestProgressLineEveryInterval(t *testing.T) {
	var out lockedBuffer // daemon_test.go
	var mu sync.Mutex
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	tick := make(chan time.Time)
	p := startProgress(&out, "files", "read", 5*time.Second, clock, tick)
	p.setTotal(7)
	p.count(2, 0)
	read := p.file("registry/big.zip", 2<<30)
	read(400 << 20)
	advance(4 * time.Second)
	tick <- now
	read(12 << 20)
	if s := out.String(); s != "" {
		t.Fatalf("a line before the interval passed: %q", s)
	}
	advance(time.Second)
	tick <- now
	tick <- now // the ticker's goroutine has taken the first tick
	want := "[0:05] 2 of 7 files, 412 MiB read; registry/big.zip 20% of 2.0 GiB\n"
	if s := out.String(); s != want {
		t.Fatalf("after 5s: %q, want %q", s, want)
	}
	// An update that comes when the next interval has passed prints too,
	// with no tick.
	advance(5 * time.Second)
	p.count(3, 1)
	p.Close()
	want += "[0:10] 3 of 7 files, 1 failed, 412 MiB read; registry/big.zip 20% of 2.0 GiB\n"
	if s := out.String(); s != want {
		t.Fatalf("after 10s: %q, want %q", s, want)
	}
	var nilP *progressLines // --quiet: every method is a no-op
	nilP.count(1, 0)
	nilP.setTotal(1)
	nilP.read(1)
	nilP.Close()
}

// binCommand is the built binary run with args in dir.
func binCommand(t *testing.T, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(anchorBinary(t), args...)
	cmd.Dir = dir
	return cmd
}
