package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	carv2 "github.com/ipld/go-car/v2"
	carstorage "github.com/ipld/go-car/v2/storage"
)

// bombCAR writes the DAG bomb of issue 10 to path: a 256 KiB leaf under
// three levels of UnixFS file nodes that each link their child 1000 times
// (about 410 KB on disk, 256 TB as a file). It returns the root CID and
// the size the root declares.
func bombCAR(t *testing.T, path string) (cid.Cid, int64) {
	t.Helper()
	leaf := ft.NewFSNode(ft.TFile)
	leaf.SetData(make([]byte, 256<<10))
	lb, err := leaf.GetBytes()
	if err != nil {
		t.Fatal(err)
	}
	var child ipld.Node = merkledag.NodeWithData(lb)
	nodes := []ipld.Node{child}
	size := int64(256 << 10)
	for range 3 {
		fsn := ft.NewFSNode(ft.TFile)
		pn := &merkledag.ProtoNode{}
		for range 1000 {
			fsn.AddBlockSize(uint64(size))
			if err := pn.AddRawLink("", &ipld.Link{Cid: child.Cid(), Size: uint64(size)}); err != nil {
				t.Fatal(err)
			}
		}
		b, err := fsn.GetBytes()
		if err != nil {
			t.Fatal(err)
		}
		pn.SetData(b)
		child, size = pn, size*1000
		nodes = append(nodes, pn)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := carstorage.NewWritable(f, []cid.Cid{child.Cid()}, carv2.WriteAsCarV1(true))
	if err != nil {
		t.Fatal(err)
	}
	for i := len(nodes) - 1; i >= 0; i-- {
		if err := w.Put(context.Background(), nodes[i].Cid().KeyString(), nodes[i].RawData()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	t.Logf("bomb CAR: %d bytes, root %s declares %d bytes", st.Size(), child.Cid(), size)
	return child.Cid(), size
}

// bombManifest is the sample manifest plus one record pointing at root.
func bombManifest(t *testing.T, path string, root cid.Cid, fileSize int64) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(vcTestdata(t, "ipfs_anchor_manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	m["anchors"] = []any{map[string]any{
		"file_path": "05_documentation/releases/bomb.zip", "file_name": "bomb.zip",
		"file_hash": strings.Repeat("ab", 32), "ipfs_cid": root.String(),
		"ipfs_gateway_url": "https://ipfs.io/ipfs/" + root.String(),
		"anchored_at":      "2026-01-01T00:00:00Z", "event_type": "x", "event_version": "1",
		"event_timestamp": "2026-01-01T00:00:00Z", "blueprint_version": "v4.3",
		"file_size": fileSize,
	}}
	b, _ := json.MarshalIndent(m, "", "  ")
	vcWrite(t, path, b)
}

// binRun runs the built binary and fails the test if it is still running
// after limit (the old code spent hours on the bomb).
func binRun(t *testing.T, limit time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, anchorBinary(t), args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ssid-anchor %v still running after %s (killed)\n%s", args, limit, out.String())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	t.Logf("ssid-anchor %s: exit %d in %s", strings.Join(args, " "), cmd.ProcessState.ExitCode(), time.Since(start).Round(time.Millisecond))
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestDAGBombCommands: verify --car, import, repo verify and export of the
// bomb all finish promptly; the verifications fail naming the CID and the
// limit.
func TestDAGBombCommands(t *testing.T) {
	dir := t.TempDir()
	car := filepath.Join(dir, "bomb.car")
	root, _ := bombCAR(t, car)
	tr := newTree(t)
	man := filepath.Join(tr, tManifest)
	bombManifest(t, man, root, 256<<10)
	const budget = 60 * time.Second // generous for a shared machine; the old code never ended
	wantLimit := fmt.Sprint(256<<10 + (256<<10)/64 + 64<<10)

	code, out := binRun(t, budget, "verify", "--manifest", man, "--car", car)
	if code != exitFailure || !strings.Contains(out, root.String()) || !strings.Contains(out, "reads more than "+wantLimit+" bytes") {
		t.Fatalf("verify --car of the bomb: exit %d, want 1 naming %s and the limit %s\n%s", code, root, wantLimit, out)
	}

	repo := filepath.Join(dir, "repo")
	if code, out := binRun(t, budget, "--repo", repo, "init"); code != 0 {
		t.Fatalf("init: %d\n%s", code, out)
	}
	if code, out := binRun(t, budget, "--repo", repo, "import", car); code != 0 {
		t.Fatalf("import of the bomb (a complete 4-block CAR): exit %d\n%s", code, out)
	}
	code, out = binRun(t, budget, "--root", tr, "--repo", repo, "verify", "--allow-missing")
	if code != exitFailure || !strings.Contains(out, "reads more than "+wantLimit+" bytes") {
		t.Fatalf("repo verify after importing the bomb: exit %d\n%s", code, out)
	}
	code, out = binRun(t, budget, "--root", tr, "--repo", repo, "export", "--car", filepath.Join(dir, "out"))
	if code != 0 || !strings.Contains(out, "4 blocks") {
		t.Fatalf("export of the bomb: exit %d, want 0 with its 4 distinct blocks\n%s", code, out)
	}
}

// TestVerifyStopsOnSIGINT: a record that says the bomb really is 256 TB
// makes verify legitimately busy; SIGINT must end it with exit 130 within
// a second.
func TestVerifyStopsOnSIGINT(t *testing.T) {
	dir := t.TempDir()
	car := filepath.Join(dir, "bomb.car")
	root, declared := bombCAR(t, car)
	man := filepath.Join(dir, "manifest.json")
	bombManifest(t, man, root, declared)
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(anchorBinary(t), "verify", "--manifest", man, "--car", car)
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
				t.Fatalf("verify of a 256 TB record ended before the signal: exit %d\n%s", cmd.ProcessState.ExitCode(), out.String())
			case <-time.After(1500 * time.Millisecond):
			}
			sent := time.Now()
			cmd.Process.Signal(sig)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("verify ignored %s for 10 s\n%s", sig, out.String())
			}
			took := time.Since(sent)
			t.Logf("exit %d %s after %s", cmd.ProcessState.ExitCode(), sig, took)
			if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
				t.Fatalf("exit %d after %s, want 130\n%s", code, sig, out.String())
			}
			if took > time.Second {
				t.Fatalf("verify took %s to stop after %s, want under 1 s", took, sig)
			}
		})
	}
}
