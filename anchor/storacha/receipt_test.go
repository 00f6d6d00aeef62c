package storacha

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/multiformats/go-multicodec"
	"github.com/multiformats/go-varint"
)

// TestPayloadIsCanonicalDAGCBOR: the bytes a receipt is signed over are
// DAG-CBOR with map keys sorted length first (RFC 7049 canonical), as the JS
// service encodes them, whatever order the JSON arrived in.
func TestPayloadIsCanonicalDAGCBOR(t *testing.T) {
	p, err := qp.BuildMap(basicnode.Prototype.Any, 6, func(ma datamodel.MapAssembler) {
		for _, k := range []string{"out", "iss", "ran", "meta", "fx", "prf"} {
			qp.MapEntry(ma, k, qp.Int(1))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := dagcbor.Encode(p, &buf); err != nil {
		t.Fatal(err)
	}
	// a6 (map of 6), then per key: 0x60|len, key, 0x01.
	want := []byte{0xa6}
	for _, k := range []string{"fx", "iss", "out", "prf", "ran", "meta"} {
		want = append(want, 0x60|byte(len(k)))
		want = append(want, k...)
		want = append(want, 0x01)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("DAG-CBOR\n got %x\nwant %x", buf.Bytes(), want)
	}
}

func signedReceipt(t *testing.T, key ed25519.PrivateKey, iss string, sigPrefix []byte) *receipt {
	t.Helper()
	p, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "iss", qp.String(iss))
		qp.MapEntry(ma, "out", qp.Map(1, func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "ok", qp.Map(0, func(datamodel.MapAssembler) {}))
		}))
	})
	if err != nil {
		t.Fatal(err)
	}
	var payload bytes.Buffer
	if err := dagcbor.Encode(p, &payload); err != nil {
		t.Fatal(err)
	}
	s := append(append([]byte{}, sigPrefix...), ed25519.Sign(key, payload.Bytes())...)
	return &receipt{p: p, s: s, iss: iss}
}

func TestReceiptVerify(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	did := DIDKey(key.Public().(ed25519.PublicKey))
	pub, err := parseDIDKey(did)
	if err != nil {
		t.Fatal(err)
	}
	varsig := []byte{0xed, 0xa1, 0x03, 0x40} // varint 0xd0ed, varint 64
	if got := append(varint.ToUvarint(uint64(multicodec.Eddsa)), 0x40); !bytes.Equal(got, varsig) {
		t.Fatalf("varsig header %x, the spec's is %x", got, varsig)
	}
	cases := []struct {
		name   string
		r      *receipt
		issuer string
		ok     bool
		says   string
	}{
		{"good", signedReceipt(t, key, did, varsig), did, true, ""},
		{"did:web issuer named by service_issuer", signedReceipt(t, key, "did:web:up.storacha.network", varsig), "did:web:up.storacha.network", true, ""},
		{"other key", signedReceipt(t, other, did, varsig), did, false, "signed by another key"},
		{"other issuer", signedReceipt(t, key, "did:key:z6MkSomeoneElse", varsig), did, false, "issued by"},
		{"not eddsa", signedReceipt(t, key, did, []byte{0xe7, 0x01, 0x40}), did, false, "not an ed25519 varsig"},
		{"bad length", signedReceipt(t, key, did, []byte{0xed, 0xa1, 0x03, 0x41}), did, false, "wrong length"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.verify(pub, tc.issuer)
			if tc.ok != (err == nil) {
				t.Fatalf("verify = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok && (!errors.Is(err, ErrBadReceipt) || !strings.Contains(err.Error(), tc.says)) {
				t.Fatalf("error %q: want ErrBadReceipt saying %q", err, tc.says)
			}
		})
	}
	// A tampered payload no longer verifies.
	r := signedReceipt(t, key, did, varsig)
	r.s[len(r.s)-1] ^= 1
	if err := r.verify(pub, did); !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("flipped signature bit verified: %v", err)
	}
}

func TestDecodeReceipts(t *testing.T) {
	// The shape of the spec's example answer (p and s, bytes and links in
	// DAG-JSON form), with an error receipt next to an ok one.
	body := `[{"p":{"fx":{"fork":[]},"iss":"did:web:example","meta":{},"out":{"ok":{"status":"done","link":{"/":"bagbaierah5sr5zt3tqgkrixptqzyerpxp5vwyjlx3n5frp2tbnr3clqrmrqa"}}},"prf":[],"ran":{"/":"bafyreienff66mf7nse3rm2njikxlshja6d5dkr4fpnyzeik5l6vils6fvq"}},"s":{"/":{"bytes":"7aEDQAAA"}}},
	{"p":{"iss":"did:web:example","out":{"error":{"name":"Unauthorized","message":"Claim {\"can\":\"store/add\"} is not authorized"}}},"s":{"/":{"bytes":"7aEDQAAA"}}}]`
	rs, err := decodeReceipts([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].iss != "did:web:example" || okString(rs[0].ok, "status") != "done" ||
		okString(rs[0].ok, "link") != "bagbaierah5sr5zt3tqgkrixptqzyerpxp5vwyjlx3n5frp2tbnr3clqrmrqa" ||
		!bytes.Equal(rs[0].s, []byte{0xed, 0xa1, 0x03, 0x40, 0, 0}) {
		t.Fatalf("first receipt decoded wrong: %+v", rs[0])
	}
	if rs[1].ok != nil || rs[1].errMsg != `Unauthorized: Claim {"can":"store/add"} is not authorized` {
		t.Fatalf("error receipt: %+v", rs[1])
	}
	old, err := decodeReceipts([]byte(`[{"data":{"iss":"did:web:example","out":{"ok":{"root":{"/":"bafyreienff66mf7nse3rm2njikxlshja6d5dkr4fpnyzeik5l6vils6fvq"}}}},"sig":{"/":{"bytes":"7aEDQAAA"}}}]`))
	if err != nil || len(old) != 1 || okString(old[0].ok, "root") != "bafyreienff66mf7nse3rm2njikxlshja6d5dkr4fpnyzeik5l6vils6fvq" {
		t.Fatalf("first-revision receipt {data, sig}: %v %+v", err, old)
	}
	for _, bad := range []string{`{"tasks":1}`, `"x"`, `[{"p":{"out":{}},"s":{"/":{"bytes":""}}}]`, `[{"s":{"/":{"bytes":""}}}]`, `not json`} {
		if _, err := decodeReceipts([]byte(bad)); err == nil {
			t.Errorf("%s decoded without error", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	good := Config{Endpoint: DefaultEndpoint, Space: DIDKey(pub), AuthSecret: "uSECRETVALUE", Authorization: "uAUTHVALUE", ServiceDID: DIDKey(pub)}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		mut  func(*Config)
		says string
	}{
		{func(c *Config) { c.Endpoint = "ftp://x" }, "endpoint: must be an http(s) URL"},
		{func(c *Config) { c.Endpoint = "https://user:pw@host/bridge" }, "endpoint: must not carry credentials"},
		{func(c *Config) { c.Space = "did:web:example.com" }, "space: must be the did:key"},
		{func(c *Config) { c.AuthSecret = "" }, "auth_secret: empty; set the variable named by auth_secret_env"},
		{func(c *Config) { c.Authorization = "uAUTH\nVALUE" }, "authorization: must be one token"},
		{func(c *Config) { c.ServiceDID = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme" }, "service_did: "},
		{func(c *Config) { c.ServiceIssuer = "up.storacha.network" }, "service_issuer: must be a DID"},
		{func(c *Config) { c.ShardSize = 10 }, "shard_size: must be at least"},
	}
	for i, tc := range cases {
		c := good
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("case %d: %v, want %q", i, err, tc.says)
			continue
		}
		for _, s := range []string{"SECRETVALUE", "AUTHVALUE", "AUTH\nVALUE", ":pw@"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("case %d: error shows a secret: %v", i, err)
			}
		}
	}
	if got := good.String() + fmt.Sprintf("%v %+v %#v", good, good, good); strings.Contains(got, "SECRETVALUE") || strings.Contains(got, "AUTHVALUE") {
		t.Errorf("printing the config shows a token: %s", got)
	}
	if good.shardSize() != 133_169_152 {
		t.Errorf("default shard size %d", good.shardSize())
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":     0,
		"5":    5 * time.Second,
		"junk": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("Retry-After %q = %v, want %v", in, got, want)
		}
	}
}

// TestBlockLargerThanShard: a block that cannot fit any shard is a clear
// error naming shard_size, and leaves no file behind.
func TestBlockLargerThanShard(t *testing.T) {
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[4:5]) // one 200 KiB chunk
	dir := t.TempDir()
	_, _, err := buildShards(context.Background(), n, rootsOf(files), 100_000, dir)
	if err == nil || !strings.Contains(err.Error(), "raise shard_size") {
		t.Fatalf("want a shard_size error, got %v", err)
	}
	if left, _ := filepathGlob(dir); len(left) != 0 {
		t.Errorf("files left behind: %v", left)
	}
}

// FuzzDecodeReceipts: whatever a bridge answers, decoding and verifying
// return an error or a receipt, never a panic.
func FuzzDecodeReceipts(f *testing.F) {
	f.Add([]byte(`[{"p":{"iss":"did:web:x","out":{"ok":{"status":"done"}}},"s":{"/":{"bytes":"7aEDQAAA"}}}]`))
	f.Add([]byte(`{"p":{"out":{"error":{"name":"Unauthorized"}}},"s":{"/":{"bytes":""}}}`))
	f.Add([]byte(`[{"p":{"out":{"ok":{"headers":{"a":1}}}},"s":{"/":{"bytes":"7aED"}}}]`))
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	did := DIDKey(key.Public().(ed25519.PublicKey))
	pub, _ := parseDIDKey(did)
	f.Fuzz(func(t *testing.T, body []byte) {
		rs, err := decodeReceipts(body)
		if err != nil {
			return
		}
		for _, r := range rs {
			_ = r.verify(pub, did)
			okString(r.ok, "status")
			if r.ok != nil {
				okHeaders(r.ok)
			}
		}
	})
}
