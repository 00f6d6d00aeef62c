package node

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	pin "github.com/ipfs/boxo/pinning/pinner"
	"github.com/ipfs/go-cid"
)

// guardRun adds files in one batch, as an anchoring run does, and returns
// the run root (pinned recursively) and the files' CIDs.
func guardRun(t *testing.T, n *Node, files ...[]byte) (cid.Cid, []cid.Cid) {
	t.Helper()
	b, err := n.NewBatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var cids []cid.Cid
	for _, f := range files {
		c, err := b.AddFile(bytes.NewReader(f), mustParams(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		b.Link("f", c)
		cids = append(cids, c)
	}
	root, err := b.Commit("ssid-anchor run test")
	if err != nil {
		t.Fatal(err)
	}
	return root, cids
}

func pinnedAt(t *testing.T, n *Node, c cid.Cid) bool {
	t.Helper()
	_, ok, err := n.ipfs.Pinning.IsPinned(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestPinGuard: with a guard set, removing a pin that is the last one of a
// protected CID is refused with an error naming it, through the pinner
// kubo's commands use; a pin whose protected content another pin also
// covers, and a pin of unprotected content, are removed as usual.
func TestPinGuard(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	rng := seededRand(t)
	data := func(size int) []byte {
		b := make([]byte, size)
		rng.Read(b)
		return b
	}
	anchoredA, anchoredB, other := data(300<<10), data(1000), data(2000)
	root1, cids1 := guardRun(t, n, anchoredA, anchoredB)
	root2, cids2 := guardRun(t, n, other)
	var held, released int
	n.SetPinGuard(PinGuard{Protected: func(context.Context) (map[string]string, func(), error) {
		held++
		return map[string]string{
			cids1[0].String(): "record a/big.bin, anchored 2026-01-01T00:00:00Z",
			cids1[1].String(): "record a/small.txt, anchored 2026-01-01T00:00:00Z",
		}, func() { released++ }, nil
	}, Hint: "stop the daemon to unpin anyway"})

	err := n.ipfs.Pinning.Unpin(ctx, root1, true)
	if !errors.Is(err, ErrPinProtected) {
		t.Fatalf("unpin of the run root holding two protected files: %v, want ErrPinProtected", err)
	}
	t.Logf("refusal: %v", err)
	for _, want := range []string{root1.String(), "record a/big.bin", "record a/small.txt", cids1[0].String(), "repo gc", "stop the daemon to unpin anyway"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not name %q", err, want)
		}
	}
	if !pinnedAt(t, n, root1) || !pinnedAt(t, n, cids1[0]) {
		t.Fatal("a refused unpin removed the pin")
	}
	if err := n.ipfs.Pinning.Update(ctx, root1, root2, true); !errors.Is(err, ErrPinProtected) {
		t.Fatalf("pin update --unpin from the run root to unrelated content: %v, want ErrPinProtected", err)
	}

	// Unprotected content goes as usual.
	if err := n.ipfs.Pinning.Unpin(ctx, root2, true); err != nil {
		t.Fatalf("unpin of a root holding nothing protected: %v", err)
	}
	if pinnedAt(t, n, root2) || pinnedAt(t, n, cids2[0]) {
		t.Fatal("the unprotected pin is still there")
	}

	// A direct pin of one protected file and a second run root holding the
	// other: now root1 is not the last pin of either.
	if err := n.ipfs.Pinning.PinWithMode(ctx, cids1[0], pin.Direct, "keep"); err != nil {
		t.Fatal(err)
	}
	err = n.ipfs.Pinning.Unpin(ctx, root1, true)
	if !errors.Is(err, ErrPinProtected) || strings.Contains(err.Error(), "a/big.bin") || !strings.Contains(err.Error(), "a/small.txt") {
		t.Fatalf("with big.bin pinned directly the refusal must name only small.txt: %v", err)
	}
	root3, _ := guardRun(t, n, anchoredB)
	if err := n.ipfs.Pinning.Unpin(ctx, root1, true); err != nil {
		t.Fatalf("unpin of a root whose protected files are pinned elsewhere: %v", err)
	}
	if !pinnedAt(t, n, cids1[0]) || !pinnedAt(t, n, cids1[1]) {
		t.Fatal("protected files lost their pins")
	}
	// The direct pin is now the last pin of big.bin.
	if err := n.ipfs.Pinning.Unpin(ctx, cids1[0], false); !errors.Is(err, ErrPinProtected) || !strings.Contains(err.Error(), "a/big.bin") {
		t.Fatalf("unpin of the last (direct) pin of a protected file: %v", err)
	}
	if err := n.ipfs.Pinning.Unpin(ctx, root3, true); !errors.Is(err, ErrPinProtected) {
		t.Fatalf("unpin of the last pin of small.txt: %v", err)
	}
	if held == 0 || held != released {
		t.Errorf("guard held %d times, released %d: every check must release what it held", held, released)
	}

	// A guard that cannot say what is protected keeps every pin.
	n.SetPinGuard(PinGuard{Protected: func(context.Context) (map[string]string, func(), error) {
		return nil, nil, errors.New("manifest unreadable")
	}})
	if err := n.ipfs.Pinning.Unpin(ctx, root3, true); err == nil || !strings.Contains(err.Error(), "manifest unreadable") || !strings.Contains(err.Error(), "stays pinned") {
		t.Fatalf("unpin with a failing guard: %v", err)
	}
}
