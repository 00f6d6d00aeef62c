package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// seededRand is a reproducible random source whose seed is logged
// (SSID_TEST_SEED replays one).
func seededRand(t testing.TB) *mrand.ChaCha8 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SSID_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SSID_TEST_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("random seed %d (replay with SSID_TEST_SEED=%d)", seed, seed)
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return mrand.NewChaCha8(key)
}

func newTestNode(t testing.TB) *Node {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	if _, err := Init(repo, Config{Profile: ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), repo, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestBatchPinsEveryFileIndirectly: files added in one batch are stored,
// have the CID ComputeCID derives without a repo, and are pinned through the
// run root.
func TestBatchPinsEveryFileIndirectly(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	rng := seededRand(t)
	for _, profile := range []string{CIDProfileDefault, CIDProfileUnixFSv12025} {
		p, err := ParamsFor(profile)
		if err != nil {
			t.Fatal(err)
		}
		b, err := n.NewBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var cids []cid.Cid
		for _, size := range []int{0, 1, 300 << 10, 3 << 20} {
			data := make([]byte, size)
			rng.Read(data)
			var seen bytes.Buffer
			c, err := b.AddFile(bytes.NewReader(data), p, func(chunk []byte) { seen.Write(chunk) })
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(seen.Bytes(), data) {
				t.Fatalf("%s: observer saw %d bytes, want the file's %d in order", profile, seen.Len(), size)
			}
			want, err := ComputeCID(bytes.NewReader(data), p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c != want {
				t.Fatalf("%s size %d: AddFile %s, ComputeCID %s", profile, size, c, want)
			}
			b.Link("f", c)
			cids = append(cids, c)
		}
		root, err := b.Commit("test run")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cids {
			why, pinned, err := n.ipfs.Pinning.IsPinned(ctx, c)
			if err != nil || !pinned {
				t.Errorf("%s: %s not pinned (%q, %v)", profile, c, why, err)
			}
		}
		if _, pinned, _ := n.ipfs.Pinning.IsPinned(ctx, root); !pinned {
			t.Errorf("run root %s not pinned", root)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "none"), OpenOptions{}); !errorsIs(err, ErrNotInitialized) {
		t.Errorf("missing repo: %v, want ErrNotInitialized", err)
	}
	// Init is idempotent: a second call keeps the identity.
	repo := filepath.Join(t.TempDir(), "repo")
	first, err := Init(repo, Config{Profile: ProfileAirGapped})
	if err != nil || !first.Created {
		t.Fatalf("first init: %+v %v", first, err)
	}
	again, err := Init(repo, Config{Profile: ProfilePublic})
	if err != nil || again.Created || again.PeerID != first.PeerID || again.Profile != ProfileAirGapped {
		t.Fatalf("second init changed the repo: %+v %v (first %+v)", again, err, first)
	}
}

// BenchmarkAddFile adds a large random file; SSID_BENCH_FILE names an
// existing file to add instead.
func BenchmarkAddFile(b *testing.B) {
	path := os.Getenv("SSID_BENCH_FILE")
	if path == "" {
		path = filepath.Join(b.TempDir(), "f")
		f, _ := os.Create(path)
		io.CopyN(f, seededRand(b), 256<<20)
		f.Close()
	}
	st, _ := os.Stat(path)
	p, _ := ParamsFor("")
	b.SetBytes(st.Size())
	for b.Loop() {
		b.StopTimer()
		n := newTestNode(b)
		f, _ := os.Open(path)
		b.StartTimer()
		batch, _ := n.NewBatch(context.Background())
		c, err := batch.AddFile(f, p, nil)
		if err != nil {
			b.Fatal(err)
		}
		batch.Link("f", c)
		if _, err := batch.Commit("bench"); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// TestAirGappedNodeStaysOnLoopback: online, the air-gapped node listens on
// loopback only and has nobody to dial: no bootstrap peers, no AutoConf.
func TestAirGappedNodeStaysOnLoopback(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	if _, err := Init(repo, Config{Profile: ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), repo, OpenOptions{Online: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	addrs := n.Addrs()
	if len(addrs) == 0 {
		t.Fatal("online node has no listen addresses")
	}
	for _, a := range addrs {
		if !strings.HasPrefix(a, "/ip4/127.0.0.1/") && !strings.HasPrefix(a, "/ip6/::1/") {
			t.Errorf("listens on %s, not loopback", a)
		}
	}
	cfg, err := n.ipfs.Repo.Config()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Bootstrap) != 0 || cfg.AutoConf.Enabled.WithDefault(true) || cfg.Discovery.MDNS.Enabled ||
		cfg.AutoTLS.Enabled.WithDefault(true) || cfg.Provide.Strategy.WithDefault("") != "pinned" ||
		len(cfg.DNS.Resolvers) != 0 || len(cfg.Routing.DelegatedRouters) != 0 || len(cfg.Ipns.DelegatedPublishers) != 0 ||
		!cfg.Routing.LoopbackAddressesOnLanDHT.WithDefault(false) || !cfg.Swarm.DisableNatPortMap {
		t.Errorf("air-gapped config would reach out: bootstrap %v autoconf %v mdns %v autotls %v strategy %v",
			cfg.Bootstrap, cfg.AutoConf.Enabled, cfg.Discovery.MDNS.Enabled, cfg.AutoTLS.Enabled, cfg.Provide.Strategy)
	}
	time.Sleep(500 * time.Millisecond)
	if peers := n.ipfs.PeerHost.Network().Peers(); len(peers) != 0 {
		t.Errorf("connected to %v", peers)
	}
}

// TestParamsFollowKubo: the CID profiles are kubo's own: the default is
// what a default kubo repo's `ipfs add` uses, unixfs-v1-2025 what kubo's
// profile of that name sets (IPIP-499).
func TestParamsFollowKubo(t *testing.T) {
	for _, tc := range []struct {
		profile string
		want    ImportParams
	}{
		{"", ImportParams{Profile: CIDProfileDefault, CIDVersion: 0, RawLeaves: false, ChunkSize: 256 << 10, MaxLinks: 174}},
		{CIDProfileUnixFSv12025, ImportParams{Profile: CIDProfileUnixFSv12025, CIDVersion: 1, RawLeaves: true, ChunkSize: 1 << 20, MaxLinks: 1024}},
	} {
		got, err := ParamsFor(tc.profile)
		if err != nil || got != tc.want {
			t.Errorf("ParamsFor(%q) = %+v, %v; want %+v", tc.profile, got, err, tc.want)
		}
	}
	if _, err := ParamsFor("unixfs-v0-2015"); err == nil {
		t.Error("an unknown CID profile was accepted")
	}
}
