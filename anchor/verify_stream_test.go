package anchor

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// TestVerifySinkBoundsHeldResults: with a Sink, Verify hands every result
// over in record order, keeps none in the report, and never holds more than
// the result window at once, although a large file early in the manifest
// keeps one worker busy while the others settle small records behind it.
// The results are the ones Verify without a Sink reports.
func TestVerifySinkBoundsHeldResults(t *testing.T) {
	const small = 1500
	dir := t.TempDir()
	rootDir := filepath.Join(dir, "root")
	paths := tree.DefaultPaths()
	vtWrite(t, filepath.Join(rootDir, paths.EventsLog), vtReadTestdata(t, "registry_events.log"))
	// "data/a/..." sorts first: the 6 MiB file is among the first records.
	vtWrite(t, filepath.Join(rootDir, "data/a/big.bin"), vtRandom(7, 6<<20))
	for i := range small {
		vtWrite(t, filepath.Join(rootDir, fmt.Sprintf("data/s/%d/%d/f%04d.txt", i%5, i%3, i)), vtRandom(uint64(100+i), 100+i%900))
	}
	root, err := tree.OpenRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	f := vtFixture{dir: dir, root: root, paths: paths, repo: filepath.Join(dir, "repo")}
	if _, err := node.Init(f.repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), f.repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	params, _ := node.ParamsFor(node.CIDProfileDefault)
	cfg := DefaultConfig()
	cfg.Rules = []Rule{{Match: []string{"*"}, Globs: []string{"data/**"}}}
	res, err := Run(context.Background(), RunOptions{
		Root: root, Paths: paths, Config: cfg, Params: params,
		OpenBatch: func(ctx context.Context) (Batch, error) { return n.NewBatch(ctx) },
		Signer:    n,
		Now:       func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) },
	})
	if err != nil || len(res.Failed) > 0 || len(res.Records) != small+1 {
		t.Fatalf("anchoring: %v, %d records, failed %+v", err, len(res.Records), res.Failed)
	}

	base := VerifyOptions{Root: root, ManifestPath: f.manifestPath(), Store: n, StoreName: "the repo", Pins: n, Workers: 4}
	all, err := Verify(context.Background(), base)
	if err != nil || !all.OK || len(all.Records) != small+1 {
		t.Fatalf("Verify without a sink: %v, %+v", err, all)
	}

	sink := &orderSink{t: t}
	o := base
	o.Sink = sink
	// onHeld runs on the workers; the channel collects its counts without
	// a race (every record settles once, so 1<<16 never fills).
	maxHeld := 0
	held := make(chan int, 1<<16)
	o.onHeld = func(n int) { held <- n }
	rep, err := Verify(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	close(held)
	for h := range held {
		maxHeld = max(maxHeld, h)
	}
	if !sink.begun || rep.Records != nil || rep.Total() != small+1 || rep.Passed != small+1 || !rep.OK {
		t.Fatalf("streamed report: begun %v, %d records kept, %d passed of %d, ok %v", sink.begun, len(rep.Records), rep.Passed, rep.Total(), rep.OK)
	}
	if !reflect.DeepEqual(sink.got, all.Records) {
		t.Fatal("the streamed results differ from the collected ones")
	}
	if maxHeld > resultWindow+1 {
		t.Fatalf("%d results held at once; the window allows %d", maxHeld, resultWindow+1)
	}
	t.Logf("%d records streamed in order; at most %d results held at once (window %d); peak live heap seen by the sink %.1f MiB",
		len(sink.got), maxHeld, resultWindow, float64(sink.peakHeap)/(1<<20))
}

// orderSink checks that results come in record order and samples the heap.
type orderSink struct {
	t        *testing.T
	begun    bool
	got      []RecordResult
	peakHeap uint64
}

func (s *orderSink) Begin(rep *VerifyReport) error {
	if rep.ManifestCID == "" || s.begun {
		s.t.Errorf("Begin: manifest cid %q, called before: %v", rep.ManifestCID, s.begun)
	}
	s.begun = true
	return nil
}

func (s *orderSink) Record(r RecordResult) error {
	if r.Index != len(s.got) {
		s.t.Fatalf("record %d handed over as number %d", r.Index, len(s.got))
	}
	s.got = append(s.got, r)
	if len(s.got)%100 == 0 {
		m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(m)
		s.peakHeap = max(s.peakHeap, m[0].Value.Uint64())
	}
	return nil
}
