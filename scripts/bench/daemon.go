package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The daemon cases (issue 22): the appliance's idle memory against stock
// kubo's daemon holding the same content, and a soak of the console and
// endpoints. A daemon is started through the launcher like every measured
// command (a fresh process, its RSS its own), and its memory is read from
// /proc/PID/status while it runs: VmRSS split into RssAnon (its own
// memory: heap, stacks) and RssFile (pages of its executable and
// libraries, shared and reclaimable), and VmHWM, its peak.

// memSample is one reading of a running daemon's memory, in KiB.
type memSample struct {
	Round    int     `json:"round"`
	Position int     `json:"position"`
	ReadyS   float64 `json:"ready_s"` // start to the first answer
	RSSKiB   int64   `json:"vm_rss_kib"`
	AnonKiB  int64   `json:"rss_anon_kib"`
	FileKiB  int64   `json:"rss_file_kib"`
	HWMKiB   int64   `json:"vm_hwm_kib"`
	MaxRSS   int64   `json:"max_rss_kib"` // ru_maxrss at exit (the launcher's)
}

// memRow is one daemon's line of the idle table.
type memRow struct {
	Key     string      `json:"key"`
	Label   string      `json:"label"`
	Subject bool        `json:"subject"`
	Samples []memSample `json:"samples"`
	// Medians, MiB.
	RSSMiB, AnonMiB, FileMiB, HWMMiB, ReadyS float64
}

func (r *memRow) summarize() {
	med := func(f func(memSample) float64) float64 {
		v := make([]float64, len(r.Samples))
		for i, s := range r.Samples {
			v[i] = f(s)
		}
		return medianOf(v)
	}
	r.RSSMiB = med(func(s memSample) float64 { return float64(s.RSSKiB) / 1024 })
	r.AnonMiB = med(func(s memSample) float64 { return float64(s.AnonKiB) / 1024 })
	r.FileMiB = med(func(s memSample) float64 { return float64(s.FileKiB) / 1024 })
	r.HWMMiB = med(func(s memSample) float64 { return float64(s.HWMKiB) / 1024 })
	r.ReadyS = med(func(s memSample) float64 { return s.ReadyS })
}

// memRatio is a daemon's median memory over the baseline's.
type memRatio struct {
	Subject, Baseline, What string
	Value                   float64
	PerRound                []float64
	Target                  float64 `json:",omitempty"`
	Meets                   *bool   `json:",omitempty"`
}

// daemonSpec starts one daemon: prep picks its ports; ready is the URL
// that answers 200 once it serves.
type daemonSpec struct {
	key, label string
	subject    bool
	prep       func() (argv, env []string, ready string, err error)
}

// running is a daemon started through the launcher.
type running struct {
	launcher *exec.Cmd
	pid      int
	res      string
	started  time.Time
	log      string
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startDaemon syncs, drops the page cache (as before every command) and
// starts d through the launcher; it returns once the daemon answers.
func (b *bench) startDaemon(ctx context.Context, d daemonSpec, name string) (*running, float64, error) {
	argv, env, ready, err := d.prep()
	if err != nil {
		return nil, 0, fmt.Errorf("preparing %s: %w", d.label, err)
	}
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		b.noDrop = true
	}
	logs := filepath.Join(b.work, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, 0, err
	}
	r := &running{res: filepath.Join(logs, name+"-"+d.key+".rusage"), log: filepath.Join(logs, name+"-"+d.key+".log")}
	os.Remove(r.res)
	os.Remove(r.res + ".pid")
	lf, err := os.Create(r.log)
	if err != nil {
		return nil, 0, err
	}
	defer lf.Close()
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	r.launcher = exec.Command(self, append([]string{launcherArg, r.res}, argv...)...)
	r.launcher.Env = append(os.Environ(), env...)
	r.launcher.Stdout, r.launcher.Stderr = lf, lf
	r.started = time.Now()
	if err := r.launcher.Start(); err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*running, float64, error) {
		r.stop()
		return nil, 0, fmt.Errorf("%s: %w\n%s", d.label, err, tail(r.log))
	}
	deadline := time.Now().Add(3 * time.Minute)
	for r.pid == 0 {
		if b, err := os.ReadFile(r.res + ".pid"); err == nil {
			r.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fail(errors.New("did not start"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("%s did not answer 200 within 3 minutes", ready))
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", r.pid)); err != nil {
			return fail(errors.New("exited before it served"))
		}
		resp, err := client.Get(ready)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r, time.Since(r.started).Seconds(), nil
}

// readMem reads the daemon's memory from /proc/PID/status.
func (r *running) readMem() (memSample, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.pid))
	if err != nil {
		return memSample{}, err
	}
	var s memSample
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			s.RSSKiB = v
		case "RssAnon:":
			s.AnonKiB = v
		case "RssFile:":
			s.FileKiB = v
		case "VmHWM:":
			s.HWMKiB = v
		}
	}
	if s.RSSKiB == 0 {
		return s, fmt.Errorf("/proc/%d/status: no VmRSS", r.pid)
	}
	return s, nil
}

// stop sends SIGTERM (both daemons stop cleanly on it) and waits; after a
// minute, SIGKILL. It returns the launcher's ru_maxrss of the daemon.
func (r *running) stop() int64 {
	if r.pid > 0 {
		syscall.Kill(r.pid, syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { r.launcher.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		if r.pid > 0 {
			syscall.Kill(r.pid, syscall.SIGKILL)
		}
		r.launcher.Process.Kill()
		<-done
	}
	_, rss, _, _ := readLauncher(r.res)
	return rss
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ourDaemon is `ssid-anchor daemon` on the anchored tree: its HTTP on a
// free loopback port, swarm on loopback (the air-gapped profile).
func (b *bench) ourDaemon(t *treeState) daemonSpec {
	return daemonSpec{key: "ssid-anchor", label: "ssid-anchor daemon", subject: true,
		prep: func() ([]string, []string, string, error) {
			port, err := freePort()
			if err != nil {
				return nil, nil, "", err
			}
			// kubo's RPC API on a free port too (as stock's API below), never 5001.
			argv := []string{b.o.Bin, "--root", t.root, "--repo", t.repo, "--config", t.cfg, "daemon",
				"--http", fmt.Sprintf("127.0.0.1:%d", port), "--swarm", "/ip4/127.0.0.1/tcp/0", "--rpc", "/ip4/127.0.0.1/tcp/0"}
			return argv, nil, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), nil
		}}
}

// stockDaemon is `ipfs daemon --offline` on the stock repo holding the
// same files (default profile; only its API and gateway ports are set, to
// free loopback ports).
func (b *bench) stockDaemon(ctx context.Context, t *treeState) daemonSpec {
	env := []string{"IPFS_PATH=" + t.stockRepo}
	return daemonSpec{key: "stock", label: "stock ipfs daemon --offline",
		prep: func() ([]string, []string, string, error) {
			api, err := freePort()
			if err != nil {
				return nil, nil, "", err
			}
			gw, err := freePort()
			if err != nil {
				return nil, nil, "", err
			}
			for _, kv := range [][2]string{{"Addresses.API", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", api)}, {"Addresses.Gateway", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", gw)}} {
				if _, err := runUntimed(ctx, env, b.o.IPFS, "config", kv[0], kv[1]); err != nil {
					return nil, nil, "", err
				}
			}
			return []string{b.o.IPFS, "daemon", "--offline"}, env, fmt.Sprintf("http://127.0.0.1:%d/ipfs/%s", gw, t.stockCID), nil
		}}
}

// caseDaemon: each round starts each daemon in turn (order rotated), lets
// it idle -idle, reads its memory and stops it.
func (b *bench) caseDaemon(ctx context.Context) (*caseResult, error) {
	t, err := b.ensureAnchored(ctx)
	if err != nil {
		return nil, err
	}
	specs := []daemonSpec{b.ourDaemon(t), b.stockDaemon(ctx, t)}
	rows := make([]*memRow, len(specs))
	for i, d := range specs {
		rows[i] = &memRow{Key: d.key, Label: d.label + " (idle " + b.o.Idle.String() + ")", Subject: d.subject}
	}
	for round := range b.o.Runs {
		for pos := range specs {
			i := (pos + round) % len(specs)
			d := specs[i]
			r, ready, err := b.startDaemon(ctx, d, "daemon")
			if err != nil {
				return nil, err
			}
			if err := sleepCtx(ctx, b.o.Idle); err != nil {
				r.stop()
				return nil, err
			}
			s, err := r.readMem()
			maxRSS := r.stop()
			if err != nil {
				return nil, err
			}
			s.Round, s.Position, s.ReadyS, s.MaxRSS = round, pos, ready, maxRSS
			rows[i].Samples = append(rows[i].Samples, s)
			fmt.Fprintf(b.progress, "daemon round %d/%d: %-36s RSS %6.1f MiB (anon %5.1f, file %5.1f), peak %6.1f MiB, ready in %.2f s\n",
				round+1, b.o.Runs, d.label, float64(s.RSSKiB)/1024, float64(s.AnonKiB)/1024, float64(s.FileKiB)/1024, float64(s.HWMKiB)/1024, ready)
		}
	}
	for _, r := range rows {
		r.summarize()
	}
	cr := &caseResult{Name: "daemon", Title: fmt.Sprintf("daemon idle %s after start, holding the tree's %d records (%s)", b.o.Idle, t.spec.files, human(t.spec.bytes)),
		Files: t.spec.files, Bytes: t.spec.bytes, Mem: rows}
	cr.memRatio("ssid-anchor", "stock", "rss", 0.8)
	cr.memRatio("ssid-anchor", "stock", "anon", 0)
	cr.memRatio("ssid-anchor", "stock", "file", 0)
	return cr, nil
}

func (c *caseResult) memRow(key string) *memRow {
	for _, r := range c.Mem {
		if r.Key == key {
			return r
		}
	}
	return nil
}

func (c *caseResult) memRatio(subject, baseline, what string, target float64) {
	s, b := c.memRow(subject), c.memRow(baseline)
	pick := func(m memSample) float64 {
		switch what {
		case "anon":
			return float64(m.AnonKiB)
		case "file":
			return float64(m.FileKiB)
		}
		return float64(m.RSSKiB)
	}
	med := map[string]func(*memRow) float64{"rss": func(r *memRow) float64 { return r.RSSMiB },
		"anon": func(r *memRow) float64 { return r.AnonMiB }, "file": func(r *memRow) float64 { return r.FileMiB }}[what]
	r := memRatio{Subject: subject, Baseline: baseline, What: what, Value: med(s) / med(b)}
	for i := range min(len(s.Samples), len(b.Samples)) {
		r.PerRound = append(r.PerRound, pick(s.Samples[i])/pick(b.Samples[i]))
	}
	if target > 0 {
		m := r.Value <= target
		r.Target, r.Meets = target, &m
	}
	c.MemRatios = append(c.MemRatios, r)
}

// soakResult is the soak: the daemon's memory at idle, then once a
// minute while the endpoints are scraped.
type soakResult struct {
	Scrape   string      `json:"scrape_every"`
	Requests int         `json:"requests"`
	Failures int         `json:"failed_requests"`
	Idle     memSample   `json:"idle"`
	Samples  []soakPoint `json:"samples"`
	// GrowthPct is the last sample's VmRSS over the highest of the first
	// half's, in percent above it: the first half warms what the endpoints
	// cache and brings the collector to its cycle; growth after it is a
	// leak.
	GrowthPct float64 `json:"growth_pct"`
	Meets     bool    `json:"meets"`
}

type soakPoint struct {
	AtS float64 `json:"at_s"`
	memSample
}

// soakTolerance is how much above the first half's highest RSS the last
// sample may be and count as no growth (noise of the collector's cycle).
const soakTolerance = 5.0

// caseSoak runs the daemon for -soak, scraping /metrics, /status and the
// console / every -scrape, and samples its memory every minute.
func (b *bench) caseSoak(ctx context.Context) (*caseResult, error) {
	t, err := b.ensureAnchored(ctx)
	if err != nil {
		return nil, err
	}
	spec := b.ourDaemon(t)
	var base string
	inner := spec.prep
	spec.prep = func() ([]string, []string, string, error) {
		argv, env, ready, err := inner()
		base = strings.TrimSuffix(ready, "/healthz")
		return argv, env, ready, err
	}
	r, _, err := b.startDaemon(ctx, spec, "soak")
	if err != nil {
		return nil, err
	}
	defer r.stop()
	if err := sleepCtx(ctx, b.o.Idle); err != nil {
		return nil, err
	}
	res := &soakResult{Scrape: b.o.Scrape.String()}
	if res.Idle, err = r.readMem(); err != nil {
		return nil, err
	}
	fmt.Fprintf(b.progress, "soak: idle RSS %.1f MiB (anon %.1f, file %.1f); scraping %s/{metrics,status,} every %s for %s\n",
		float64(res.Idle.RSSKiB)/1024, float64(res.Idle.AnonKiB)/1024, float64(res.Idle.FileKiB)/1024, base, b.o.Scrape, b.o.Soak)
	client := &http.Client{Timeout: 30 * time.Second}
	start := time.Now()
	nextSample := start.Add(time.Minute)
	for time.Since(start) < b.o.Soak {
		for _, p := range []string{"/metrics", "/status", "/"} {
			res.Requests++
			resp, err := client.Get(base + p)
			if err != nil {
				res.Failures++
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				res.Failures++
			}
		}
		if !time.Now().Before(nextSample) || time.Since(start) >= b.o.Soak {
			s, err := r.readMem()
			if err != nil {
				return nil, err
			}
			res.Samples = append(res.Samples, soakPoint{AtS: time.Since(start).Seconds(), memSample: s})
			fmt.Fprintf(b.progress, "soak %5.0f s: RSS %6.1f MiB (anon %5.1f, file %5.1f)\n", time.Since(start).Seconds(),
				float64(s.RSSKiB)/1024, float64(s.AnonKiB)/1024, float64(s.FileKiB)/1024)
			nextSample = nextSample.Add(time.Minute)
		}
		if err := sleepCtx(ctx, b.o.Scrape); err != nil {
			return nil, err
		}
	}
	if len(res.Samples) == 0 {
		s, err := r.readMem()
		if err != nil {
			return nil, err
		}
		res.Samples = append(res.Samples, soakPoint{AtS: time.Since(start).Seconds(), memSample: s})
	}
	last := res.Samples[len(res.Samples)-1]
	var high int64
	for _, s := range res.Samples[:max(1, len(res.Samples)/2)] {
		high = max(high, s.RSSKiB)
	}
	res.GrowthPct = (float64(last.RSSKiB)/float64(high) - 1) * 100
	res.Meets = res.GrowthPct <= soakTolerance && res.Failures == 0
	cr := &caseResult{Name: "soak", Title: fmt.Sprintf("ssid-anchor daemon holding the tree's %d records, /metrics, /status and / scraped every %s for %s", t.spec.files, b.o.Scrape, b.o.Soak),
		Files: t.spec.files, Bytes: t.spec.bytes, Soak: res}
	return cr, nil
}

func printMem(out io.Writer, c *caseResult) {
	w := len("daemon")
	for _, r := range c.Mem {
		w = max(w, len(r.Label))
	}
	fmt.Fprintf(out, "  %-*s  %12s  %12s  %12s  %12s  %9s\n", w, "daemon", "VmRSS MiB", "RssAnon MiB", "RssFile MiB", "peak MiB", "ready s")
	for _, r := range c.Mem {
		fmt.Fprintf(out, "  %-*s  %12.1f  %12.1f  %12.1f  %12.1f  %9.2f\n", w, r.Label, r.RSSMiB, r.AnonMiB, r.FileMiB, r.HWMMiB, r.ReadyS)
	}
	fmt.Fprintf(out, "  ratios of medians (median of %d rounds):\n", len(c.Mem[0].Samples))
	for _, r := range c.MemRatios {
		what := map[string]string{"rss": "VmRSS", "anon": "RssAnon", "file": "RssFile"}[r.What]
		line := fmt.Sprintf("    %-48s  %7.2f ×", c.memRow(r.Subject).Label[:strings.Index(c.memRow(r.Subject).Label, " (")]+" / stock, "+what, r.Value)
		if len(r.PerRound) > 1 {
			line += fmt.Sprintf("  (rounds %.2f–%.2f)", slices.Min(r.PerRound), slices.Max(r.PerRound))
		}
		if r.Meets != nil {
			line += fmt.Sprintf("    target ≤ %.2f ×  %s", r.Target, verdict(*r.Meets))
		}
		fmt.Fprintln(out, line)
	}
}

func printSoak(out io.Writer, c *caseResult) {
	s := c.Soak
	fmt.Fprintf(out, "  idle before the scrapes: VmRSS %.1f MiB (RssAnon %.1f, RssFile %.1f)\n",
		float64(s.Idle.RSSKiB)/1024, float64(s.Idle.AnonKiB)/1024, float64(s.Idle.FileKiB)/1024)
	fmt.Fprintf(out, "  %8s  %10s  %12s  %12s\n", "at s", "VmRSS MiB", "RssAnon MiB", "RssFile MiB")
	for _, p := range s.Samples {
		fmt.Fprintf(out, "  %8.0f  %10.1f  %12.1f  %12.1f\n", p.AtS, float64(p.RSSKiB)/1024, float64(p.AnonKiB)/1024, float64(p.FileKiB)/1024)
	}
	fmt.Fprintf(out, "  %d requests, %d failed; last sample %+.1f %% of the first half's highest VmRSS    target: no growth (≤ +%.0f %%), no failed request  %s\n",
		s.Requests, s.Failures, s.GrowthPct, soakTolerance, verdict(s.Meets))
}
