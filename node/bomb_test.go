package node

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// writeBombCAR writes the DAG bomb of issue 10: one 256 KiB leaf and three
// levels of UnixFS file nodes, each linking its child 1000 times. The CAR is
// about 410 KB; the file it describes is 1000^3 * 256 KiB (256 TB). It
// returns the root and the size the root declares.
func writeBombCAR(t *testing.T, path string) (cid.Cid, int64) {
	t.Helper()
	leafFS := ft.NewFSNode(ft.TFile)
	leafFS.SetData(make([]byte, 256<<10))
	lb, err := leafFS.GetBytes()
	if err != nil {
		t.Fatal(err)
	}
	child := merkledag.NodeWithData(lb)
	size := int64(256 << 10)
	nodes := []ipld.Node{child}
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
		size *= 1000
		child = pn
		nodes = append(nodes, pn)
	}
	var cids []cid.Cid
	var datas [][]byte
	for i := len(nodes) - 1; i >= 0; i-- {
		cids = append(cids, nodes[i].Cid())
		datas = append(datas, nodes[i].RawData())
	}
	ctWriteCAR(t, path, []cid.Cid{child.Cid()}, cids, datas)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bomb CAR %s: %d bytes, root %s declares %d bytes", path, st.Size(), child.Cid(), size)
	return child.Cid(), size
}

// within runs f and fails the test if it has not returned after d: the old
// walker spent hours on the bomb, so the test must not wait for it.
func within(t *testing.T, d time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s still running after %s", what, d)
		return nil
	}
}

// TestDAGBomb: every walk over the bomb ends quickly. Rebuilding the file
// stops at the byte limit a record's file_size gives (or the one the root
// declares, which still ends on SIGINT), and the completeness, import and
// export walks visit its four distinct blocks once each.
func TestDAGBomb(t *testing.T) {
	car := filepath.Join(t.TempDir(), "bomb.car")
	root, declared := writeBombCAR(t, car)
	ctx := context.Background()

	set, err := OpenCARs([]string{car})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	limit := MaxDAGBytes(256 << 10)
	var blocks int
	err = within(t, 5*time.Second, "CARSet.ReadFile", func() error {
		var err error
		blocks, err = set.ReadFile(ctx, root, limit, io.Discard)
		return err
	})
	var le *DAGLimitError
	if !errors.As(err, &le) || !le.CID.Equals(root) || le.Limit != limit {
		t.Fatalf("ReadFile of the bomb with a 256 KiB record: %v, want a DAGLimitError naming %s and %d", err, root, limit)
	}
	if blocks > 6 {
		t.Fatalf("read %d blocks before stopping, want a handful", blocks)
	}
	t.Logf("stopped after %d blocks: %v", blocks, err)

	// With the size the root declares (256 TB) the walk is legitimate but
	// endless; cancelling must stop it between blocks.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = within(t, 5*time.Second, "CARSet.ReadFile after cancel", func() error {
		_, err := set.ReadFile(cctx, root, 0, io.Discard)
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadFile with the declared limit (%d) under a cancelled context: %v", MaxDAGBytes(declared), err)
	}
	if d := time.Since(start); d > 1300*time.Millisecond {
		t.Fatalf("ReadFile took %s to notice the cancel (deadline 300ms)", d)
	}

	var reps []CARReport
	within(t, 5*time.Second, "Reports", func() error { reps = set.Reports(ctx, nil); return nil })
	if !reps[0].OK || reps[0].Blocks != 4 {
		t.Fatalf("the bomb is a complete, intact 4-block CAR; report %+v", reps[0])
	}

	n := newTestNode(t)
	var res ImportResult
	err = within(t, 5*time.Second, "ImportCAR", func() error {
		var err error
		res, err = n.ImportCAR(ctx, car, "bomb")
		return err
	})
	if err != nil || res.Blocks != 4 {
		t.Fatalf("import: %+v %v, want 4 blocks stored", res, err)
	}
	err = within(t, 5*time.Second, "Node.ReadFile", func() error {
		_, err := n.ReadFile(ctx, root, limit, io.Discard)
		return err
	})
	if !errors.Is(err, ErrDAGTooLarge) {
		t.Fatalf("repo ReadFile of the bomb: %v, want ErrDAGTooLarge", err)
	}
	var ex ExportResult
	err = within(t, 5*time.Second, "ExportCAR", func() error {
		var err error
		ex, err = n.ExportCAR(ctx, root, io.Discard)
		return err
	})
	if err != nil || ex.Blocks != 4 {
		t.Fatalf("export: %+v %v, want the 4 distinct blocks", ex, err)
	}
	err = within(t, 5*time.Second, "PinStates", func() error {
		_, err := n.PinStates(ctx, []cid.Cid{root, ctRandomCID(t)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func ctRandomCID(t *testing.T) cid.Cid {
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum([]byte(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
