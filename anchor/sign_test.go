package anchor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gowebpki/jcs"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// keySigner signs with a real libp2p ed25519 key held in memory: the same
// code path as the node's key, without a repo.
type keySigner struct {
	sk  crypto.PrivKey
	pid peer.ID
}

func newKeySigner(t testing.TB) keySigner {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return keySigner{sk, pid}
}

func (k keySigner) PeerID() string                   { return k.pid.String() }
func (k keySigner) Sign(data []byte) ([]byte, error) { return k.sk.Sign(data) }

// TestCanonicalFormRFC8785 checks the canonical form against RFC 8785's
// published examples: section 3.2.2 (values), 3.2.3 (key order by UTF-16
// code units) and the number formatting table of appendix B.
func TestCanonicalFormRFC8785(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{
			"3.2.2 values",
			`{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
			  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
			  "literals": [null, true, false]}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			"3.2.3 sorting",
			`{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
			  "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"דּ\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{
			"the signature key is left out",
			`{"b": 1, "signature": {"peer_id": "x", "alg": "ed25519", "sig": "y"}, "a": [1.0, "\u00e9"]}`,
			`{"a":[1,"é"],"b":1}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CanonicalForm([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// Appendix B: IEEE-754 bit patterns and their JSON text.
	for _, tc := range []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	} {
		f := math.Float64frombits(tc.bits)
		in := strconv.FormatFloat(f, 'e', -1, 64) // any exact JSON text of the double
		got, err := CanonicalForm([]byte(`{"n":` + in + `}`))
		if err != nil {
			t.Errorf("%016x (%s): %v", tc.bits, in, err)
			continue
		}
		if want := `{"n":` + tc.want + `}`; string(got) != want {
			t.Errorf("%016x (%s): got %s, want %s", tc.bits, in, got, want)
		}
	}
}

// signedSample is the real SSID manifest with records added, signed by k.
func signedSample(t *testing.T, k keySigner) []byte {
	t.Helper()
	m, _ := sampleManifest(t)
	m.Records = append(m.Records,
		Record{FilePath: "a/x.log", FileName: "x.log", FileHash: strings.Repeat("ab", 32), IPFSCID: "QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u",
			AnchoredAt: "2026-01-02T00:00:00Z", FileSize: 1234, Pinned: true,
			Extra: []KV{{"future_key", json.RawMessage(`{"k":1.50,"s":"\u00e9"}`)}}},
		Record{FilePath: "b/y.zip", FileName: "y.zip", FileHash: strings.Repeat("cd", 32), IPFSCID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
			AnchoredAt: "2026-01-03T00:00:00Z", CIDProfile: node.CIDProfileUnixFSv12025},
	)
	m.PreviousCID = "QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u"
	if err := m.Touch(time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC), "embedded-ipfs:"+k.PeerID()); err != nil {
		t.Fatal(err)
	}
	out, err := m.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSignedManifest: Marshal signs; the signature is readable by a third
// party with the documented recipe (parse, drop "signature", RFC 8785,
// Ed25519 with the key inside the peer ID, base64 signature); re-signing
// replaces the signature; nothing is written unsigned by mistake.
func TestSignedManifest(t *testing.T) {
	k := newKeySigner(t)
	out := signedSample(t, k)
	if c := CheckSignature(out); c.Status != SigValid || c.PeerID != k.PeerID() {
		t.Fatalf("fresh signature: %+v", c)
	}

	// The recipe of the README, with nothing from this package.
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	var sig Signature
	if err := json.Unmarshal(doc["signature"], &sig); err != nil {
		t.Fatal(err)
	}
	if sig.Alg != "ed25519" || sig.PeerID != k.PeerID() {
		t.Fatalf("signature key %+v", sig)
	}
	delete(doc, "signature")
	plain, _ := json.Marshal(doc)
	canon, err := jcs.Transform(plain)
	if err != nil {
		t.Fatal(err)
	}
	sigBytes, err := base64.StdEncoding.DecodeString(sig.Sig)
	if err != nil || len(sigBytes) != ed25519.SignatureSize {
		t.Fatalf("sig is not a base64 64-byte signature: %q %v", sig.Sig, err)
	}
	pid, _ := peer.Decode(sig.PeerID)
	pub, _ := pid.ExtractPublicKey()
	raw, _ := pub.Raw()
	// The README's byte layout of an ed25519 peer ID.
	if idb := []byte(pid); len(idb) != 38 || !bytes.Equal(idb[:6], []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}) || !bytes.Equal(idb[6:], raw) {
		t.Fatalf("peer ID bytes %x do not hold the key %x as documented", idb, raw)
	}
	if !ed25519.Verify(ed25519.PublicKey(raw), canon, sigBytes) {
		t.Fatal("the documented recipe does not verify the signature")
	}
	if mine, _ := CanonicalForm(out); !bytes.Equal(mine, canon) {
		t.Fatalf("canonical forms differ:\n%s\n%s", mine, canon)
	}

	// Parse, change, sign with another key: one signature key, the new one.
	k2 := newKeySigner(t)
	m, err := ParseManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	m.Records[0].FileName = "changed"
	out2, err := m.Marshal(k2)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out2, []byte(`"signature"`)); n != 1 {
		t.Fatalf("%d signature keys after re-signing", n)
	}
	if c := CheckSignature(out2); c.Status != SigValid || c.PeerID != k2.PeerID() {
		t.Fatalf("re-signed: %+v", c)
	}
	unsigned, err := m.MarshalUnsigned()
	if err != nil {
		t.Fatal(err)
	}
	if c := CheckSignature(unsigned); c.Status != SigUnsigned {
		t.Fatalf("MarshalUnsigned kept a signature: %+v", c)
	}
	if _, err := m.Marshal(nil); err == nil || !strings.Contains(err.Error(), "signed") {
		t.Fatalf("Marshal(nil) = %v, want an error saying manifests must be signed", err)
	}
}

// TestSignatureEveryByte changes each byte of a signed manifest in turn:
// no change leaves a valid signature by the original key. A change either
// makes the JSON unreadable, or the signature fails, or (renaming the
// "signature" key) the manifest becomes unsigned.
func TestSignatureEveryByte(t *testing.T) {
	k := newKeySigner(t)
	out := signedSample(t, k)
	for i := range out {
		b := bytes.Clone(out)
		b[i] = 'x'
		if out[i] == 'x' {
			b[i] = 'y'
		}
		if c := CheckSignature(b); c.Status == SigValid {
			t.Fatalf("byte %d (%q in %q) changed and the signature still verifies", i, out[i], out[max(0, i-20):min(len(out), i+20)])
		}
	}
	t.Logf("%d single-byte changes, each detected", len(out))
}

func TestCheckSignatureNamesTheProblem(t *testing.T) {
	k := newKeySigner(t)
	out := signedSample(t, k)
	other := newKeySigner(t)
	var doc map[string]json.RawMessage
	json.Unmarshal(out, &doc)
	var sig Signature
	json.Unmarshal(doc["signature"], &sig)
	for _, tc := range []struct {
		name string
		edit func(Signature) Signature
		want string
	}{
		{"peer_id of another key", func(s Signature) Signature { s.PeerID = other.PeerID(); return s }, "does not verify with the key of " + other.PeerID()},
		{"not a peer ID", func(s Signature) Signature { s.PeerID = "alice"; return s }, "not a libp2p peer ID"},
		{"other algorithm", func(s Signature) Signature { s.Alg = "rsa"; return s }, `only "ed25519"`},
		{"not base64", func(s Signature) Signature { s.Sig = "!!"; return s }, "not base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest(out)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(tc.edit(sig))
			for i := range m.keys {
				if m.keys[i].Key == keySignature {
					m.keys[i].Value = raw
				}
			}
			kvs, err := m.keysEncoded()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := marshalObject(kvs)
			c := CheckSignature(b)
			if c.Status != SigInvalid || c.Err == nil || !strings.Contains(c.Err.Error(), tc.want) {
				t.Fatalf("got %+v, want invalid mentioning %q", c, tc.want)
			}
		})
	}
	t.Run("two signature keys", func(t *testing.T) {
		b := bytes.Replace(out, []byte(`"signature"`), []byte(`"signature": {}, "signature"`), 1)
		if c := CheckSignature(b); c.Status != SigInvalid || !strings.Contains(c.Err.Error(), "at most one") {
			t.Fatalf("got %+v", c)
		}
	})
}

// stBuild anchors a fresh tree (no manifest before) in two runs on a real
// node, kubo-default then unixfs-v1-2025: every manifest is signed.
func stBuild(t *testing.T, dir string) vtFixture {
	t.Helper()
	rootDir := filepath.Join(dir, "root")
	paths := tree.DefaultPaths()
	vtWrite(t, filepath.Join(rootDir, paths.EventsLog), vtReadTestdata(t, "registry_events.log"))
	vtWrite(t, filepath.Join(rootDir, paths.DashboardCSV[0]), vtReadTestdata(t, "dashboard_data.csv"))
	vtWrite(t, filepath.Join(rootDir, "data/small.txt"), []byte("a small governance note\n"))
	root, err := tree.OpenRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	f := vtFixture{dir: dir, root: root, paths: paths, repo: filepath.Join(dir, "repo")}
	if _, err := node.Init(f.repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	vtRun(t, f, node.CIDProfileDefault, time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC))
	vtWrite(t, filepath.Join(rootDir, "data/new.bin"), vtRandom(3, 3<<19))
	if _, err := tree.AppendEvent(filepath.Join(rootDir, paths.EventsLog), tree.NewEvent{
		Timestamp: "2026-02-01T09:00:00Z", Event: "governance_review", Version: "v4.3.1",
		CommitHash: "abc123", Blueprint: "v4.3", Root24Lock: "active", ComplianceScore: "100/100", EmittedBy: "test",
	}); err != nil {
		t.Fatal(err)
	}
	vtRun(t, f, node.CIDProfileUnixFSv12025, time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC))
	return f
}

func stPeerID(t *testing.T, f vtFixture) string {
	t.Helper()
	var id string
	vtWithNode(t, f, func(n *node.Node) { id = n.PeerID() })
	return id
}

// stWantSig asserts the signature verdict of the manifest at idx (0 is
// the newest).
func stWantSig(t *testing.T, rep *VerifyReport, idx int, status string, ok bool, detail string) {
	t.Helper()
	if idx >= len(rep.Signatures.Manifests) {
		t.Fatalf("no signature verdict %d: %+v", idx, rep.Signatures)
	}
	m := rep.Signatures.Manifests[idx]
	if m.Status != status || m.OK != ok || !strings.Contains(m.Detail, detail) {
		t.Fatalf("manifest %d: %+v, want status %s ok %v detail containing %q", idx, m, status, ok, detail)
	}
	if !ok && (rep.OK || rep.Signatures.OK) {
		t.Fatalf("a failed signature must fail the report")
	}
}

// stResign re-signs a manifest read from the file with s.
func stResign(t *testing.T, f vtFixture, s Signer, edit func(*Manifest)) {
	t.Helper()
	m, _, err := LoadManifest(f.manifestPath())
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	b, err := m.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	vtWrite(t, f.manifestPath(), b)
}

// TestVerifySignatureTamperMatrix: each way of forging the signed chain is
// named in the report; with --trust each one fails verification.
func TestVerifySignatureTamperMatrix(t *testing.T) {
	pristine := stBuild(t, t.TempDir())
	owner := stPeerID(t, pristine)
	attacker := newKeySigner(t)
	trustOwner := func(o *VerifyOptions) { o.Trust = []string{owner} }

	t.Run("pristine", func(t *testing.T) {
		rep := vtVerify(t, pristine, nil)
		if !rep.OK || len(rep.Signatures.Manifests) != 2 {
			t.Fatalf("pristine: %+v %+v", rep.Chain, rep.Signatures)
		}
		stWantSig(t, rep, 0, SigValid, true, "signed by "+owner)
		stWantSig(t, rep, 1, SigValid, true, "signed by "+owner)
		if rep.Signer == nil || rep.Signer.PeerID != owner || rep.Signer.Since.ManifestCID != rep.Chain.Manifests[1].CID || rep.Signer.Since.Date != "2026-01-02T09:00:00Z" {
			t.Fatalf("signer %+v, want %s since the first manifest %s", rep.Signer, owner, rep.Chain.Manifests[1].CID)
		}
		if rep = vtVerify(t, pristine, trustOwner); !rep.OK {
			t.Fatalf("pristine with --trust %s: %+v", owner, rep.Signatures)
		}
		rep = vtVerify(t, pristine, func(o *VerifyOptions) { o.Trust = []string{attacker.PeerID()} })
		stWantSig(t, rep, 0, SigValid, false, "not trusted")
	})

	type verdict struct {
		idx    int
		status string
		ok     bool
		detail string
	}
	cases := []struct {
		name   string
		tamper func(t *testing.T, f vtFixture)
		// plain is the verdict without --trust, trusted the one with it.
		plain, trusted verdict
		signer         func() string // who the report names as signer ("" for none)
	}{
		{
			name: "a byte of a record changed (event_type, which no other check reads)",
			tamper: func(t *testing.T, f vtFixture) {
				b, _ := os.ReadFile(f.manifestPath())
				i := bytes.LastIndex(b, []byte(`"governance_review"`))
				b[i+1] = 'G'
				vtWrite(t, f.manifestPath(), b)
			},
			plain:   verdict{0, SigInvalid, false, "does not verify with the key of " + owner},
			trusted: verdict{0, SigInvalid, false, "changed after it was signed"},
			signer:  func() string { return "" },
		},
		{
			name: "a key added at the top level",
			tamper: func(t *testing.T, f vtFixture) {
				b, _ := os.ReadFile(f.manifestPath())
				b = bytes.Replace(b, []byte("{\n"), []byte("{\n  \"approved_by\": \"mallory\",\n"), 1)
				vtWrite(t, f.manifestPath(), b)
			},
			plain:   verdict{0, SigInvalid, false, "signature invalid"},
			trusted: verdict{0, SigInvalid, false, "signature invalid"},
			signer:  func() string { return "" },
		},
		{
			name: "signature stripped",
			tamper: func(t *testing.T, f vtFixture) {
				vtEditManifest(t, f, func(m *Manifest) {})
			},
			plain:   verdict{0, SigUnsigned, false, "the signature was stripped"},
			trusted: verdict{0, SigUnsigned, false, "the signature was stripped"},
			signer:  func() string { return "" },
		},
		{
			name: "key replaced (peer_id of another key, signature kept)",
			tamper: func(t *testing.T, f vtFixture) {
				b, _ := os.ReadFile(f.manifestPath())
				vtWrite(t, f.manifestPath(), bytes.Replace(b, []byte(owner), []byte(attacker.PeerID()), 1))
			},
			plain:   verdict{0, SigInvalid, false, "does not verify with the key of " + attacker.PeerID()},
			trusted: verdict{0, SigInvalid, false, "does not verify"},
			signer:  func() string { return "" },
		},
		{
			name:    "re-signed with another key",
			tamper:  func(t *testing.T, f vtFixture) { stResign(t, f, attacker, nil) },
			plain:   verdict{0, SigValid, true, "the signing key changed"},
			trusted: verdict{0, SigValid, false, "signed by another key"},
			signer:  attacker.PeerID,
		},
		{
			name: "a record edited and re-signed with another key",
			tamper: func(t *testing.T, f vtFixture) {
				stResign(t, f, attacker, func(m *Manifest) { m.Records[len(m.Records)-1].EventVersion = "v9" })
			},
			plain:   verdict{0, SigValid, true, "signed by " + attacker.PeerID()},
			trusted: verdict{0, SigValid, false, "is not trusted"},
			signer:  attacker.PeerID,
		},
		{
			name: "whole chain rewritten and signed with another key",
			tamper: func(t *testing.T, f vtFixture) {
				head, _, err := LoadManifest(f.manifestPath())
				if err != nil {
					t.Fatal(err)
				}
				prevCID, _ := cid.Decode(head.PreviousCID)
				var buf bytes.Buffer
				var forged cid.Cid
				vtWithNode(t, f, func(n *node.Node) {
					if _, err := n.ReadFile(context.Background(), prevCID, 1<<30, &buf); err != nil {
						t.Fatal(err)
					}
					prev, err := ParseManifest(buf.Bytes())
					if err != nil {
						t.Fatal(err)
					}
					fb, err := prev.Marshal(attacker)
					if err != nil {
						t.Fatal(err)
					}
					b, err := n.NewBatch(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if forged, err = b.AddBytes(fb, manifestParams); err != nil {
						t.Fatal(err)
					}
					b.Link("forged.json", forged)
					if _, err := b.Commit("forgery"); err != nil {
						t.Fatal(err)
					}
				})
				stResign(t, f, attacker, func(m *Manifest) { m.PreviousCID = forged.String() })
			},
			plain:   verdict{1, SigValid, true, "signed by " + attacker.PeerID()},
			trusted: verdict{1, SigValid, false, "signed by another key"},
			signer:  attacker.PeerID,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "case")
			vtCopy(t, pristine.dir, dir)
			root, err := tree.OpenRoot(filepath.Join(dir, "root"))
			if err != nil {
				t.Fatal(err)
			}
			f := vtFixture{dir: dir, root: root, paths: pristine.paths, repo: filepath.Join(dir, "repo")}
			tc.tamper(t, f)
			rep := vtVerify(t, f, nil)
			stWantSig(t, rep, tc.plain.idx, tc.plain.status, tc.plain.ok, tc.plain.detail)
			if got, want := rep.Signer, tc.signer(); (got == nil) != (want == "") || (got != nil && got.PeerID != want) {
				t.Fatalf("signer %+v, want %q", got, want)
			}
			if tc.plain.ok && tc.signer() == attacker.PeerID() && rep.Chain.OK && rep.Failed == 0 && !rep.OK {
				t.Fatalf("without --trust a change of signer is a warning, not a failure: %+v", rep.Signatures)
			}
			if tc.plain.ok && len(rep.Signatures.Warnings) == 0 && rep.Signer.Since.ManifestCID == rep.ManifestCID {
				t.Fatalf("a change of signer must be warned about: %+v", rep.Signatures)
			}
			rep = vtVerify(t, f, trustOwner)
			stWantSig(t, rep, tc.trusted.idx, tc.trusted.status, tc.trusted.ok, tc.trusted.detail)
			if rep.OK {
				t.Fatal("with --trust the forgery passed")
			}
			t.Logf("without --trust: %s; with --trust %s: %s", rep.Signatures.Manifests[tc.plain.idx].Status, owner, rep.Signatures.Manifests[tc.trusted.idx].Detail)
		})
	}
}

// TestVerifyUnsignedHistory: the shipped sample manifest, written before
// manifests were signed, sits at the start of the chain. It is reported as
// "unsigned, covered by" the first signed manifest, whose
// previous_manifest_cid fixes its bytes, and passes, with --trust too
// (issue 19.3: main failed every real SSID chain under --trust).
func TestVerifyUnsignedHistory(t *testing.T) {
	f := vtBuild(t, t.TempDir())
	owner := stPeerID(t, f)
	rep := vtVerify(t, f, nil)
	if !rep.OK {
		t.Fatalf("an unsigned manifest from before signing must not fail: %+v", rep.Signatures)
	}
	firstSigned := rep.Chain.Manifests[1].CID
	stWantSig(t, rep, 2, SigUnsigned, true, "unsigned, covered by "+firstSigned)
	if rep.Signer == nil || rep.Signer.PeerID != owner || rep.Signer.Since.ManifestCID != firstSigned {
		t.Fatalf("signer %+v", rep.Signer)
	}
	if w := strings.Join(rep.Signatures.Warnings, " "); !strings.Contains(w, "1 manifest(s) of the chain older than "+firstSigned+" are unsigned") {
		t.Fatalf("warnings %q", rep.Signatures.Warnings)
	}
	rep = vtVerify(t, f, func(o *VerifyOptions) { o.Trust = []string{owner} })
	if !rep.OK || !rep.Signatures.OK {
		t.Fatalf("--trust %s on a chain that starts at the seed manifest: %+v", owner, rep.Signatures)
	}
	stWantSig(t, rep, 2, SigUnsigned, true, "unsigned, covered by "+firstSigned)
	stWantSig(t, rep, 1, SigValid, true, "(trusted)")
	stWantSig(t, rep, 0, SigValid, true, "(trusted)")
	// Covered only by a trusted signature: another peer's signature on the
	// first signed manifest covers nothing under --trust.
	other := newKeySigner(t)
	rep = vtVerify(t, f, func(o *VerifyOptions) { o.Trust = []string{other.PeerID()} })
	stWantSig(t, rep, 2, SigUnsigned, false, "is not signed by "+other.PeerID())
	stWantSig(t, rep, 0, SigValid, false, "not trusted")
}

// TestVerifyTrustUnsignedAfterSigned: an unsigned manifest after the first
// signed one fails, with and without --trust, whether it is the head or in
// the middle of the chain; an unsigned chain fails --trust at its head.
func TestVerifyTrustUnsignedAfterSigned(t *testing.T) {
	pristine := vtBuild(t, t.TempDir())
	owner := stPeerID(t, pristine)
	trust := func(o *VerifyOptions) { o.Trust = []string{owner} }
	// appendManifest writes a successor of the tree's manifest, signed by
	// the repo's node key or unsigned, as the tree's manifest; the old one
	// is stored in the repo as its previous_manifest_cid.
	appendManifest := func(t *testing.T, f vtFixture, signed bool) {
		t.Helper()
		m, old, err := LoadManifest(f.manifestPath())
		if err != nil {
			t.Fatal(err)
		}
		vtWithNode(t, f, func(n *node.Node) {
			b, err := n.NewBatch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			c, err := b.AddBytes(old, manifestParams)
			if err != nil {
				t.Fatal(err)
			}
			b.Link("previous.json", c)
			if _, err := b.Commit("test"); err != nil {
				t.Fatal(err)
			}
			m.PreviousCID = c.String()
			out, err := m.MarshalUnsigned()
			if signed {
				out, err = m.Marshal(n)
			}
			if err != nil {
				t.Fatal(err)
			}
			vtWrite(t, f.manifestPath(), out)
		})
	}

	t.Run("unsigned head after signed ones", func(t *testing.T) {
		f := vtClone(t, pristine)
		appendManifest(t, f, false)
		rep := vtVerify(t, f, nil)
		stWantSig(t, rep, 0, SigUnsigned, false, "the signature was stripped")
		rep = vtVerify(t, f, trust)
		stWantSig(t, rep, 0, SigUnsigned, false, "the signature was stripped")
		stWantSig(t, rep, 3, SigUnsigned, true, "unsigned, covered by")
	})
	t.Run("unsigned manifest between signed ones", func(t *testing.T) {
		f := vtClone(t, pristine)
		appendManifest(t, f, false)
		appendManifest(t, f, true)
		rep := vtVerify(t, f, trust)
		if len(rep.Signatures.Manifests) != 5 {
			t.Fatalf("chain of %d, want 5: %+v", len(rep.Signatures.Manifests), rep.Signatures)
		}
		stWantSig(t, rep, 0, SigValid, true, "(trusted)")
		stWantSig(t, rep, 1, SigUnsigned, false, "the signature was stripped")
		stWantSig(t, rep, 4, SigUnsigned, true, "unsigned, covered by")
		rep = vtVerify(t, f, nil)
		stWantSig(t, rep, 1, SigUnsigned, false, "the signature was stripped")
	})
	t.Run("nothing signed", func(t *testing.T) {
		dir := t.TempDir()
		rootDir := filepath.Join(dir, "root")
		paths := tree.DefaultPaths()
		vtWrite(t, filepath.Join(rootDir, paths.Manifest), vtReadTestdata(t, "ipfs_anchor_manifest.json"))
		root, err := tree.OpenRoot(rootDir)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		f := vtFixture{dir: dir, root: root, paths: paths, repo: filepath.Join(dir, "repo")}
		if _, err := node.Init(f.repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
			t.Fatal(err)
		}
		appendManifest(t, f, false) // the seed and an unsigned successor
		rep := vtVerify(t, f, nil)
		if !rep.Signatures.OK || !strings.Contains(strings.Join(rep.Signatures.Warnings, " "), "no signed manifest covers them") {
			t.Fatalf("unsigned chain without --trust: %+v", rep.Signatures)
		}
		rep = vtVerify(t, f, trust)
		stWantSig(t, rep, 0, SigUnsigned, false, "--trust requires the newest manifest to be signed by "+owner)
		stWantSig(t, rep, 1, SigUnsigned, false, "no manifest of the chain is signed")
	})
}

func TestValidatePeerID(t *testing.T) {
	k := newKeySigner(t)
	if err := ValidatePeerID(k.PeerID()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "12D3KooW", "QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u"} {
		if err := ValidatePeerID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestRewriteChainsAndSigns: a manifest change outside an anchoring run (a
// remote pin status) goes through Rewrite, which chains, pins and signs it:
// verify passes with --trust and the chain grows by one.
func TestRewriteChainsAndSigns(t *testing.T) {
	f := stBuild(t, t.TempDir())
	owner := stPeerID(t, f)
	before, _, err := LoadManifest(f.manifestPath())
	if err != nil {
		t.Fatal(err)
	}
	vtWithNode(t, f, func(n *node.Node) {
		res, err := Rewrite(context.Background(), RunOptions{
			Root: f.root, Paths: f.paths, Signer: n,
			OpenBatch: func(ctx context.Context) (Batch, error) { return n.NewBatch(ctx) },
			Now:       func() time.Time { return time.Date(2026, 2, 2, 9, 0, 0, 0, time.UTC) },
		}, func(m *Manifest) error {
			m.Records[0].RemotePins = append(m.Records[0].RemotePins, RemotePin{Service: "pinata", RequestID: "r1", Status: "pinned", UpdatedAt: "2026-02-02T09:00:00Z"})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Rewritten || res.SignedBy != owner || res.PreviousCID == "" {
			t.Fatalf("rewrite result %+v", res)
		}
	})
	rep := vtVerify(t, f, func(o *VerifyOptions) { o.Trust = []string{owner} })
	if !rep.OK || len(rep.Chain.Manifests) != 3 || !rep.ManifestStored {
		t.Fatalf("after Rewrite: ok %v chain %+v stored %v signatures %+v", rep.OK, rep.Chain, rep.ManifestStored, rep.Signatures)
	}
	after, _, _ := LoadManifest(f.manifestPath())
	if after.Processed != before.Processed || len(after.Records) != len(before.Records) || after.Records[0].RemotePins[0].RequestID != "r1" {
		t.Fatalf("Rewrite changed more than the edit: %+v", after.Processed)
	}
	if _, err := Rewrite(context.Background(), RunOptions{Root: f.root, Paths: f.paths,
		OpenBatch: func(ctx context.Context) (Batch, error) { return nil, nil }}, func(*Manifest) error { return nil }); err == nil || !strings.Contains(err.Error(), "signed") {
		t.Fatalf("Rewrite without a signer: %v", err)
	}
}

// FuzzCheckSignature: whatever the bytes, checking never panics, and a
// valid verdict names the one key that signed the seed: no edit yields a
// valid signature by anyone else.
func FuzzCheckSignature(f *testing.F) {
	sk, err := crypto.UnmarshalEd25519PrivateKey(bytes.Repeat([]byte{7}, 64))
	if err != nil {
		f.Fatal(err)
	}
	pid, _ := peer.IDFromPrivateKey(sk)
	k := keySigner{sk, pid}
	m := NewManifest("v4.3", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m.Records = []Record{{FilePath: "a/b.txt", FileHash: strings.Repeat("0", 64), IPFSCID: "QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u", FileSize: 3}}
	signed, err := m.Marshal(k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add([]byte(`{"signature":{"peer_id":"","alg":"ed25519","sig":""}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := CheckSignature(data)
		if c.Status == SigValid && c.PeerID != k.PeerID() {
			t.Fatalf("valid signature by %s, which never signed anything", c.PeerID)
		}
		if c.Status == SigInvalid && c.Err == nil {
			t.Fatal("invalid without a reason")
		}
	})
}
