// Command gwload fetches one URL from many concurrent clients for a fixed
// time and prints requests/s and latency percentiles: the load side of
// scripts/bench-daemon.sh (no load tool such as wrk or hey is assumed to
// be installed; this needs only Go).
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to fetch")
	conc := flag.Int("c", 100, "concurrent clients")
	dur := flag.Duration("d", 10*time.Second, "how long")
	size := flag.Int64("size", -1, "expected body size; other sizes count as errors")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "gwload: -url is required")
		os.Exit(2)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	start := time.Now()
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for time.Now().Before(deadline) {
				t0 := time.Now()
				resp, err := client.Get(*url)
				if err != nil {
					bad++
					continue
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || (*size >= 0 && n != *size) {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	fmt.Printf("reqs=%d errors=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f\n", len(lat), errs, float64(len(lat))/el.Seconds(), pct(0.50), pct(0.99))
	if errs > 0 {
		os.Exit(1)
	}
}
