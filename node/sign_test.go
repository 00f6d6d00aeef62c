package node

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestSignVerifiesWithPeerID: a signature made by the repo's identity key
// verifies with nothing but the peer ID written in the repo config, through
// libp2p's own key functions; a changed message or another peer's key does
// not verify it.
func TestSignVerifiesWithPeerID(t *testing.T) {
	n := newTestNode(t)
	var conf struct{ Identity struct{ PeerID string } }
	b, err := os.ReadFile(filepath.Join(n.RepoPath(), "config"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	if conf.Identity.PeerID != n.PeerID() {
		t.Fatalf("node peer ID %s, repo config says %s", n.PeerID(), conf.Identity.PeerID)
	}
	msg := []byte(`{"anchors":[],"manifest_version":"1.0.0"}`)
	sig, err := n.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := peer.Decode(conf.Identity.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		t.Fatalf("the peer ID does not embed its key: %v", err)
	}
	if pub.Type() != crypto.Ed25519 {
		t.Fatalf("key type %s, want Ed25519", pub.Type())
	}
	if ok, err := pub.Verify(msg, sig); err != nil || !ok {
		t.Fatalf("signature does not verify with the peer ID's key: ok=%v err=%v", ok, err)
	}
	changed := append([]byte(nil), msg...)
	changed[len(changed)-3] ^= 1
	if ok, _ := pub.Verify(changed, sig); ok {
		t.Fatal("the signature verifies a changed message")
	}
	other, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := other.GetPublic().Verify(msg, sig); ok {
		t.Fatal("the signature verifies with another key")
	}
}
