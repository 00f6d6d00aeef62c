// Package bridgetest is a stand-in for Storacha's UCAN-HTTP bridge on
// loopback, for the tests of anchor/storacha and of the commands that use
// it. It does not import anchor/storacha, so that package's own tests can
// use it.
package bridgetest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/multiformats/go-multibase"
	"github.com/multiformats/go-multicodec"
	"github.com/multiformats/go-multihash"
	"github.com/multiformats/go-varint"
)

// Bridge is a stand-in for Storacha's UCAN-HTTP bridge built from
// w3-ucan-bridge.md and w3-store.md: it checks both tokens and the space,
// answers store/add with upload URLs and headers of its own, checks PUT
// bytes against the CAR CID and size, refuses upload/add for shards it never
// received, and signs every receipt as the live service does
// (storacha/w3infra upload-api/functions/bridge.js returns each receipt's
// outcome and signature as {p, s}; ucanto signs the DAG-CBOR encoding of
// the outcome with the service key, varsig ed25519, and issues it as
// did:web:up.storacha.network).
//
// LiveToday makes it answer as Storacha's public service does since
// 2026-05-15: store/add has no handler any more (removed 2026-01-29,
// upload-service #643) and every write is disabled (#708).
type Bridge struct {
	t      testing.TB
	Srv    *httptest.Server
	Space  string
	Secret string             // expected X-Auth-Secret
	Authz  string             // expected Authorization
	DID    string             // did:key of Key (the service_did clients configure)
	Issuer string             // iss of every receipt (service_issuer)
	Key    ed25519.PrivateKey // signs receipts
	// BeforePost, when set before the first request, sees every POST body
	// before the bridge handles it, outside Mu (a test may block in it to
	// kill the client mid-request).
	BeforePost func(r *http.Request, body []byte)
	// BadKeyFor: abilities whose receipts are signed with another key.
	BadKeyFor map[string]bool
	// StoreAddRemoved answers store/add as the live service does since its
	// handler was removed: out.error HandlerNotFound.
	StoreAddRemoved bool
	// WritesDisabled answers every write (store/*, upload/*,
	// space/blob/*, space/index/add) as the live service does since
	// 2026-05-15: out.error ServiceUnavailable.
	WritesDisabled bool
	// PutURL, when set, is the upload URL store/add hands out for an
	// allocation token (a hostile service's choice).
	PutURL func(token string) string
	// PadReceipts adds that many bytes to every receipt's meta (signed,
	// so the receipt still verifies): a service sending huge answers.
	PadReceipts int
	// DripAnswer, when set, sends every answer one byte per DripAnswer.
	DripAnswer time.Duration
	// DripPUT, when set, reads PUT bodies one byte per DripPUT.
	DripPUT time.Duration

	// Mu guards everything below; hold it when changing a field while the
	// server runs.
	Mu         sync.Mutex
	FailPOST   []int // statuses to answer the next POSTs with
	FailPUT    []int // statuses to answer the next PUTs with
	RetryAfter string
	Posts      int
	ByAbility  map[string]int
	PutTries   int
	Puts       map[string]int    // CAR CID -> accepted PUTs
	Cars       map[string][]byte // CAR CID -> bytes received
	Allocs     map[string]alloc  // upload token -> what it may carry
	Uploads    map[string][]string
	Problems   []string // protocol violations by the client
	// DripCut counts dripped answers the client gave up on.
	DripCut int

	stop chan struct{} // closed when the test ends
}

type alloc struct {
	link     cid.Cid
	size     int64
	checksum string
}

// New starts a bridge with fresh tokens, space and signing key; it stops
// with the test.
func New(t testing.TB) *Bridge {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spacePub, _, _ := ed25519.GenerateKey(rand.Reader)
	b := &Bridge{
		t:         t,
		Space:     DIDKey(spacePub),
		Secret:    "u" + RandToken(t, 24),
		Authz:     "u" + RandToken(t, 200),
		Key:       priv,
		DID:       DIDKey(priv.Public().(ed25519.PublicKey)),
		Issuer:    "did:web:up.storacha.network",
		BadKeyFor: map[string]bool{},
		ByAbility: map[string]int{},
		Puts:      map[string]int{},
		Cars:      map[string][]byte{},
		Allocs:    map[string]alloc{},
		Uploads:   map[string][]string{},
		stop:      make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /bridge", b.bridge)
	mux.HandleFunc("PUT /put/{token}", b.put)
	b.Srv = httptest.NewServer(mux)
	t.Cleanup(b.Srv.Close)
	// Runs before Close: a dripping handler stops, so Close does not wait.
	t.Cleanup(func() { close(b.stop) })
	return b
}

// RandToken is n random bytes, base64url.
func RandToken(t testing.TB, n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(buf)
}

// Endpoint is the URL clients POST to.
func (b *Bridge) Endpoint() string { return b.Srv.URL + "/bridge" }

// LiveToday makes the bridge answer as Storacha's public service does
// today: store/add HandlerNotFound, every other write ServiceUnavailable.
func (b *Bridge) LiveToday() {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.StoreAddRemoved, b.WritesDisabled = true, true
}

// writes are the capabilities upload-service disables (disable-writes.js).
var writes = map[string]bool{
	"space/blob/add": true, "space/blob/remove": true, "space/blob/replicate": true, "space/index/add": true,
	"upload/add": true, "upload/remove": true, "store/add": true, "store/remove": true,
}

// DIDKey renders an ed25519 public key as did:key (base58btc of the
// ed25519-pub multicodec and the key).
func DIDKey(pub ed25519.PublicKey) string {
	buf := append(varint.ToUvarint(uint64(multicodec.Ed25519Pub)), pub...)
	s, _ := multibase.Encode(multibase.Base58BTC, buf)
	return "did:key:" + s
}

func (b *Bridge) problem(format string, args ...any) {
	b.Problems = append(b.Problems, fmt.Sprintf(format, args...))
}

func (b *Bridge) bridge(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	if b.BeforePost != nil {
		b.BeforePost(r, raw)
	}
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.Posts++
	if len(b.FailPOST) > 0 {
		status := b.FailPOST[0]
		b.FailPOST = b.FailPOST[1:]
		if b.RetryAfter != "" {
			w.Header().Set("Retry-After", b.RetryAfter)
		}
		http.Error(w, "bridge is having a moment", status)
		return
	}
	if r.Header.Get("X-Auth-Secret") != b.Secret || r.Header.Get("Authorization") != b.Authz {
		http.Error(w, `{"name":"Unauthorized","message":"X-Auth-Secret or Authorization is not valid"}`, http.StatusUnauthorized)
		return
	}
	nb := basicnode.Prototype.Any.NewBuilder()
	if err := dagjson.Decode(nb, bytes.NewReader(raw)); err != nil {
		b.problem("body is not DAG-JSON: %v", err)
		http.Error(w, "body is not DAG-JSON", http.StatusBadRequest)
		return
	}
	tasks, err := nb.Build().LookupByString("tasks")
	if err != nil || tasks.Kind() != datamodel.Kind_List {
		b.problem("no tasks list")
		http.Error(w, "no tasks", http.StatusBadRequest)
		return
	}
	var receipts []datamodel.Node
	it := tasks.ListIterator()
	for !it.Done() {
		_, tk, _ := it.Next()
		ability := mustString(tk, 0)
		subject := mustString(tk, 1)
		args, _ := tk.LookupByIndex(2)
		b.ByAbility[ability]++
		var out qp.Assemble
		switch {
		// ucanto answers a capability without a handler before any
		// validation; the disabled handlers also run before it.
		case ability == "store/add" && b.StoreAddRemoved:
			out = handlerNotFound(ability, subject)
		case b.WritesDisabled && writes[ability]:
			out = serviceUnavailable(ability)
		case subject != b.Space:
			out = errOut("Unauthorized", fmt.Sprintf("the delegation does not cover %s", subject))
		case ability == "store/add":
			out = b.storeAdd(args)
		case ability == "upload/add":
			out = b.uploadAdd(args)
		default:
			out = errOut("UnknownAbility", ability)
		}
		receipts = append(receipts, b.sign(ability, tk, out))
	}
	list, err := qp.BuildList(basicnode.Prototype.Any, int64(len(receipts)), func(la datamodel.ListAssembler) {
		for _, rc := range receipts {
			qp.ListEntry(la, qp.Node(rc))
		}
	})
	if err != nil {
		b.t.Error(err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.ipld.dag-json")
	// Keys unsorted on purpose: the client must re-encode p canonically.
	var out bytes.Buffer
	if err := (dagjson.EncodeOptions{EncodeLinks: true, EncodeBytes: true, MapSortMode: codec.MapSortMode_None}).Encode(list, &out); err != nil {
		b.t.Error(err)
		return
	}
	b.write(w, r, out.Bytes())
}

// write sends an answer, dripping it when DripAnswer is set (until the
// client goes away).
func (b *Bridge) write(w http.ResponseWriter, r *http.Request, data []byte) {
	if b.DripAnswer <= 0 {
		w.Write(data)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	b.Mu.Unlock() // the drip must not hold the counters
	defer b.Mu.Lock()
	for i := range data {
		if _, err := w.Write(data[i : i+1]); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		if !b.dripWait(r, b.DripAnswer) {
			return
		}
	}
}

// dripWait waits d between two dripped bytes; false when the client went
// away (counted in DripCut) or the test ended.
func (b *Bridge) dripWait(r *http.Request, d time.Duration) bool {
	select {
	case <-r.Context().Done():
		b.Mu.Lock()
		b.DripCut++
		b.Mu.Unlock()
		return false
	case <-b.stop:
		return false
	case <-time.After(d):
		return true
	}
}

func mustString(n datamodel.Node, i int64) string {
	v, err := n.LookupByIndex(i)
	if err != nil {
		return ""
	}
	s, _ := v.AsString()
	return s
}

func errOut(name, msg string) qp.Assemble {
	return qp.Map(1, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "error", qp.Map(2, func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "name", qp.String(name))
			qp.MapEntry(ma, "message", qp.String(msg))
		}))
	})
}

// handlerNotFound is ucanto's HandlerNotFound as the server serialises it
// (@ucanto/server error.js toJSON: name, error, capability, message, stack).
func handlerNotFound(ability, with string) qp.Assemble {
	msg := fmt.Sprintf("service does not implement {can: %q} handler", ability)
	return qp.Map(1, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "error", qp.Map(5, func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "name", qp.String("HandlerNotFound"))
			qp.MapEntry(ma, "error", qp.Bool(true))
			qp.MapEntry(ma, "capability", qp.Map(2, func(ma datamodel.MapAssembler) {
				qp.MapEntry(ma, "can", qp.String(ability))
				qp.MapEntry(ma, "with", qp.String(with))
			}))
			qp.MapEntry(ma, "message", qp.String(msg))
			qp.MapEntry(ma, "stack", qp.String("HandlerNotFound: "+msg+"\n    at run (file:///var/task/node_modules/@ucanto/server/src/server.js:147:16)"))
		}))
	})
}

// serviceUnavailable is upload-service's ServiceUnavailable (a ucanto
// Failure: name, message, stack).
func serviceUnavailable(ability string) qp.Assemble {
	msg := fmt.Sprintf("The %q capability is currently disabled.", ability)
	return qp.Map(1, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "error", qp.Map(3, func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "name", qp.String("ServiceUnavailable"))
			qp.MapEntry(ma, "message", qp.String(msg))
			qp.MapEntry(ma, "stack", qp.String("ServiceUnavailable: "+msg+"\n    at disabledHandler (file:///var/task/node_modules/@storacha/upload-api/src/disable-writes.js:50:12)"))
		}))
	})
}

func okOut(fn func(datamodel.MapAssembler)) qp.Assemble {
	return qp.Map(1, func(ma datamodel.MapAssembler) { qp.MapEntry(ma, "ok", qp.Map(-1, fn)) })
}

func linkArg(args datamodel.Node, key string) (cid.Cid, bool) {
	v, err := args.LookupByString(key)
	if err != nil {
		return cid.Undef, false
	}
	l, err := v.AsLink() // the spec sends links as {"/": cid}, not strings
	if err != nil {
		return cid.Undef, false
	}
	return l.(cidlink.Link).Cid, true
}

func (b *Bridge) storeAdd(args datamodel.Node) qp.Assemble {
	link, ok := linkArg(args, "link")
	if !ok {
		b.problem("store/add without a link")
		return errOut("InvalidArgs", "link must be a CID link")
	}
	sn, err := args.LookupByString("size")
	size, err2 := int64(0), err
	if err == nil {
		size, err2 = sn.AsInt()
	}
	if err2 != nil || size <= 0 {
		b.problem("store/add %s without a size", link)
		return errOut("InvalidArgs", "size must be a positive integer")
	}
	if link.Version() != 1 || link.Prefix().Codec != uint64(multicodec.Car) || link.Prefix().MhType != multihash.SHA2_256 {
		b.problem("store/add link %s is not a CIDv1 car sha2-256", link)
		return errOut("InvalidArgs", "link must be a CAR CID")
	}
	if _, have := b.Cars[link.String()]; have {
		return okOut(func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "status", qp.String("done"))
			qp.MapEntry(ma, "with", qp.String(b.Space))
			qp.MapEntry(ma, "link", qp.Link(cidlink.Link{Cid: link}))
			qp.MapEntry(ma, "allocated", qp.Int(0))
		})
	}
	token := RandToken(b.t, 12)
	dec, _ := multihash.Decode(link.Hash())
	sum := base64.StdEncoding.EncodeToString(dec.Digest)
	b.Allocs[token] = alloc{link: link, size: size, checksum: sum}
	return okOut(func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "status", qp.String("upload"))
		qp.MapEntry(ma, "with", qp.String(b.Space))
		qp.MapEntry(ma, "link", qp.Link(cidlink.Link{Cid: link}))
		u := b.Srv.URL + "/put/" + token + "?X-Amz-Signature=" + RandToken(b.t, 16)
		if b.PutURL != nil {
			u = b.PutURL(token)
		}
		qp.MapEntry(ma, "url", qp.String(u))
		qp.MapEntry(ma, "headers", qp.Map(2, func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "content-length", qp.String(strconv.FormatInt(size, 10)))
			qp.MapEntry(ma, "x-amz-checksum-sha256", qp.String(sum))
		}))
		qp.MapEntry(ma, "allocated", qp.Int(size))
	})
}

func (b *Bridge) uploadAdd(args datamodel.Node) qp.Assemble {
	root, ok := linkArg(args, "root")
	if !ok {
		b.problem("upload/add without a root link")
		return errOut("InvalidArgs", "root must be a CID link")
	}
	sh, err := args.LookupByString("shards")
	if err != nil || sh.Kind() != datamodel.Kind_List || sh.Length() == 0 {
		b.problem("upload/add %s without shards", root)
		return errOut("InvalidArgs", "shards must be a non-empty list")
	}
	var shards []string
	it := sh.ListIterator()
	for !it.Done() {
		_, v, _ := it.Next()
		l, err := v.AsLink()
		if err != nil {
			b.problem("upload/add %s: shard is not a link", root)
			return errOut("InvalidArgs", "shards must be CID links")
		}
		s := l.String()
		if _, have := b.Cars[s]; !have {
			b.problem("upload/add %s names shard %s never received", root, s)
			return errOut("ShardsNotFound", "shard "+s+" is not stored in the space")
		}
		shards = append(shards, s)
	}
	b.Uploads[root.String()] = shards
	return okOut(func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "root", qp.Link(cidlink.Link{Cid: root}))
		qp.MapEntry(ma, "shards", qp.List(int64(len(shards)), func(la datamodel.ListAssembler) {
			for _, s := range shards {
				qp.ListEntry(la, qp.Link(cidlink.Link{Cid: cid.MustParse(s)}))
			}
		}))
	})
}

// sign makes the receipt {p, s}: p in a non-canonical key order, s the
// varsig of the ed25519 signature over p's DAG-CBOR encoding.
func (b *Bridge) sign(ability string, tk datamodel.Node, out qp.Assemble) datamodel.Node {
	var inv bytes.Buffer
	if err := dagcbor.Encode(tk, &inv); err != nil {
		b.t.Fatal(err)
	}
	ran, _ := cid.V1Builder{Codec: cid.DagCBOR, MhType: multihash.SHA2_256}.Sum(inv.Bytes())
	pad := b.PadReceipts
	p, err := qp.BuildMap(basicnode.Prototype.Any, 6, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "out", out)
		qp.MapEntry(ma, "iss", qp.String(b.Issuer))
		qp.MapEntry(ma, "ran", qp.Link(cidlink.Link{Cid: ran}))
		qp.MapEntry(ma, "meta", qp.Map(-1, func(ma datamodel.MapAssembler) {
			if pad > 0 {
				qp.MapEntry(ma, "pad", qp.String(strings.Repeat("x", pad)))
			}
		}))
		qp.MapEntry(ma, "fx", qp.Map(1, func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "fork", qp.List(0, func(datamodel.ListAssembler) {}))
		}))
		qp.MapEntry(ma, "prf", qp.List(0, func(datamodel.ListAssembler) {}))
	})
	if err != nil {
		b.t.Fatal(err)
	}
	var payload bytes.Buffer
	if err := dagcbor.Encode(p, &payload); err != nil {
		b.t.Fatal(err)
	}
	key := b.Key
	if b.BadKeyFor[ability] {
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	}
	sig := append(varint.ToUvarint(uint64(multicodec.Eddsa)), varint.ToUvarint(64)...)
	sig = append(sig, ed25519.Sign(key, payload.Bytes())...)
	n, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "s", qp.Bytes(sig))
		qp.MapEntry(ma, "p", qp.Node(p))
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

func (b *Bridge) put(w http.ResponseWriter, r *http.Request) {
	b.Mu.Lock()
	drip := b.DripPUT
	b.Mu.Unlock()
	if drip > 0 {
		one := make([]byte, 1)
		for {
			if _, err := r.Body.Read(one); err != nil {
				break
			}
			if !b.dripWait(r, drip) {
				return
			}
		}
		return
	}
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.PutTries++
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	if len(b.FailPUT) > 0 {
		status := b.FailPUT[0]
		b.FailPUT = b.FailPUT[1:]
		// Quote the request as S3 does, presigned query and all: the client
		// must not carry it into its error.
		http.Error(w, "storage node busy: "+r.URL.RawQuery, status)
		return
	}
	a, ok := b.Allocs[r.PathValue("token")]
	if !ok || r.URL.Query().Get("X-Amz-Signature") == "" {
		b.problem("PUT to a URL never allocated")
		http.Error(w, "no such upload", http.StatusForbidden)
		return
	}
	if r.Header.Get("x-amz-checksum-sha256") != a.checksum {
		b.problem("PUT %s without the allocated checksum header", a.link)
		http.Error(w, "checksum header missing", http.StatusBadRequest)
		return
	}
	if r.Header.Get("X-Auth-Secret") != "" || r.Header.Get("Authorization") != "" {
		b.problem("PUT %s carries the bridge tokens", a.link)
	}
	sum := sha256.Sum256(body)
	mh, _ := multihash.Encode(sum[:], multihash.SHA2_256)
	got := cid.NewCidV1(uint64(multicodec.Car), mh)
	if int64(len(body)) != a.size || r.ContentLength != a.size || !got.Equals(a.link) {
		b.problem("PUT %s: %d bytes hashing to %s (want %d bytes)", a.link, len(body), got, a.size)
		http.Error(w, "bytes do not match the link and size", http.StatusBadRequest)
		return
	}
	delete(b.Allocs, r.PathValue("token"))
	b.Cars[a.link.String()] = body
	b.Puts[a.link.String()]++
	w.WriteHeader(http.StatusOK)
}

// Snapshot copies the counters.
func (b *Bridge) Snapshot() (posts, putTries int, puts map[string]int, byAbility map[string]int) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	puts = map[string]int{}
	for k, v := range b.Puts {
		puts[k] = v
	}
	byAbility = map[string]int{}
	for k, v := range b.ByAbility {
		byAbility[k] = v
	}
	return b.Posts, b.PutTries, puts, byAbility
}

// NoProblems fails t when the client broke the protocol.
func (b *Bridge) NoProblems(t testing.TB) {
	t.Helper()
	b.Mu.Lock()
	defer b.Mu.Unlock()
	if len(b.Problems) > 0 {
		t.Fatalf("the client broke the protocol:\n%s", strings.Join(b.Problems, "\n"))
	}
}
