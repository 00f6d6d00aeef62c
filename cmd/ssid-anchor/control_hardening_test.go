package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/control"
	"github.com/ssid/ssid-anchor/scheduler"
)

// callSocket sends argv over the control socket of repo, as the client
// does, and returns the exit code and both streams.
func callSocket(t *testing.T, ctx context.Context, repo string, argv ...string) (int, string, string) {
	t.Helper()
	c, err := control.Dial(repo)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	code, err := control.Forward(ctx, c, control.Request{Version: control.Version, Argv: argv}, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestControlSocketRefusesSmuggledCommands sends the command lines of
// issue 25.2 to the daemon's own request handler over the socket. Main's
// allow-list read argv on its own (every --flag=value "took" the next
// word), so `--json=true event ... status` ran `event` in the daemon, and
// `--json=true daemon status` a nested daemon on the shared node. The
// command is now decided by the parser that runs it, and the repo and
// config must be the daemon's.
func TestControlSocketRefusesSmuggledCommands(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	other := initRepo(t)
	clk := scheduler.NewFakeClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	d := jobsDaemon(t, root, repo, clk, func(string, error) {})
	srv, err := control.Listen(repo, d.serveRequest, control.ServerOptions{Log: d.g.log, RedactArgv: redactArgv})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close(context.Background())

	logPath := filepath.Join(root, tLog)
	before, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	otherCfg := filepath.Join(t.TempDir(), "appliance.json")
	mustWrite(t, otherCfg, []byte(`{"paths": {"manifest": "elsewhere/manifest.json"}}`))
	g := []string{"ssid-anchor", "--root", root, "--repo", repo, "--log-level", "info"}
	refused := []struct {
		name string
		argv []string
		want string
	}{
		{"event behind --json=true", append(append([]string{}, g...), "--json=true", "event", "--event", "smuggled", "--version", "1", "--hash", "h", "status"), `not "event"`},
		{"init behind --json=true", append(append([]string{}, g...), "--json=true", "init", "status"), `not "init"`},
		{"nested daemon", append(append([]string{}, g...), "--json=true", "daemon", "--http", "", "status"), `not "daemon"`},
		{"help", append(append([]string{}, g...), "help", "status"), `not "help"`},
		{"no command", append([]string{}, g...), `not ""`},
		{"another repo", []string{"ssid-anchor", "--root", root, "--repo", other, "status"}, "is not the repo this daemon serves"},
		{"another repo after the command", []string{"ssid-anchor", "--root", root, "--repo", repo, "status", "--repo", other}, "is not the repo this daemon serves"},
		{"another config", append(append([]string{}, g...), "--config", otherCfg, "status"), "is not the config this daemon runs with"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			code, out, errs := callSocket(t, ctx, repo, tc.argv...)
			if code != exitUsage || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, errs, tc.want)
			}
			if after, _ := os.ReadFile(logPath); !bytes.Equal(after, before) {
				t.Fatalf("the registry log changed: a refused command ran")
			}
			if fi, err := os.Lstat(control.SocketPath(repo)); err != nil || fi.Mode()&os.ModeSocket == 0 {
				t.Fatalf("the daemon's socket is gone: %v", err)
			}
		})
	}
	// What the client really sends still runs, with the same repo spelled
	// through a symlink too.
	link := filepath.Join(t.TempDir(), "repo-link")
	if err := os.Symlink(repo, link); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{repo, link} {
		code, out, errs := callSocket(t, context.Background(), repo, "ssid-anchor", "--root", root, "--repo", r, "--log-level", "info", "--json", "status", "--")
		if code != 0 || !strings.Contains(out, `"peer_id"`) {
			t.Fatalf("status through the socket (--repo %s): exit %d\nstdout %s\nstderr %s", r, code, out, errs)
		}
	}
}
