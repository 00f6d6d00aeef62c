package storacha

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/multiformats/go-multicodec"
	"github.com/multiformats/go-varint"
)

// ErrBadReceipt marks a receipt whose signature does not verify against
// the configured service DID, or whose issuer is not that service. What it
// reports is not believed: nothing is marked stored or uploaded.
var ErrBadReceipt = errors.New("receipt signature does not verify")

// Evidence is one receipt kept as proof of what the service answered.
type Evidence struct {
	Ability string `json:"ability"`
	// About is the CAR CID (store/add) or the root (upload/add) the task named.
	About  string `json:"about"`
	Issuer string `json:"iss"`
	// Verified says the signature was checked against the configured
	// service DID; false means no service_did was configured.
	Verified bool `json:"verified"`
	// Error is the service's out.error name, when the receipt is a refusal
	// ("HandlerNotFound", "ServiceUnavailable").
	Error string `json:"error,omitempty"`
	// Receipt is the receipt, p and s, as canonical DAG-JSON. It is left
	// out when larger than MaxEvidenceReceipt (Size and SHA256 then
	// identify it).
	Receipt json.RawMessage `json:"receipt,omitempty"`
	// Redacted names what was taken out of the receipt before it was kept:
	// store/add's upload url query and headers are credentials for the
	// PUT. Its signature cannot be checked again then; it was checked when
	// the receipt came (Verified).
	Redacted []string `json:"redacted,omitempty"`
	// Size and SHA256 describe the receipt as received (canonical DAG-JSON).
	Size   int    `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// MaxEvidenceReceipt bounds one kept receipt: real ones are about a
// kilobyte; a service that sends megabytes does not get them stored.
const MaxEvidenceReceipt = 16 << 10

// receipt is one decoded bridge receipt.
type receipt struct {
	p       datamodel.Node
	s       []byte
	iss     string
	ok      datamodel.Node // nil when out is an error
	errName string         // out.error.name
	errMsg  string         // service's error name and message
	raw     []byte         // canonical DAG-JSON of {p, s}
	node    datamodel.Node // {p, s} as decoded
}

// decodeReceipts reads the bridge's answer: a DAG-JSON list of {p, s}
// (the spec's prose also calls it a single map; one map is taken as a list
// of one).
func decodeReceipts(body []byte) ([]*receipt, error) {
	nb := basicnode.Prototype.Any.NewBuilder()
	if err := dagjson.Decode(nb, bytes.NewReader(body)); err != nil {
		return nil, fmt.Errorf("answer is not DAG-JSON: %w", err)
	}
	n := nb.Build()
	var items []datamodel.Node
	switch n.Kind() {
	case datamodel.Kind_List:
		it := n.ListIterator()
		for !it.Done() {
			_, v, err := it.Next()
			if err != nil {
				return nil, err
			}
			items = append(items, v)
		}
	case datamodel.Kind_Map:
		items = []datamodel.Node{n}
	default:
		return nil, fmt.Errorf("answer is a %s, not a list of receipts", n.Kind())
	}
	out := make([]*receipt, 0, len(items))
	for i, it := range items {
		r, err := decodeReceipt(it)
		if err != nil {
			return nil, fmt.Errorf("receipt %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func decodeReceipt(n datamodel.Node) (*receipt, error) {
	// The bridge spec's first revision named the fields data and sig.
	pKey, sKey := "p", "s"
	if _, err := n.LookupByString("p"); err != nil {
		if _, err := n.LookupByString("data"); err == nil {
			pKey, sKey = "data", "sig"
		}
	}
	p, err := n.LookupByString(pKey)
	if err != nil || p.Kind() != datamodel.Kind_Map {
		return nil, errors.New("no payload map p")
	}
	sn, err := n.LookupByString(sKey)
	if err != nil {
		return nil, errors.New("no signature s")
	}
	s, err := sn.AsBytes()
	if err != nil {
		return nil, errors.New("signature s is not bytes")
	}
	r := &receipt{p: p, s: s}
	if v, err := p.LookupByString("iss"); err == nil {
		r.iss, _ = v.AsString()
	}
	out, err := p.LookupByString("out")
	if err != nil {
		return nil, errors.New("payload has no out")
	}
	if ok, err := out.LookupByString("ok"); err == nil {
		r.ok = ok
	} else if e, err := out.LookupByString("error"); err == nil {
		r.errMsg = errorText(e, out)
		if e.Kind() == datamodel.Kind_Map {
			if v, err := e.LookupByString("name"); err == nil {
				r.errName, _ = v.AsString()
			}
		}
	} else {
		return nil, errors.New("out has neither ok nor error")
	}
	var buf bytes.Buffer
	if err := dagjson.Encode(n, &buf); err != nil {
		return nil, fmt.Errorf("re-encoding: %w", err)
	}
	r.raw = buf.Bytes()
	r.node = n
	return r, nil
}

// Refusals by which a service says it takes no such request any more: the
// ucanto server's answer for a capability it has no handler for (Storacha
// removed store/add on 2026-01-29), and upload-service's answer for every
// write while it runs with writes disabled (since 2026-05-15).
const (
	HandlerNotFound    = "HandlerNotFound"
	ServiceUnavailable = "ServiceUnavailable"
)

func isGone(name string) bool { return name == HandlerNotFound || name == ServiceUnavailable }

// errorText renders out.error: {name, message} per the UCAN receipt shape;
// w3-store.md's older form is error: true next to a message.
func errorText(e, out datamodel.Node) string {
	str := func(n datamodel.Node, k string) string {
		if n == nil || n.Kind() != datamodel.Kind_Map {
			return ""
		}
		v, err := n.LookupByString(k)
		if err != nil {
			return ""
		}
		s, _ := v.AsString()
		return s
	}
	name, msg := str(e, "name"), str(e, "message")
	if msg == "" {
		msg = str(out, "message")
	}
	switch {
	case name != "" && msg != "":
		return name + ": " + msg
	case msg != "":
		return msg
	case name != "":
		return name
	}
	var buf bytes.Buffer
	if err := dagjson.Encode(e, &buf); err != nil {
		return "unreadable error"
	}
	return buf.String()
}

// verify checks s, a varsig (varint 0xd0ed eddsa, varint 64, 64 bytes), as
// key's ed25519 signature over the DAG-CBOR encoding of p, and that p.iss is
// the issuer expected.
func (r *receipt) verify(key crypto.PubKey, issuer string) error {
	if r.iss != issuer {
		return fmt.Errorf("%w: issued by %q, not by the configured service %q", ErrBadReceipt, r.iss, issuer)
	}
	code, n, err := varint.FromUvarint(r.s)
	if err != nil || multicodec.Code(code) != multicodec.Eddsa {
		return fmt.Errorf("%w: signature is not an ed25519 varsig", ErrBadReceipt)
	}
	size, m, err := varint.FromUvarint(r.s[n:])
	if err != nil || size != 64 || len(r.s) != n+m+64 {
		return fmt.Errorf("%w: ed25519 varsig of the wrong length (%d bytes)", ErrBadReceipt, len(r.s))
	}
	var payload bytes.Buffer
	if err := dagcbor.Encode(r.p, &payload); err != nil {
		return fmt.Errorf("%w: payload cannot be encoded as DAG-CBOR: %v", ErrBadReceipt, err)
	}
	ok, err := key.Verify(payload.Bytes(), r.s[n+m:])
	if err != nil || !ok {
		return fmt.Errorf("%w: signed by another key than service_did", ErrBadReceipt)
	}
	return nil
}

// str reads a string field of the ok value.
func okString(ok datamodel.Node, k string) string {
	if ok == nil {
		return ""
	}
	v, err := ok.LookupByString(k)
	if err != nil {
		return ""
	}
	if l, err := v.AsLink(); err == nil {
		return l.String()
	}
	s, _ := v.AsString()
	return s
}

// okHeaders reads store/add's headers map.
func okHeaders(ok datamodel.Node) (map[string]string, error) {
	h := map[string]string{}
	v, err := ok.LookupByString("headers")
	if err != nil {
		return h, nil
	}
	if v.Kind() != datamodel.Kind_Map {
		return nil, errors.New("headers is not a map")
	}
	it := v.MapIterator()
	for !it.Done() {
		k, val, err := it.Next()
		if err != nil {
			return nil, err
		}
		ks, _ := k.AsString()
		vs, err := val.AsString()
		if err != nil {
			return nil, fmt.Errorf("header %q is not a string", ks)
		}
		h[ks] = vs
	}
	return h, nil
}

// VerifyEvidence checks a kept receipt again, later and elsewhere (an
// auditor with the service's DID): its signature over p must verify against
// serviceDID and p.iss must be issuer ("" means serviceDID).
func VerifyEvidence(e Evidence, serviceDID, issuer string) error {
	if len(e.Receipt) == 0 {
		return fmt.Errorf("evidence for %s %s keeps no receipt (it was %d bytes, more than %d; sha256 %s)", e.Ability, e.About, e.Size, MaxEvidenceReceipt, e.SHA256)
	}
	key, err := parseDIDKey(serviceDID)
	if err != nil {
		return fmt.Errorf("service_did: %w", err)
	}
	if issuer == "" {
		issuer = serviceDID
	}
	rs, err := decodeReceipts(e.Receipt)
	if err != nil {
		return fmt.Errorf("evidence for %s %s: %w", e.Ability, e.About, err)
	}
	if len(rs) != 1 {
		return fmt.Errorf("evidence for %s %s holds %d receipts, want 1", e.Ability, e.About, len(rs))
	}
	if len(e.Redacted) > 0 {
		return fmt.Errorf("evidence for %s %s: %s was taken out before it was kept (credentials for the upload), so the signature cannot be checked again; it was checked when the receipt came (verified: %v)", e.Ability, e.About, strings.Join(e.Redacted, " and "), e.Verified)
	}
	if err := rs[0].verify(key, issuer); err != nil {
		return fmt.Errorf("evidence for %s %s: %w", e.Ability, e.About, err)
	}
	return nil
}
