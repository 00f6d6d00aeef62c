package anchor

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Signer signs manifests with the node's libp2p identity (*node.Node).
type Signer interface {
	PeerID() string
	Sign(data []byte) ([]byte, error)
}

// SignatureAlg is the only signature algorithm written and accepted.
const SignatureAlg = "ed25519"

const keySignature = "signature"

// Signature is a manifest's "signature" key: the signer's libp2p peer ID,
// the algorithm, and the signature over CanonicalForm, base64 (RFC 4648
// section 4, standard alphabet, padded).
type Signature struct {
	PeerID string `json:"peer_id"`
	Alg    string `json:"alg"`
	Sig    string `json:"sig"`
}

// canonicalize is the signed form of a top-level key list: the object
// without its "signature" key, in RFC 8785 (JCS) form. gowebpki/jcs is the
// maintained Go implementation of RFC 8785 (ES6 number formatting, UTF-16
// key order); it refuses duplicate keys, so a manifest cannot carry one
// value for the signature and another for a reader.
//
// The canonical form is built member by member (canonicalMembers): jcs
// parses its whole input into a tree first, which for the anchors array of
// 20,000 records is five times the manifest's size at once.
func canonicalize(kvs []KV) ([]byte, error) {
	unsigned := slices.DeleteFunc(slices.Clone(kvs), func(kv KV) bool { return kv.Key == keySignature })
	out, err := canonicalMembers(unsigned)
	if err != nil {
		return nil, fmt.Errorf("canonicalising the manifest (RFC 8785): %w", err)
	}
	return out, nil
}

// CanonicalForm returns the bytes a manifest's signature covers: its
// top-level object without the "signature" key, canonicalised by RFC 8785.
func CanonicalForm(manifest []byte) ([]byte, error) {
	kvs, err := decodeObject(manifest)
	if err != nil {
		return nil, err
	}
	return canonicalize(kvs)
}

// sign replaces any signature the manifest carries with s's signature over
// its current content. Every key is covered, including the ones this
// version does not know and passes through. The canonical form is built in
// buf, which the caller may use again once sign returns.
func (m *Manifest) sign(s Signer, buf []byte) error {
	m.keys = slices.DeleteFunc(m.keys, func(kv KV) bool { return kv.Key == keySignature })
	// prepare has just made the anchors key stand for m.Records.
	canon, err := m.canonicalManifest(buf)
	if err != nil {
		return err
	}
	sig, err := s.Sign(canon)
	if err != nil {
		return fmt.Errorf("signing the manifest: %w", err)
	}
	raw, err := marshal(Signature{PeerID: s.PeerID(), Alg: SignatureAlg, Sig: base64.StdEncoding.EncodeToString(sig)})
	if err != nil {
		return err
	}
	m.keys = append(m.keys, KV{keySignature, raw})
	return nil
}

// Signature statuses of one manifest.
const (
	SigValid    = "signed"   // the signature verifies with its peer ID
	SigUnsigned = "unsigned" // no signature key
	SigInvalid  = "invalid"  // a signature that does not verify or cannot be read
)

// SignatureCheck is the verdict on one manifest's signature alone.
type SignatureCheck struct {
	Status string
	PeerID string
	// Err says why an invalid signature is invalid.
	Err error
}

// ValidatePeerID checks that s is a libp2p peer ID that embeds an ed25519
// public key, the only kind that verifies a manifest by itself.
func ValidatePeerID(s string) error {
	_, err := publicKeyOf(s)
	return err
}

func publicKeyOf(s string) (crypto.PubKey, error) {
	pid, err := peer.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a libp2p peer ID: %w", s, err)
	}
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("peer ID %s does not embed its public key (not an ed25519 identity): %w", s, err)
	}
	if pub.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("peer ID %s holds a %s key, not ed25519", s, pub.Type())
	}
	return pub, nil
}

// CheckSignature checks the signature of a manifest's exact bytes against
// the public key inside its own peer ID, with libp2p's key functions.
func CheckSignature(manifest []byte) SignatureCheck {
	kvs, err := splitObject(manifest)
	if err != nil {
		return SignatureCheck{Status: SigInvalid, Err: fmt.Errorf("not a JSON object: %w", err)}
	}
	var raws []json.RawMessage
	for _, kv := range kvs {
		if kv.Key == keySignature {
			raws = append(raws, kv.Value)
		}
	}
	switch len(raws) {
	case 0:
		return SignatureCheck{Status: SigUnsigned}
	case 1:
	default:
		return SignatureCheck{Status: SigInvalid, Err: fmt.Errorf("%d %q keys; a manifest has at most one", len(raws), keySignature)}
	}
	var sig Signature
	dec := json.NewDecoder(bytes.NewReader(raws[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sig); err != nil {
		return SignatureCheck{Status: SigInvalid, Err: fmt.Errorf("key %q: %w", keySignature, err)}
	}
	res := SignatureCheck{Status: SigInvalid, PeerID: sig.PeerID}
	if sig.Alg != SignatureAlg {
		res.Err = fmt.Errorf("signature.alg is %q; only %q is accepted", sig.Alg, SignatureAlg)
		return res
	}
	pub, err := publicKeyOf(sig.PeerID)
	if err != nil {
		res.Err = fmt.Errorf("signature.peer_id: %w", err)
		return res
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(sig.Sig)
	if err != nil {
		res.Err = fmt.Errorf("signature.sig is not base64: %w", err)
		return res
	}
	canon, err := canonicalize(kvs)
	if err != nil {
		res.Err = err
		return res
	}
	ok, err := pub.Verify(canon, raw)
	if err != nil || !ok {
		res.Err = fmt.Errorf("the signature does not verify with the key of %s: the manifest was changed after it was signed, or the signature was made by another key", sig.PeerID)
		return res
	}
	res.Status = SigValid
	return res
}

// ManifestSignature is the verdict on the signature of one manifest of the
// chain, newest first.
type ManifestSignature struct {
	CID         string `json:"cid"`
	LastUpdated string `json:"last_updated,omitempty"`
	// Status is signed, unsigned or invalid.
	Status string `json:"status"`
	PeerID string `json:"peer_id,omitempty"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// SignerInfo names who signed the newest manifest, and the oldest manifest
// of the unbroken run of manifests that key signed up to the newest.
type SignerInfo struct {
	PeerID string      `json:"peer_id"`
	Since  SignerSince `json:"since"`
}

// SignerSince is the first manifest a signer signed.
type SignerSince struct {
	ManifestCID string `json:"manifest_cid"`
	Date        string `json:"date,omitempty"`
}

// SignatureResult is the verdict on every signature of the chain.
type SignatureResult struct {
	OK bool `json:"ok"`
	// Trusted are the peer IDs required by --trust (or anchor.trust).
	Trusted   []string            `json:"trusted,omitempty"`
	Manifests []ManifestSignature `json:"manifests"`
	// Warnings are found but not failures without --trust (a change of
	// signer, unsigned manifests from before signing).
	Warnings []string `json:"warnings,omitempty"`
}

// verifySignatures judges the signatures of the head and of each manifest
// of the chain that verifyChain could follow: checks[i] is CheckSignature of
// chain.Manifests[i]'s bytes, taken while verifyChain held them (each
// manifest is read once).
//
// Every SSID chain starts at the unsigned seed manifest, so manifests older
// than the first (oldest) signed one are accepted unsigned: that signed
// manifest's previous_manifest_cid, and the chain behind it, fix their
// bytes, and they are reported "unsigned, covered by <its CID>". Newer than
// it, an unsigned manifest fails (a stripped signature), and so does an
// invalid signature. Without trust a change of signer is a warning. With
// trust, the head and every manifest from the first signed one on must be
// signed by a trusted peer; the unsigned older ones pass only when the
// manifest covering them is signed by a trusted peer.
func verifySignatures(o VerifyOptions, checks []SignatureCheck, chain ChainResult) (SignatureResult, *SignerInfo) {
	res := SignatureResult{Trusted: o.Trust}
	trusted := func(p string) bool { return slices.Contains(o.Trust, p) }
	for len(checks) < len(chain.Manifests) { // walkChain checks each one it appends; never a pass by omission
		checks = append(checks, SignatureCheck{Status: SigInvalid, Err: errors.New("its signature was not checked")})
	}
	// firstSigned is the oldest manifest that carries a signature at all.
	firstSigned := -1
	for i := len(chain.Manifests) - 1; i >= 0; i-- {
		if checks[i].Status != SigUnsigned {
			firstSigned = i
			break
		}
	}
	// cover is what vouches for the unsigned manifests older than it.
	coverOK, coverCID := false, ""
	if firstSigned >= 0 {
		c := checks[firstSigned]
		coverCID = chain.Manifests[firstSigned].CID
		coverOK = c.Status == SigValid && (len(o.Trust) == 0 || trusted(c.PeerID))
	}
	covered := 0
	for i, l := range chain.Manifests {
		c := checks[i]
		ms := ManifestSignature{CID: l.CID, LastUpdated: l.LastUpdated, Status: c.Status, PeerID: c.PeerID, OK: true}
		// The nearest older manifest that carries a valid signature.
		olderSigner, olderCID := "", ""
		for j := i + 1; j < len(checks); j++ {
			if checks[j].Status == SigValid {
				olderSigner, olderCID = checks[j].PeerID, chain.Manifests[j].CID
				break
			}
		}
		switch {
		case c.Status == SigInvalid:
			ms.OK = false
			ms.Detail = "signature invalid: " + c.Err.Error()
		case c.Status == SigUnsigned && i < firstSigned && olderSigner != "":
			ms.OK = false
			ms.Detail = fmt.Sprintf("unsigned, but the older manifest %s is signed by %s: the signature was stripped", olderCID, olderSigner)
		case c.Status == SigUnsigned && i < firstSigned:
			ms.OK = false
			ms.Detail = fmt.Sprintf("unsigned, but the older manifest %s carries a signature: a manifest after the first signed one must be signed", coverCID)
		case c.Status == SigUnsigned && firstSigned >= 0 && coverOK:
			covered++
			ms.Detail = fmt.Sprintf("unsigned, covered by %s (written before manifests were signed; the signed manifest's previous_manifest_cid chain fixes its bytes)", coverCID)
		case c.Status == SigUnsigned && len(o.Trust) > 0 && i == 0:
			ms.OK = false
			ms.Detail = fmt.Sprintf("unsigned; --trust requires the newest manifest to be signed by %s", trustList(o.Trust))
		case c.Status == SigUnsigned && len(o.Trust) > 0 && firstSigned >= 0:
			ms.OK = false
			ms.Detail = fmt.Sprintf("unsigned, and the manifest %s that would cover it is not signed by %s", coverCID, trustList(o.Trust))
		case c.Status == SigUnsigned && len(o.Trust) > 0:
			ms.OK = false
			ms.Detail = fmt.Sprintf("unsigned, and no manifest of the chain is signed; --trust requires %s to sign the newest", trustList(o.Trust))
		case c.Status == SigUnsigned:
			ms.Detail = "unsigned (written before manifests were signed)"
		case len(o.Trust) > 0 && !trusted(c.PeerID):
			ms.OK = false
			ms.Detail = fmt.Sprintf("signed by another key: %s is not trusted (--trust %s)", c.PeerID, trustList(o.Trust))
		case olderSigner != "" && olderSigner != c.PeerID:
			ms.Detail = fmt.Sprintf("signed by %s, but the older manifest %s by %s: the signing key changed", c.PeerID, olderCID, olderSigner)
			if len(o.Trust) == 0 {
				res.Warnings = append(res.Warnings, fmt.Sprintf("manifest %s: %s (pass --trust PEERID to require one signer)", l.CID, ms.Detail))
			}
		default:
			ms.Detail = "signed by " + c.PeerID
			if len(o.Trust) > 0 {
				ms.Detail += " (trusted)"
			}
		}
		res.Manifests = append(res.Manifests, ms)
	}
	res.OK = true
	unsigned := 0
	for _, m := range res.Manifests {
		res.OK = res.OK && m.OK
		if m.Status == SigUnsigned && m.OK {
			unsigned++
		}
	}
	switch {
	case covered > 0:
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d manifest(s) of the chain older than %s are unsigned (written before manifests were signed), covered by its signature through previous_manifest_cid", covered, coverCID))
	case unsigned > 0:
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d manifest(s) of the chain are unsigned and no signed manifest covers them; --trust would fail them", unsigned))
	}
	if len(checks) == 0 || checks[0].Status != SigValid {
		return res, nil
	}
	who := &SignerInfo{PeerID: checks[0].PeerID}
	for i := range checks {
		if checks[i].Status != SigValid || checks[i].PeerID != who.PeerID {
			break
		}
		who.Since = SignerSince{ManifestCID: chain.Manifests[i].CID, Date: chain.Manifests[i].LastUpdated}
	}
	return res, who
}

func trustList(ids []string) string {
	if len(ids) == 1 {
		return ids[0]
	}
	return fmt.Sprintf("one of %v", ids)
}

// errNoSigner is returned when a manifest would be written unsigned.
var errNoSigner = errors.New("no signer: every manifest written must be signed with the node's key (pass the node as the Signer)")
