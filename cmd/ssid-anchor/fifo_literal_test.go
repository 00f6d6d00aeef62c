package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/control"
)

// TestLiteralRulePathSpecialFilesRefused is issue 25.17 end to end: the
// default rules name the dashboard markdown and CSV by literal path; a FIFO
// and a socket put there made main report "matched no file" and exit 0. The
// run now refuses both by name (SPEC 4.1) and, being a partial failure,
// exits 1; nothing blocks on the FIFO.
func TestLiteralRulePathSpecialFilesRefused(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	md := filepath.Join(root, "05_documentation/reports/dashboard/SSID_Governance_Dashboard.md")
	csv := filepath.Join(root, "05_documentation/reports/dashboard/dashboard_data.csv")
	mustMkdir(t, filepath.Dir(md))
	if err := syscall.Mkfifo(md, 0o644); err != nil {
		t.Fatal(err)
	}
	bind, done, err := control.ShortSocketPath(csv) // t.TempDir paths outgrow sun_path
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bind, Net: "unix"})
	done()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if code, _, stderr := runCLI(t, "--root", root, "event", "--event", "governance_update", "--version", "v1", "--hash", "h"); code != 0 {
		t.Fatalf("event: %d %s", code, stderr)
	}
	code, stderr := runBinary(t, 60*time.Second, "--root", root, "--repo", repo, "anchor")
	if code != exitFailure {
		t.Fatalf("anchor with a FIFO and a socket at literal rule paths: exit %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{"SSID_Governance_Dashboard.md", "named pipe (FIFO)", "dashboard_data.csv", "socket", "2 of 3 selected files could not be anchored"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "matched no file") {
		t.Errorf("a special file was reported as matching nothing:\n%s", stderr)
	}
}
