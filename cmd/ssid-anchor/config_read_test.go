package main

import (
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
)

// paddedConfig is a valid appliance config of n bytes: the JSON is tiny,
// the rest is whitespace a decoder accepts.
func paddedConfig(n int) []byte {
	body := `{"schedule": {"quarterly": "30 6 * * 1"}}`
	return []byte(body + strings.Repeat(" ", n-len(body)-1) + "\n")
}

// TestConfigReadsAreBounded is issue 25.8's SIGHUP half: main read a config
// whole whatever it weighed (7.3 GB of memory for a 1 GB file) and waited
// for ever on a FIFO named as one. Both configs are now read only when they
// are regular files of at most appconfig.MaxSize bytes, with a config error
// that says so.
func TestConfigReadsAreBounded(t *testing.T) {
	big := writeConfig(t, string(paddedConfig(appconfig.MaxSize+1)))
	_, err := appconfig.Load(big, true)
	if code, _ := exitCode(err); code != exitUsage || !errors.Is(err, appconfig.ErrTooLarge) || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), "the limit is 1048576") {
		t.Errorf("a config of %d bytes: exit %d, %v", appconfig.MaxSize+1, code, err)
	}
	ok := writeConfig(t, string(paddedConfig(appconfig.MaxSize)))
	if c, err := appconfig.Load(ok, true); err != nil || c.Schedule.Quarterly != "30 6 * * 1" {
		t.Errorf("a config of exactly the limit: %v", err)
	}

	fifo := filepath.Join(t.TempDir(), "appliance.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := appconfig.Load(fifo, true); done <- err }()
	select {
	case err := <-done:
		if code, _ := exitCode(err); code != exitUsage || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("a FIFO as the config: exit %d, %v", code, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("reading a FIFO as the config blocked")
	}

	root := newTree(t)
	g := &globalOptions{Root: root, cfg: appconfig.Default()}
	mustWrite(t, filepath.Join(root, g.cfg.Paths.TelemetryConfig), paddedConfig(appconfig.MaxSize+1))
	_, err = ops.LoadTelemetryConfig(g.opsEnv())
	if code, _ := exitCode(err); code != exitUsage || !errors.Is(err, appconfig.ErrTooLarge) || !strings.Contains(err.Error(), g.cfg.Paths.TelemetryConfig) {
		t.Errorf("a telemetry config of %d bytes: exit %d, %v", appconfig.MaxSize+1, code, err)
	}
}

// TestReloaderRunsBesideTheLoop: SIGHUP used to reload on the daemon's
// loop, the one goroutine that feeds systemd's watchdog, so a slow reload
// starved it. The reloader takes requests without waiting, runs one reload
// at a time, folds the requests made meanwhile into one more, and stop
// waits for the reload in progress.
func TestReloaderRunsBesideTheLoop(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	var runs atomic.Int32
	r := newReloader(func() {
		runs.Add(1)
		started <- struct{}{}
		<-release
	})
	requested := make(chan struct{})
	go func() {
		r.request()
		<-started // the first reload now blocks
		r.request()
		r.request()
		r.request()
		close(requested)
	}()
	select {
	case <-requested:
	case <-time.After(60 * time.Second):
		t.Fatal("request waited for a reload in progress")
	}
	release <- struct{}{} // first reload ends; the one pending starts
	<-started
	stopped := make(chan struct{})
	go func() { r.stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("stop returned while a reload was still running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-stopped
	if n := runs.Load(); n != 2 {
		t.Errorf("%d reloads for one request and three during it, want 2", n)
	}
}

// TestDaemonSIGHUPOversizedConfig: SIGHUP with a config over the limit is
// refused with a clear reason while the daemon keeps the config in force,
// tells systemd it reloads and is ready again, and its watchdog keeps being
// fed. Main read and applied the whole file.
func TestDaemonSIGHUPOversizedConfig(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	cfg := writeConfig(t, `{"schedule": {"quarterly": "0 9 1 1,4,7,10 *"}}`)
	sock, msgs := notifySocket(t)
	d := startDaemonWith(t, root, repo, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}, []string{"--config", cfg})
	awaitNotify(t, msgs, "READY=1")
	mustWrite(t, cfg, paddedConfig(appconfig.MaxSize+1))
	d.cmd.Process.Signal(syscall.SIGHUP)
	awaitNotify(t, msgs, "RELOADING=1", "READY=1", "WATCHDOG=1")
	d.waitLog(t, `msg="SIGHUP: config not reloaded; keeping the one in force".*too large for a config file`)
	st := daemonStatus(t, root, repo)
	for _, j := range st["jobs"].([]any) {
		if m := j.(map[string]any); m["name"] == "quarterly" && m["spec"] != "0 9 1 1,4,7,10 *" {
			t.Errorf("the refused config changed the schedule: %v", m["spec"])
		}
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d:\n%s", code, d.log.String())
	}
}
