package storacha

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ssid/ssid-anchor/anchor/storacha/bridgetest"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	carstorage "github.com/ipld/go-car/v2/storage"

	"github.com/ssid/ssid-anchor/node"
)

func testNode(t testing.TB) *node.Node {
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

// anchored is a file anchored in a real node.
type anchored struct {
	name string
	data []byte
	cid  cid.Cid
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// anchorFiles adds the files to n in one batch, as an anchoring run does,
// and returns them with their CIDs.
func anchorFiles(t testing.TB, n *node.Node, files []anchored) []anchored {
	t.Helper()
	ctx := context.Background()
	b, err := n.NewBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := node.ParamsFor(node.CIDProfileDefault)
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		if files[i].cid, err = b.AddFile(bytes.NewReader(files[i].data), p, nil); err != nil {
			t.Fatal(err)
		}
		b.Link(files[i].name, files[i].cid)
	}
	if _, err := b.Commit("test"); err != nil {
		t.Fatal(err)
	}
	return files
}

// sampleFiles: a multi-chunk file, a second file sharing its first two
// chunks (blocks shared across roots), a small one, an empty one, and a
// single-chunk one.
func sampleFiles(t *testing.T) []anchored {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 15))
	big := randomBytes(r, 1<<20+5)
	shared := append(append([]byte{}, big[:512<<10]...), randomBytes(r, 100<<10)...)
	return []anchored{
		{name: "big.bin", data: big},
		{name: "shares-chunks.bin", data: shared},
		{name: "small.txt", data: []byte("a small anchored record\n")},
		{name: "empty", data: nil},
		{name: "one-chunk.bin", data: randomBytes(r, 200<<10)},
	}
}

func rootsOf(files []anchored) []cid.Cid {
	out := make([]cid.Cid, len(files))
	for i, f := range files {
		out[i] = f.cid
	}
	return out
}

// persister stands in for the caller's durable queue: every save is a JSON
// document, and the last one is what survives a crash.
type persister struct {
	t      testing.TB
	saved  []byte
	saves  int
	secret []string
	crash  func(*State) bool // return true to "die" right after this save
}

var errCrash = errors.New("simulated crash")

func (p *persister) save(st *State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	for _, s := range p.secret {
		if bytes.Contains(b, []byte(s)) {
			p.t.Errorf("a token is in the persisted state")
		}
	}
	p.saved = b
	p.saves++
	if p.crash != nil && p.crash(st) {
		return errCrash
	}
	return nil
}

func (p *persister) load(t testing.TB) *State {
	t.Helper()
	var st State
	if err := json.Unmarshal(p.saved, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// checkReceived proves the bridge holds every anchor: for each root, the
// CARs upload/add listed for it, merged and imported into a fresh node,
// give back the file byte for byte. Each CAR is also a valid CARv1 of at
// most limit bytes.
func checkReceived(t *testing.T, b *testBridge, files []anchored, limit int64) {
	t.Helper()
	ctx := context.Background()
	b.Mu.Lock()
	defer b.Mu.Unlock()
	for link, data := range b.Cars {
		if int64(len(data)) > limit {
			t.Errorf("CAR %s is %d bytes, over shard_size %d", link, len(data), limit)
		}
		if v, err := carv2.ReadVersion(bytes.NewReader(data)); err != nil || v != 1 {
			t.Errorf("CAR %s: version %d, %v; want CARv1", link, v, err)
		}
	}
	fresh := testNode(t)
	for _, f := range files {
		shards, ok := b.Uploads[f.cid.String()]
		if !ok {
			t.Fatalf("%s (%s) was never registered with upload/add", f.name, f.cid)
		}
		path := filepath.Join(t.TempDir(), "merged.car")
		mergeCARs(t, path, f.cid, shards, b.Cars)
		if _, err := fresh.ImportCAR(ctx, path, "received"); err != nil {
			t.Fatalf("%s: the shards upload/add lists do not hold its DAG: %v", f.name, err)
		}
		var got bytes.Buffer
		if _, err := fresh.ReadFile(ctx, f.cid, 1<<40, &got); err != nil {
			t.Fatalf("%s: reading back: %v", f.name, err)
		}
		if !bytes.Equal(got.Bytes(), f.data) {
			t.Fatalf("%s: got %d bytes back, want its %d bytes", f.name, got.Len(), len(f.data))
		}
	}
}

func mergeCARs(t *testing.T, path string, root cid.Cid, shards []string, cars map[string][]byte) {
	t.Helper()
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := carstorage.NewWritable(out, []cid.Cid{root}, carv2.WriteAsCarV1(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shards {
		br, err := carv2.NewBlockReader(bytes.NewReader(cars[s]))
		if err != nil {
			t.Fatalf("shard %s: %v", s, err)
		}
		for {
			blk, err := br.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("shard %s: %v", s, err)
			}
			if err := w.Put(context.Background(), blk.Cid().KeyString(), blk.RawData()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
}

func fastRetry() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }

// TestUploadThroughFaults: a 500 on the first request and a 503 on the first
// PUT are retried; every root ends registered with verified receipts, every
// shard was accepted exactly once, and the CARs the bridge holds give back
// every file byte for byte.
func TestUploadThroughFaults(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t))
	b := newTestBridge(t)
	b.FailPOST = []int{http.StatusInternalServerError}
	b.FailPUT = []int{http.StatusServiceUnavailable}
	cfg := bridgeConfig(b)
	cfg.ShardSize = 300_000 // one 256 KiB chunk per shard: several shards
	cfg.TempDir = t.TempDir()
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &persister{t: t, secret: []string{b.Secret, b.Authz}}
	st := NewState(rootsOf(files))
	if err := c.Retry(ctx, n, st, p.save, fastRetry(), 10); err != nil {
		t.Fatalf("upload: %v", err)
	}
	b.NoProblems(t)
	if !st.Done() {
		t.Fatalf("not every root uploaded: %+v", st.Roots)
	}
	if got := st.ReceiptStatus(); got != "receipts verified" {
		t.Errorf("receipt status %q", got)
	}
	if len(st.Shards) < 4 {
		t.Fatalf("%d shards; the test wants several", len(st.Shards))
	}
	_, putTries, puts, by := b.Snapshot()
	for _, s := range st.Shards {
		if puts[s.Link] != 1 {
			t.Errorf("shard %s accepted %d times, want once", s.Link, puts[s.Link])
		}
		if s.File != "" || !s.Stored {
			t.Errorf("shard %+v: want stored, local file removed", s)
		}
	}
	if putTries != len(st.Shards)+1 {
		t.Errorf("%d PUT attempts for %d shards and one 503", putTries, len(st.Shards))
	}
	if by["upload/add"] != len(files) {
		t.Errorf("%d upload/add tasks for %d roots", by["upload/add"], len(files))
	}
	left, _ := os.ReadDir(cfg.TempDir)
	if len(left) != 0 {
		t.Errorf("%d shard files left behind", len(left))
	}
	// Receipts are kept as evidence: one per task that got an answer.
	if len(st.Receipts) != by["store/add"]+by["upload/add"] {
		t.Errorf("%d receipts kept for %d answered tasks", len(st.Receipts), by["store/add"]+by["upload/add"])
	}
	for _, e := range st.Receipts {
		if !e.Verified || e.Issuer != b.Issuer || !bytes.Contains(e.Receipt, []byte(`"s":{"/":{"bytes":"7aEDQ`)) {
			t.Errorf("receipt kept without its verified signature: %+v", e)
		}
	}
	// The evidence survives the JSON round trip of the queue and still
	// verifies; altered, it does not.
	// store/add answers that carried an upload URL are kept without it
	// (it is a credential), so only the others can be checked again.
	saved := p.load(t)
	for _, e := range saved.Receipts {
		err := VerifyEvidence(e, b.DID, b.Issuer)
		if len(e.Redacted) > 0 {
			if err == nil || !strings.Contains(err.Error(), "credentials") {
				t.Errorf("a redacted receipt verified or did not say why not: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("kept receipt does not verify after persisting: %v", err)
		}
	}
	forged := saved.Receipts[len(saved.Receipts)-1]
	forged.Receipt = bytes.Replace(forged.Receipt, []byte(`"ok":{`), []byte(`"ok":{"forged":true,`), 1)
	if err := VerifyEvidence(forged, b.DID, b.Issuer); !errors.Is(err, ErrBadReceipt) {
		t.Errorf("altered receipt: %v, want ErrBadReceipt", err)
	}
	// The root sharing chunks with the big file must list the big file's
	// shards that hold them, which it did not write itself.
	if !sharesShard(st.Roots[0].Shards, st.Roots[1].Shards) {
		t.Errorf("roots sharing blocks list disjoint shards: %v / %v", st.Roots[0].Shards, st.Roots[1].Shards)
	}
	checkReceived(t, b, files, cfg.ShardSize)
	for _, tok := range []string{b.Secret, b.Authz} {
		if strings.Contains(logs.String(), tok) {
			t.Error("a token is in the logs")
		}
	}
}

func sharesShard(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// TestCrashAfterPutsResumesAtUploadAdd: the process dies after every PUT
// and before upload/add; a new client from the persisted state registers
// the roots with no second PUT and no second store/add.
func TestCrashAfterPutsResumesAtUploadAdd(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t))
	b := newTestBridge(t)
	cfg := bridgeConfig(b)
	cfg.ShardSize = 300_000
	cfg.TempDir = t.TempDir()
	p := &persister{t: t, secret: []string{b.Secret, b.Authz}}
	p.crash = func(st *State) bool {
		for _, s := range st.Shards {
			if !s.Stored {
				return false
			}
		}
		return len(st.Shards) > 0
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Upload(ctx, n, NewState(rootsOf(files)), p.save)
	if !errors.Is(err, errCrash) {
		t.Fatalf("want the simulated crash, got %v", err)
	}
	posts1, puts1, _, by1 := b.Snapshot()
	if by1["upload/add"] != 0 {
		t.Fatalf("upload/add ran before the crash")
	}
	// A new process: new client, state from "disk".
	p.crash = nil
	st := p.load(t)
	c2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Upload(ctx, n, st, p.save); err != nil {
		t.Fatalf("resume: %v", err)
	}
	b.NoProblems(t)
	posts2, puts2, puts, by2 := b.Snapshot()
	if puts2 != puts1 || by2["store/add"] != by1["store/add"] {
		t.Errorf("resume sent %d more PUTs and %d more store/add tasks; want none", puts2-puts1, by2["store/add"]-by1["store/add"])
	}
	if posts2 != posts1+1 || by2["upload/add"] != len(files) {
		t.Errorf("resume made %d requests with %d upload/add tasks; want 1 request, %d tasks", posts2-posts1, by2["upload/add"], len(files))
	}
	for l, k := range puts {
		if k != 1 {
			t.Errorf("shard %s PUT %d times", l, k)
		}
	}
	if !st.Done() {
		t.Fatal("not done after resume")
	}
	checkReceived(t, b, files, cfg.ShardSize)
}

// TestCrashMidPutsRebuildsShards: the process dies after the first PUT and
// its temp files are gone; the resume rebuilds the same CARs from the repo,
// PUTs only those the bridge does not hold, and finishes.
func TestCrashMidPutsRebuildsShards(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t))
	b := newTestBridge(t)
	cfg := bridgeConfig(b)
	cfg.ShardSize = 300_000
	cfg.TempDir = t.TempDir()
	p := &persister{t: t}
	p.crash = func(st *State) bool {
		for _, s := range st.Shards {
			if s.Stored {
				return true
			}
		}
		return false
	}
	c, _ := New(cfg)
	if err := c.Upload(ctx, n, NewState(rootsOf(files)), p.save); !errors.Is(err, errCrash) {
		t.Fatalf("want the simulated crash, got %v", err)
	}
	st := p.load(t)
	for _, s := range st.Shards {
		os.Remove(s.File)
	}
	p.crash = nil
	if err := c.Upload(ctx, n, st, p.save); err != nil {
		t.Fatalf("resume: %v", err)
	}
	b.NoProblems(t)
	_, putTries, puts, _ := b.Snapshot()
	if putTries != len(st.Shards) {
		t.Errorf("%d PUTs for %d shards", putTries, len(st.Shards))
	}
	for _, s := range st.Shards {
		if puts[s.Link] != 1 {
			t.Errorf("shard %s accepted %d times", s.Link, puts[s.Link])
		}
	}
	checkReceived(t, b, files, cfg.ShardSize)
}

// TestReceiptFromAnotherKey: a bridge signing with a key other than
// service_did gets nothing marked stored or uploaded, and the error says why.
func TestReceiptFromAnotherKey(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:4])
	for _, ability := range []string{"store/add", "upload/add"} {
		t.Run(strings.ReplaceAll(ability, "/", "-"), func(t *testing.T) {
			b := newTestBridge(t)
			b.BadKeyFor[ability] = true
			cfg := bridgeConfig(b)
			cfg.TempDir = t.TempDir()
			c, _ := New(cfg)
			p := &persister{t: t}
			st := NewState(rootsOf(files))
			err := c.Retry(ctx, n, st, p.save, fastRetry(), 3)
			if !errors.Is(err, ErrBadReceipt) || !strings.Contains(err.Error(), "receipt signature does not verify") {
				t.Fatalf("want a receipt verification error, got %v", err)
			}
			if ok, _ := IsTransient(err); ok {
				t.Error("a bad receipt must not be retried")
			}
			for _, r := range st.Roots {
				if r.Uploaded {
					t.Errorf("root %s marked uploaded on a bad receipt", r.Root)
				}
			}
			_, putTries, _, _ := b.Snapshot()
			if ability == "store/add" {
				for _, s := range st.Shards {
					if s.Stored {
						t.Errorf("shard %s marked stored on a bad receipt", s.Link)
					}
				}
				if putTries != 0 {
					t.Errorf("%d PUTs after a bad store/add receipt", putTries)
				}
			}
			for _, e := range st.Receipts {
				if e.Ability == ability {
					t.Errorf("a receipt that does not verify was kept as evidence: %+v", e)
				}
			}
		})
	}
}

// TestUnverifiedWithoutServiceDID: without service_did the upload works and
// says its receipts are unverified.
func TestUnverifiedWithoutServiceDID(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:3])
	b := newTestBridge(t)
	cfg := bridgeConfig(b)
	cfg.ServiceDID = ""
	cfg.TempDir = t.TempDir()
	c, _ := New(cfg)
	st := NewState(rootsOf(files))
	if err := c.Upload(ctx, n, st, (&persister{t: t}).save); err != nil {
		t.Fatal(err)
	}
	if !st.Done() || st.ReceiptStatus() != "receipts unverified (no service_did configured)" {
		t.Fatalf("done=%v status=%q", st.Done(), st.ReceiptStatus())
	}
	for _, e := range st.Receipts {
		if e.Verified {
			t.Errorf("receipt marked verified with no key to check it: %+v", e)
		}
	}
}

// TestErrorsAreClassifiedAndLeakNoToken: 401 and out.error are permanent
// with the service's message, 5xx/429 transient with Retry-After, a dead
// endpoint transient; no error carries a token or the presigned URL.
func TestErrorsAreClassifiedAndLeakNoToken(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:3])
	cases := []struct {
		name      string
		setup     func(b *testBridge, cfg *Config)
		transient bool
		after     time.Duration
		want      string
	}{
		{"wrong-secret", func(b *testBridge, cfg *Config) { cfg.AuthSecret = "uWRONG" + b.Secret }, false, 0, "HTTP 401"},
		{"wrong-space", func(b *testBridge, cfg *Config) {
			cfg.Space = DIDKey(make([]byte, 32))
		}, false, 0, "Unauthorized: the delegation does not cover"},
		{"rate-limited", func(b *testBridge, cfg *Config) {
			b.FailPOST = []int{http.StatusTooManyRequests}
			b.RetryAfter = "7"
		}, true, 7 * time.Second, "HTTP 429"},
		{"server-error", func(b *testBridge, cfg *Config) { b.FailPOST = []int{http.StatusBadGateway} }, true, 0, "HTTP 502"},
		{"put-refused", func(b *testBridge, cfg *Config) { b.FailPUT = []int{http.StatusForbidden} }, false, 0, "PUT shard bagb"},
		{"unreachable", func(b *testBridge, cfg *Config) { b.Srv.Close() }, true, 0, "store/add: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBridge(t)
			cfg := bridgeConfig(b)
			cfg.TempDir = t.TempDir()
			var logs bytes.Buffer
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			tc.setup(b, &cfg)
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			st := NewState(rootsOf(files))
			err = c.Upload(ctx, n, st, (&persister{t: t, secret: []string{b.Secret, b.Authz}}).save)
			if err == nil {
				t.Fatal("no error")
			}
			transient, after := IsTransient(err)
			if transient != tc.transient || after != tc.after {
				t.Errorf("transient=%v after=%v, want %v %v: %v", transient, after, tc.transient, tc.after, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			for _, s := range []string{b.Secret, b.Authz, "X-Amz-Signature"} {
				if strings.Contains(err.Error(), s) || strings.Contains(logs.String(), s) || strings.Contains(cfg.String(), s) || strings.Contains(fmtV(cfg), s) {
					t.Errorf("%q leaks into the error, logs or config string: %v", s[:6], err)
				}
			}
			if st.Done() {
				t.Error("marked done on a failure")
			}
		})
	}
}

func fmtV(c Config) string {
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("cfg", "config", c)
	return b.String() + c.GoString()
}

func filepathGlob(dir string) ([]string, error) { return filepath.Glob(filepath.Join(dir, "*")) }

// TestThousandAnchorsFewRequests: 1000 small anchors cost at most 4 bridge
// requests and one PUT per shard, whether they fit one shard or several.
func TestThousandAnchorsFewRequests(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1000))
	files := make([]anchored, 1000)
	for i := range files {
		files[i] = anchored{name: fmt.Sprintf("record-%04d.json", i), data: randomBytes(r, 100+r.IntN(400))}
	}
	files = anchorFiles(t, n, files)
	for _, size := range []int64{0, 100_000} {
		t.Run(fmt.Sprintf("shard_size=%d", size), func(t *testing.T) {
			b := newTestBridge(t)
			cfg := bridgeConfig(b)
			cfg.ShardSize = size
			cfg.TempDir = t.TempDir()
			c, _ := New(cfg)
			st := NewState(rootsOf(files))
			if err := c.Upload(ctx, n, st, (&persister{t: t}).save); err != nil {
				t.Fatal(err)
			}
			b.NoProblems(t)
			posts, putTries, _, by := b.Snapshot()
			t.Logf("%d anchors: %d shards, %d bridge requests, %d PUTs", len(files), len(st.Shards), posts, putTries)
			if posts > 4 || putTries != len(st.Shards) || by["upload/add"] != len(files) || !st.Done() {
				t.Fatalf("%d requests, %d PUTs for %d shards, %d upload/add tasks; want <= 4 requests, one PUT per shard, %d tasks",
					posts, putTries, len(st.Shards), by["upload/add"], len(files))
			}
			if size != 0 && len(st.Shards) < 2 {
				t.Fatalf("shard_size %d gave %d shard(s); the case wants several", size, len(st.Shards))
			}
			checkReceived(t, b, files[:3], cfg.shardSize())
		})
	}
}

// TestServiceAlreadyHoldsShards: uploading the same anchors again from a
// fresh state (another box, a lost queue) gets store/add "done" for every
// shard, so no byte is PUT twice, and the roots are registered again.
func TestServiceAlreadyHoldsShards(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t))
	b := newTestBridge(t)
	cfg := bridgeConfig(b)
	cfg.ShardSize = 300_000
	cfg.TempDir = t.TempDir()
	c, _ := New(cfg)
	if err := c.Upload(ctx, n, NewState(rootsOf(files)), (&persister{t: t}).save); err != nil {
		t.Fatal(err)
	}
	_, puts1, _, _ := b.Snapshot()
	st := NewState(rootsOf(files))
	if err := c.Upload(ctx, n, st, (&persister{t: t}).save); err != nil {
		t.Fatal(err)
	}
	b.NoProblems(t)
	_, puts2, _, by := b.Snapshot()
	if puts2 != puts1 || !st.Done() || by["upload/add"] != 2*len(files) {
		t.Fatalf("second upload: %d more PUTs (want 0), done=%v, %d upload/add tasks", puts2-puts1, st.Done(), by["upload/add"])
	}
	for _, s := range st.Shards {
		if !s.Stored {
			t.Errorf("shard %s not marked stored after status done", s.Link)
		}
	}
}

// TestRedirectKeepsTokens: a bridge answering with a redirect to another
// host gets an error; the other host never sees a token.
func TestRedirectKeepsTokens(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t)[2:3])
	b := newTestBridge(t)
	var leaked bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = leaked || r.Header.Get("X-Auth-Secret") != "" || r.Header.Get("Authorization") != ""
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/bridge", http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	cfg := bridgeConfig(b)
	cfg.Endpoint = redirect.URL + "/bridge"
	cfg.TempDir = t.TempDir()
	c, _ := New(cfg)
	err := c.Upload(ctx, n, NewState(rootsOf(files)), (&persister{t: t}).save)
	if err == nil || !strings.Contains(err.Error(), "HTTP 307") {
		t.Fatalf("want the redirect refused, got %v", err)
	}
	if leaked {
		t.Fatal("the tokens were sent to the redirect target")
	}
}

// TestLostShardIsStoredAgain: the service loses a CAR between its PUT and
// upload/add (upload/add answers ShardsNotFound); the next call asks
// store/add again, PUTs only the lost CAR, and registers every root.
func TestLostShardIsStoredAgain(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	files := anchorFiles(t, n, sampleFiles(t))
	b := newTestBridge(t)
	cfg := bridgeConfig(b)
	cfg.ShardSize = 300_000
	cfg.TempDir = t.TempDir()
	var lost string
	p := &persister{t: t}
	p.crash = func(st *State) bool {
		all := len(st.Shards) > 0
		for _, s := range st.Shards {
			all = all && s.Stored
		}
		if all && lost == "" {
			lost = st.Shards[0].Link
			b.Mu.Lock()
			delete(b.Cars, lost)
			b.Mu.Unlock()
		}
		return false
	}
	c, _ := New(cfg)
	st := NewState(rootsOf(files))
	err := c.Upload(ctx, n, st, p.save)
	if err == nil || !strings.Contains(err.Error(), "ShardsNotFound") {
		t.Fatalf("want upload/add refused for the lost shard, got %v", err)
	}
	if ok, _ := IsTransient(err); ok {
		t.Errorf("a refusal in a receipt is not transient")
	}
	b.Mu.Lock()
	b.Problems = nil // the refusal above was provoked
	b.Mu.Unlock()
	_, puts1, _, _ := b.Snapshot()
	if err := c.Upload(ctx, n, st, p.save); err != nil {
		t.Fatalf("second call: %v", err)
	}
	b.NoProblems(t)
	_, puts2, puts, _ := b.Snapshot()
	if puts2 != puts1+1 || puts[lost] != 2 {
		t.Fatalf("second call made %d PUTs (lost shard PUT %d times); want only the lost one again", puts2-puts1, puts[lost])
	}
	if !st.Done() {
		t.Fatal("not done")
	}
	checkReceived(t, b, files, cfg.ShardSize)
}

// testBridge is the loopback bridge of package bridgetest.
type testBridge = bridgetest.Bridge

func newTestBridge(t testing.TB) *testBridge { return bridgetest.New(t) }

// bridgeConfig is a client configuration for b, receipts verified.
func bridgeConfig(b *testBridge) Config {
	return Config{
		Endpoint:      b.Endpoint(),
		Space:         b.Space,
		AuthSecret:    b.Secret,
		Authorization: b.Authz,
		ServiceDID:    b.DID,
		ServiceIssuer: b.Issuer,
	}
}
