package node

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// Sign signs data with the node's libp2p identity key, the one kubo loaded
// from the repo's config. Anyone holding only the peer ID can check the
// result: an ed25519 peer ID embeds its public key (peer.ID.ExtractPublicKey).
func (n *Node) Sign(data []byte) ([]byte, error) {
	sk := n.ipfs.PrivateKey
	if sk == nil {
		return nil, errors.New("signing: the node has no private key loaded (is the repo's Identity.PrivKey set?)")
	}
	// Only ed25519 keys are embedded in the peer ID; with an RSA identity a
	// verifier would need the key from elsewhere.
	if sk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("signing: the repo's identity is a %s key; ssid-anchor signs with ed25519 identities only (create the repo with `ssid-anchor init`)", sk.Type())
	}
	sig, err := sk.Sign(data)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return sig, nil
}
