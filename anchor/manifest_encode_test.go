package anchor

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
)

// referenceRecordJSON is how records were encoded before appendJSON: one
// encoding/json encoder per field (HTML left unescaped), then the whole
// object compacted by encoding/json as it does for every MarshalJSON.
func referenceRecordJSON(t *testing.T, r Record) []byte {
	t.Helper()
	if r.RemotePins == nil {
		r.RemotePins = []RemotePin{}
	}
	var kvs []KV
	for _, f := range r.fields() {
		v, err := marshal(f.ptr)
		if err != nil {
			t.Fatal(err)
		}
		kvs = append(kvs, KV{f.key, v})
	}
	kvs = append(kvs, r.Extra...)
	obj, _ := marshalObject(kvs)
	var c bytes.Buffer
	if err := json.Compact(&c, obj); err != nil {
		t.Fatal(err)
	}
	return c.Bytes()
}

// TestRecordEncodingUnchanged checks the reflection-free record encoder
// gives exactly the bytes encoding/json gave, for plain records and for
// strings every escaping rule touches (quotes, backslashes, control
// characters, HTML, invalid UTF-8, U+2028, non-ASCII), remote pins and
// pass-through keys; so manifests, their CIDs and signatures do not change.
func TestRecordEncodingUnchanged(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 1))
	odd := []string{"", "plain/path.yaml", `q"uote`, `back\slash`, "tab\tnl\ncr\r", "\x00\x01\x1f\x7f", "<a&b>", "bad\xffutf8", "line\u2028sep\u2029", "ünïcødé 名前", "emoji 🙂"}
	str := func() string {
		if rnd.IntN(3) == 0 {
			return odd[rnd.IntN(len(odd))]
		}
		b := make([]byte, rnd.IntN(40))
		for i := range b {
			b[i] = byte(rnd.IntN(256))
		}
		return string(b)
	}
	recs := []Record{{}, {FilePath: "a/b.yaml", FileName: "b.yaml", FileHash: "ab", IPFSCID: "Qm", FileSize: 1 << 40, Pinned: true, CIDProfile: "kubo-default"}}
	for range 500 {
		r := Record{
			FilePath: str(), FileName: str(), FileHash: str(), IPFSCID: str(), IPFSGatewayURL: str(),
			AnchoredAt: str(), EventType: str(), EventVersion: str(), EventTimestamp: str(),
			BlueprintVersion: str(), FileSize: rnd.Int64() - rnd.Int64(), EventProofAnchor: str(),
			Pinned: rnd.IntN(2) == 0, CIDProfile: str(),
		}
		for range rnd.IntN(3) {
			r.RemotePins = append(r.RemotePins, RemotePin{Service: str(), RequestID: str(), Status: str(), UpdatedAt: str()})
		}
		if rnd.IntN(4) == 0 {
			r.Extra = []KV{{"note<&>", json.RawMessage(`{ "a" : [1, 2.50, "x\u00e9"] , "b":null }`)}, {str(), json.RawMessage(`"v"`)}}
		}
		recs = append(recs, r)
	}
	for i, r := range recs {
		want := referenceRecordJSON(t, r)
		got, err := r.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("record %d:\n got %s\nwant %s", i, got, want)
		}
		viaJSON, err := marshal(r) // encoding/json calling MarshalJSON
		if err != nil || !bytes.Equal(viaJSON, want) {
			t.Fatalf("record %d through json.Marshal: %v\n got %s\nwant %s", i, err, viaJSON, want)
		}
	}
	// The whole array, as the manifest holds it.
	var ref bytes.Buffer
	ref.WriteByte('[')
	for i, r := range recs {
		if i > 0 {
			ref.WriteByte(',')
		}
		ref.Write(referenceRecordJSON(t, r))
	}
	ref.WriteByte(']')
	got, err := encodeRecords(recs)
	if err != nil || !bytes.Equal(got, ref.Bytes()) {
		t.Fatalf("encodeRecords differs from encoding/json (err %v)", err)
	}
	if got, _ := encodeRecords(nil); string(got) != "[]" {
		t.Errorf("no records: %s, want []", got)
	}
}

// TestCanonicalManifestUnchanged checks the signed bytes computed from the
// records equal what gowebpki/jcs gives for the whole manifest: for the
// real sample, for plain records, and for records that take the jcs path
// (hostile strings, remote pins, pass-through keys, huge sizes), with
// pass-through top-level keys (non-ASCII ones sort by UTF-16).
func TestCanonicalManifestUnchanged(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 2))
	m, _ := sampleManifest(t)
	odd := []string{`q"uote`, `back\slash`, "tab\t", "\x01\x7f", "<a&b>", "bad\xffutf8", "line\u2028sep", "ünïcødé", "emoji 🙂", "\ufb01"}
	for i := range 300 {
		r := Record{
			FilePath: "tree/d/f" + strconv.Itoa(i) + ".yaml", FileName: "f.yaml", FileHash: strconv.FormatUint(rnd.Uint64(), 16),
			IPFSCID: "QmX", IPFSGatewayURL: "https://ipfs.io/ipfs/QmX", AnchoredAt: "2026-12-02T08:00:00Z", EventType: "bench",
			EventVersion: "v1", EventTimestamp: "2026-12-02T07:00:00Z", BlueprintVersion: "v4.3", FileSize: rnd.Int64N(1 << 40),
			EventProofAnchor: "ab", Pinned: rnd.IntN(2) == 0, CIDProfile: "kubo-default",
		}
		switch rnd.IntN(6) {
		case 0:
			r.FileName = odd[rnd.IntN(len(odd))]
		case 1:
			r.RemotePins = []RemotePin{{Service: "s", RequestID: odd[rnd.IntN(len(odd))], Status: "pinned"}}
		case 2:
			r.Extra = []KV{{"zz_note", json.RawMessage(`{"b": 1.50, "a": [1e3, "\u00e9"]}`)}}
		case 3:
			r.FileSize = 1<<53 + rnd.Int64N(1000)
		}
		m.Records = append(m.Records, r)
	}
	m.keys = append(m.keys, KV{"ünknown", json.RawMessage(`{"y":2,"x":1}`)}, KV{"\U0001F600", json.RawMessage(`1.0`)}, KV{"\uff61", json.RawMessage(`"x"`)})
	if err := m.prepare(); err != nil {
		t.Fatal(err)
	}
	kvs, err := m.keysEncoded()
	if err != nil {
		t.Fatal(err)
	}
	want, err := canonicalize(kvs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.canonicalManifest(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("canonical form differs from jcs at byte %d:\n got …%s\nwant …%s", i, got[max(0, i-80):min(len(got), i+80)], want[max(0, i-80):min(len(want), i+80)])
	}
	// A duplicate top-level key is refused, as jcs refuses it.
	m.keys = append(m.keys, KV{"ünknown", json.RawMessage(`1`)})
	if _, err := m.canonicalManifest(nil); err == nil {
		t.Error("a duplicate top-level key was canonicalised")
	}
}
