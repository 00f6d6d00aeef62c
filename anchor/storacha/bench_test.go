package storacha

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/ssid/ssid-anchor/node"
)

// Benchmarks for scripts/bench-storacha.sh. Each prints figures and ratios
// against a baseline measured side by side in the same process; none
// asserts a time.

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

type chachaReader struct{ r *rand.ChaCha8 }

func (c chachaReader) Read(p []byte) (int, error) { return c.r.Read(p) }

// BenchmarkStorachaCARBuild: cutting one STORACHA_BENCH_MIB anchor (default
// 64; the figure is 1024) into shards vs stock `ipfs dag export` of
// the same root from the same repo, interleaved ROUNDS times, medians.
// Target: ratio <= 1.2. Ours includes opening and closing the node, as the
// CLI's time includes its own.
func BenchmarkStorachaCARBuild(b *testing.B) {
	ctx := context.Background()
	mib := benchEnv("STORACHA_BENCH_MIB", 64)
	rounds := benchEnv("ROUNDS", 3)
	bin := stockIPFS(b)
	dir := b.TempDir()
	repo := filepath.Join(dir, "repo")
	if _, err := node.Init(repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		b.Fatal(err)
	}
	n, err := node.Open(ctx, repo, node.OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	batch, err := n.NewBatch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := node.ParamsFor(node.CIDProfileDefault)
	seed := uint64(time.Now().UnixNano())
	b.Logf("seed %d, %d MiB", seed, mib)
	src := io.LimitReader(chachaReader{rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})}, int64(mib)<<20)
	root, err := batch.AddFile(src, p, nil)
	if err != nil {
		b.Fatal(err)
	}
	batch.Link("big", root)
	if _, err := batch.Commit("bench"); err != nil {
		b.Fatal(err)
	}
	n.Close()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	var ours, theirs []time.Duration
	var ourBytes, theirBytes int64
	for i := 0; i < b.N*rounds; i++ {
		start := time.Now()
		f, err := os.Create(filepath.Join(out, "export.car"))
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bin, "dag", "export", root.String())
		cmd.Env = append(os.Environ(), "IPFS_PATH="+repo)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = f, &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("ipfs dag export: %v %s", err, stderr.String())
		}
		f.Sync()
		st, _ := f.Stat()
		theirBytes = st.Size()
		f.Close()
		theirs = append(theirs, time.Since(start))
		os.Remove(f.Name())

		start = time.Now()
		n, err := node.Open(ctx, repo, node.OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		shards, _, err := buildShards(ctx, n, []cid.Cid{root}, DefaultShardSize, out)
		if err != nil {
			b.Fatal(err)
		}
		n.Close()
		ours = append(ours, time.Since(start))
		ourBytes = 0
		for _, s := range shards {
			ourBytes += s.size
			os.Remove(s.path)
		}
	}
	mo, mt := median(ours), median(theirs)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(mo.Seconds(), "shards_s")
	b.ReportMetric(mt.Seconds(), "dag_export_s")
	b.ReportMetric(float64(mo)/float64(mt), "ratio")
	b.ReportMetric(float64(ru.Maxrss)/1024, "process_maxrss_MiB")
	fmt.Printf("storacha CAR build: %d MiB anchor, %d rounds: shards %v (%d bytes), ipfs dag export %v (%d bytes), ratio %.2f (target <= 1.2); process peak RSS %.0f MiB (whole test process, upper bound)\n",
		mib, rounds, mo, ourBytes, mt, theirBytes, float64(mo)/float64(mt), float64(ru.Maxrss)/1024)
}

// BenchmarkStorachaThousandAnchors: anchoring 1000 small files in a node vs
// uploading them through the loopback bridge (shards, store/add, PUT,
// upload/add), interleaved ROUNDS times, medians. Target: the upload adds
// at most 10 % to the anchoring.
func BenchmarkStorachaThousandAnchors(b *testing.B) {
	ctx := context.Background()
	rounds := benchEnv("ROUNDS", 3)
	seed := uint64(time.Now().UnixNano())
	b.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	var anchor, drain []time.Duration
	var requests, puts int
	for i := 0; i < b.N*rounds; i++ {
		n := testNode(b)
		files := make([]anchored, 1000)
		for k := range files {
			files[k] = anchored{name: fmt.Sprintf("r%04d", k), data: randomBytes(r, 100+r.IntN(400))}
		}
		start := time.Now()
		files = anchorFiles(b, n, files)
		anchor = append(anchor, time.Since(start))

		tb := newTestBridge(b)
		cfg := bridgeConfig(tb)
		cfg.TempDir = b.TempDir()
		c, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		st := NewState(rootsOf(files))
		if err := c.Upload(ctx, n, st, func(*State) error { return nil }); err != nil {
			b.Fatal(err)
		}
		drain = append(drain, time.Since(start))
		requests, puts, _, _ = tb.Snapshot()
		tb.Srv.Close()
	}
	ma, md := median(anchor), median(drain)
	b.ReportMetric(ma.Seconds(), "anchor_s")
	b.ReportMetric(md.Seconds(), "upload_s")
	b.ReportMetric(float64(md)/float64(ma), "added_fraction")
	fmt.Printf("storacha 1000 anchors: anchoring %v, upload %v (+%.0f%%, target <= 10%%), %d bridge requests, %d PUTs\n",
		ma, md, 100*float64(md)/float64(ma), requests, puts)
}
