package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/node"
	"github.com/ssid/ssid-anchor/scheduler"
	"github.com/urfave/cli/v2"
)

// jobsDaemon is a daemon without sockets or HTTP, on an offline node and a
// fake clock, to drive the jobs in-process.
func jobsDaemon(t *testing.T, root, repo string, clk scheduler.Clock, onDone func(string, error)) *daemon {
	t.Helper()
	n, err := node.Open(context.Background(), repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	g := &globalOptions{Root: root, Repo: repo, cfg: appconfig.Default(), stdout: io.Discard, stderr: io.Discard,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: func() time.Time { return time.Now().UTC() }}
	g.shared = n
	d := &daemon{g: g, node: n, cfg: g.cfg, clock: clk, anchorGate: newJobGate(), telemetryGate: newJobGate(), debounce: 2 * time.Second}
	d.metrics = newMetrics(d)
	s, err := scheduler.New(scheduler.Options{Clock: clk, Log: g.log, OnDone: func(job string, took time.Duration, err error) {
		d.metrics.jobDone(job, took, err)
		onDone(job, err)
	}})
	if err != nil {
		t.Fatal(err)
	}
	d.sched = s
	if err := d.addJobs(g.cfg); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAnchoringDebouncedAfterEventFromAnotherProcess: two `event`s appended
// by another process cause one anchoring run, the debounce interval after
// the last change, which records both events.
func TestAnchoringDebouncedAfterEventFromAnotherProcess(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	clk := scheduler.NewFakeClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	var runs atomic.Int32
	done := make(chan error, 8)
	d := jobsDaemon(t, root, repo, clk, func(job string, err error) {
		if job == jobAnchor {
			runs.Add(1)
			done <- err
		}
	})
	stop, err := d.watchRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	d.sched.Start()
	defer d.sched.Stop(context.Background())
	if !clk.BlockUntil(1, 10*time.Second) { // the scheduler loop sleeps
		t.Fatal("scheduler loop not waiting")
	}
	for _, v := range []string{"v1", "v2"} {
		cmd := exec.Command(anchorBinary(t), "--root", root, "event", "--event", "governance_update", "--version", v, "--hash", "h")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("event: %v\n%s", err, out)
		}
	}
	// The watcher saw the appends: a debounce timer waits besides the loop.
	if !clk.BlockUntil(2, 10*time.Second) {
		t.Fatal("no debounce timer after the registry log changed")
	}
	time.Sleep(200 * time.Millisecond) // let the last inotify events arrive
	clk.Advance(time.Second)
	select {
	case err := <-done:
		t.Fatalf("anchoring ran before the log was quiet for 2s (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	clk.Advance(time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("anchor job: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no anchoring run 2s after the change")
	}
	time.Sleep(200 * time.Millisecond)
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d anchoring runs, want 1", n)
	}
	m := readManifest(t, root)
	if m.Processed.Count == 0 || len(m.Records) != 1 || m.Records[0].EventVersion != "v2" {
		t.Fatalf("manifest after the run: processed %+v, records %+v", m.Processed, m.Records)
	}
}

// TestTelemetryJobFollowsCheckInterval: without schedule.telemetry the
// job runs every check_interval_seconds of telemetry_config.json; with it,
// on that spec; disabled telemetry has no job.
func TestTelemetryJobFollowsCheckInterval(t *testing.T) {
	root := telemetryTree(t, "100", func(cfg map[string]any) { cfg["check_interval_seconds"] = 120 })
	g := &globalOptions{Root: root, cfg: appconfig.Default()}
	if spec, why := telemetrySpecFor(g); spec != "@every 2m0s" {
		t.Errorf("spec %q (%s), want @every 2m0s", spec, why)
	}
	g.cfg.Schedule.Telemetry = "*/10 * * * *"
	if spec, _ := telemetrySpecFor(g); spec != "*/10 * * * *" {
		t.Errorf("spec %q with schedule.telemetry set", spec)
	}
	off := telemetryTree(t, "100", func(cfg map[string]any) { cfg["enabled"] = false })
	if spec, why := telemetrySpecFor(&globalOptions{Root: off, cfg: appconfig.Default()}); spec != "" || !strings.Contains(why, "disabled") {
		t.Errorf("disabled telemetry: spec %q, reason %q", spec, why)
	}

	// And the job really runs a check on that interval (fake clock).
	repo := initRepo(t)
	clk := scheduler.NewFakeClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	done := make(chan error, 8)
	d := jobsDaemon(t, root, repo, clk, func(job string, err error) {
		if job == jobTelemetry {
			done <- err
		}
	})
	d.sched.Start()
	defer d.sched.Stop(context.Background())
	for i := range 2 {
		if !clk.BlockUntil(1, 10*time.Second) {
			t.Fatal("loop not waiting")
		}
		clk.Advance(time.Minute)
		select {
		case err := <-done:
			t.Fatalf("check %d ran after 1 minute (err %v)", i, err)
		case <-time.After(50 * time.Millisecond):
		}
		if !clk.BlockUntil(1, 10*time.Second) {
			t.Fatal("loop not waiting")
		}
		clk.Advance(time.Minute)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("check %d: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("check %d did not run after 2 minutes", i)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "24_meta_orchestration/registry/logs/telemetry_state.json")); err != nil {
		t.Errorf("the telemetry job wrote no state: %v", err)
	}
}

// TestCanonicalArgvResolvesPaths checks the command line the client sends.
func TestCanonicalArgvResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	var got []string
	var spelled map[string]string
	g := &globalOptions{stdout: io.Discard, stderr: io.Discard}
	app := newApp(g)
	for _, c := range app.Commands {
		if c.Name == "verify" {
			c.Action = func(cc *cli.Context) error {
				var err error
				got, spelled, err = canonicalArgv(cc, g)
				return err
			}
		}
	}
	t.Setenv("SSID_ROOT", "tree")
	if err := app.Run([]string{"ssid-anchor", "--repo", "r", "verify", "--car", "a.car", "--car", "/abs/b.car", "--allow-missing", "--timeout", "5s"}); err != nil {
		t.Fatal(err)
	}
	want := "ssid-anchor --root " + filepath.Join(dir, "tree") + " --repo " + filepath.Join(dir, "r") + " --log-level info --log-format text verify " +
		"--car=" + filepath.Join(dir, "a.car") + " --car=/abs/b.car --allow-missing=true --timeout=5s --"
	if strings.Join(got, " ") != want {
		t.Errorf("argv\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if len(spelled) != 1 || spelled[filepath.Join(dir, "a.car")] != "a.car" {
		t.Errorf("spelled %v", spelled)
	}
}
