package anchor

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/node"
)

// TestStoredChainTellsManifestsApart: only a JSON object with an anchors
// list counts as a manifest when import looks for the chain head; a
// release manifest or a zip does not.
func TestStoredChainTellsManifestsApart(t *testing.T) {
	n := newTestNodeForChain(t)
	ctx := context.Background()
	for _, tc := range []struct {
		data string
		want bool
	}{
		{`{"anchors": [], "statistics": {}}`, true},
		{`{"artifact": "SSID_Quarterly_Release", "external_anchors": {"ipfs": {}}}`, false},
		{"PK\x03\x04 a zip", false},
		{`[1, 2]`, false},
	} {
		c := addForChain(t, n, []byte(tc.data))
		chain, ok, err := StoredChain(ctx, n, c)
		if err != nil || ok != tc.want || (ok && (len(chain) != 1 || chain[0] != c.String())) {
			t.Errorf("%q: chain %v ok %v err %v, want ok %v", tc.data, chain, ok, err, tc.want)
		}
	}
}

func newTestNodeForChain(t *testing.T) *node.Node {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	if _, err := node.Init(repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func addForChain(t *testing.T, n *node.Node, data []byte) cid.Cid {
	t.Helper()
	b, err := n.NewBatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.AddFile(bytes.NewReader(data), manifestParams, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Link("x", c)
	if _, err := b.Commit("test"); err != nil {
		t.Fatal(err)
	}
	return c
}
