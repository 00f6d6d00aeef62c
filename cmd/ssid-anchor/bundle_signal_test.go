package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBundleStopsOnSIGINT is issue 25.8 through the binary: a bundle of a
// 4 GiB input (sparse, so it costs no disk) is interrupted once its temp
// file exists, that is while it zips. It must exit 130 and leave nothing:
// no bundle, no temp or scratch file, no release event. Main zipped in
// memory, created its temp file only after the whole zip, and went on to
// write the bundle (exit 0).
func TestBundleStopsOnSIGINT(t *testing.T) {
	const q = "2026-Q1"
	root := bundleTree(t, q)
	guide := filepath.Join(root, tOpsGuide)
	if err := os.Truncate(guide, 4<<30); err != nil {
		t.Fatal(err)
	}
	logBefore, err := os.ReadFile(filepath.Join(root, tLog))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(anchorBinary(t), "--root", root, "bundle", "--quarter", q)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	})
	releases := filepath.Join(root, tReleases)
	zipping := func() bool {
		entries, _ := os.ReadDir(releases)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") {
				return true
			}
		}
		return false
	}
	for !zipping() {
		select {
		case <-done:
			t.Fatalf("bundle of a 4 GiB input ended before it was interrupted: exit %d\n%s", cmd.ProcessState.ExitCode(), stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("bundle still running 60 s after SIGINT:\n%s", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d after SIGINT, want 130\n%s", code, stderr.String())
	}
	if entries, _ := os.ReadDir(releases); len(entries) != 0 {
		for _, e := range entries {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if logAfter, _ := os.ReadFile(filepath.Join(root, tLog)); !bytes.Equal(logAfter, logBefore) {
		t.Errorf("the interrupted bundle appended a release event")
	}
}
