package pinning

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/pinning/psatest"
)

// BenchmarkDrainPSA: how fast one drain pushes new requests (a lookup and a
// create each) to a Pinning Service API server on loopback. Target: at
// least 200 requests/s. SSID_BENCH_PINS sets the batch (default 1000).
func BenchmarkDrainPSA(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SSID_BENCH_PINS")); err == nil && v > 0 {
		n = v
	}
	var total time.Duration
	for range b.N {
		b.StopTimer()
		srv := psatest.New()
		h := newHarness(b, srv, srv.URL)
		h.d.Recorder = nil
		var reqs []Request
		for i := range n {
			reqs = append(reqs, Request{Service: "cluster", CID: testCID(b, i), Name: "bench", Meta: Meta{FilePath: "f", SHA256: "00"}})
		}
		if _, err := h.q.Enqueue(reqs); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		rep, err := h.d.Drain(context.Background(), DrainOptions{})
		total += time.Since(t0)
		b.StopTimer()
		if err != nil || rep.Pushed != n || len(srv.Pins()) != n {
			b.Fatalf("drain: %+v %v, %d pins", rep, err, len(srv.Pins()))
		}
		srv.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "req/s")
}
