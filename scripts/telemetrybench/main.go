// Command telemetrybench measures one `ssid-anchor telemetry` check against
// a 100,000-row dashboard CSV and a 1,000,000-event registry log, and
// compares it with `sha256sum` of both files (the cost of reading them once,
// streamed). Each check runs as a child process so its peak RSS is read
// from its rusage. scripts/bench-telemetry.sh runs it; only loopback is
// used (an alert is delivered to a webhook receiver on 127.0.0.1).
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/telemetry"
	"github.com/ssid/ssid-anchor/telemetry/notify"
)

const (
	csvRel    = "05_documentation/reports/dashboard/dashboard_data.csv"
	logRel    = "24_meta_orchestration/registry/logs/registry_events.log"
	cfgRel    = "07_governance_legal/telemetry_config.json"
	stateRel  = "24_meta_orchestration/registry/logs/telemetry_state.json"
	exception = "23_compliance/exceptions/root_level_exceptions.yaml"
)

func main() {
	bin := flag.String("bin", "bin/ssid-anchor", "ssid-anchor binary")
	dir := flag.String("dir", "", "work directory (default: a temp dir, removed afterwards)")
	rows := flag.Int("rows", 100_000, "dashboard CSV rows")
	events := flag.Int("events", 1_000_000, "registry log events")
	child := flag.String("child-check", "", "internal: run one check in-process on this root and print memory figures")
	flag.Parse()
	if *child != "" {
		if err := childCheck(*child); err != nil {
			fmt.Fprintln(os.Stderr, "telemetrybench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*bin, *dir, *rows, *events); err != nil {
		fmt.Fprintln(os.Stderr, "telemetrybench:", err)
		os.Exit(1)
	}
}

func run(bin, dir string, rows, events int) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "telemetry-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hits.Add(1)
	}))
	defer srv.Close()
	root := filepath.Join(dir, "tree")
	fmt.Fprintf(os.Stderr, "generating %d CSV rows and %d events under %s ...\n", rows, events, root)
	if err := generate(root, srv.URL+"/hook", rows, events); err != nil {
		return err
	}
	csvPath, logPath := filepath.Join(root, csvRel), filepath.Join(root, logRel)
	size := func(p string) int64 { st, _ := os.Stat(p); return st.Size() }
	fmt.Printf("files: CSV %d rows %.1f MiB, log %d events %.1f MiB\n", rows, mib(size(csvPath)), events, mib(size(logPath)))

	// Warm the page cache for both sides alike.
	if _, _, err := timeCmd("sha256sum", csvPath, logPath); err != nil {
		return err
	}
	shaTime, _, err := timeCmd("sha256sum", csvPath, logPath)
	if err != nil {
		return err
	}
	goSHA := timeGoSHA(csvPath, logPath)

	repo := filepath.Join(dir, "repo")
	check := func() (time.Duration, int64, error) {
		return timeCmd(bin, "--root", root, "--repo", repo, "telemetry")
	}

	// 1. First check: no state. The whole CSV is parsed; the whole log is
	// read once (line count) and its last MiB parsed.
	first, firstRSS, err := check()
	if err != nil {
		return err
	}
	if hits.Load() != 1 {
		return fmt.Errorf("the first check delivered %d alerts, want 1", hits.Load())
	}
	_, idleRSS, err := timeCmd(bin, "--root", root, "--repo", repo, "guard")
	if err != nil {
		return err
	}
	fmt.Printf("telemetry check: %.3f s, sha256 both files: %.3f s, ratio %.2f, peak RSS %.0f MiB\n",
		first.Seconds(), shaTime.Seconds(), first.Seconds()/shaTime.Seconds(), mib(firstRSS*1024))
	fmt.Printf("  (the kubo-linked binary itself, running guard, peaks at %.0f MiB RSS)\n", mib(idleRSS*1024))
	if err := os.Remove(filepath.Join(root, stateRel)); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	out, err := exec.Command(self, "-child-check", root).Output()
	if err != nil {
		return fmt.Errorf("in-process check: %v", err)
	}
	fmt.Printf("  same first check in-process: %s", out)

	// 2. Steady state: 10 events appended since the last check.
	if err := appendEvents(logPath, events, 10); err != nil {
		return err
	}
	steady, steadyRSS, err := check()
	if err != nil {
		return err
	}
	fmt.Printf("telemetry check, 10 events appended since the last one: %.3f s, ratio %.2f, peak RSS %.0f MiB\n",
		steady.Seconds(), steady.Seconds()/shaTime.Seconds(), mib(steadyRSS*1024))

	// 3. Catch-up: the previous check saw an empty log, so every event is
	// new and goes through the events parser (tree.ScanEvents).
	if err := resetMark(filepath.Join(root, stateRel)); err != nil {
		return err
	}
	full, fullRSS, err := check()
	if err != nil {
		return err
	}
	fmt.Printf("telemetry check, all %d events new since the last one (full parse): %.3f s, ratio %.2f, peak RSS %.0f MiB\n",
		events, full.Seconds(), full.Seconds()/shaTime.Seconds(), mib(fullRSS*1024))
	fmt.Printf("reference: Go crypto/sha256 of both files in-process: %.3f s\n", goSHA.Seconds())
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// timeCmd runs a child process and returns its wall time and peak RSS (KiB).
func timeCmd(name string, args ...string) (time.Duration, int64, error) {
	cmd := exec.Command(name, args...)
	var errb strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %v\n%s", name, err, errb.String())
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		return took, 0, nil
	}
	return took, ru.Maxrss, nil
}

func timeGoSHA(paths ...string) time.Duration {
	start := time.Now()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
	}
	return time.Since(start)
}

func write(root, rel string, b []byte) error {
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

// generate builds a tree holding Root-24-LOCK, a config with one webhook
// channel, a CSV whose latest row drops to 88 (so one alert is due) and a
// log mixing the classic pretty form, JSONL and nested release events.
func generate(root, hook string, rows, events int) error {
	names := map[int]string{5: "05_documentation", 7: "07_governance_legal", 23: "23_compliance", 24: "24_meta_orchestration"}
	for i := 1; i <= 24; i++ {
		n := names[i]
		if n == "" {
			n = fmt.Sprintf("%02d_module", i)
		}
		if err := os.MkdirAll(filepath.Join(root, n), 0o755); err != nil {
			return err
		}
	}
	if err := write(root, exception, []byte("# none\n")); err != nil {
		return err
	}
	cfg := map[string]any{
		"enabled": true, "check_interval_seconds": 300,
		"thresholds":    map[string]any{"compliance_score_min": 95, "compliance_score_critical": 90, "score_drop_warning": 5, "score_drop_critical": 10, "max_violations": 0},
		"notifications": map[string]any{"webhook": map[string]any{"enabled": true, "url": hook, "method": "POST"}},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := write(root, cfgRel, b); err != nil {
		return err
	}

	if err := os.MkdirAll(filepath.Dir(filepath.Join(root, csvRel)), 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(root, csvRel))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "timestamp,quarter,compliance_score,total_roots,verified_roots,violations,blueprint_version,root_24_lock,safe_fix_status")
	start := time.Now().UTC().Add(-time.Duration(rows+1) * time.Hour).Truncate(time.Hour)
	for i := range rows {
		t := start.Add(time.Duration(i) * time.Hour)
		score := 100 - i%3
		if i == rows-1 {
			score = 88
		}
		fmt.Fprintf(w, "%s,%d-Q%d,%d,24,24,0,v4.3,active,enforced\n", t.Format(time.RFC3339), t.Year(), (int(t.Month())-1)/3+1, score)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()

	if err := os.MkdirAll(filepath.Dir(filepath.Join(root, logRel)), 0o755); err != nil {
		return err
	}
	f, err = os.Create(filepath.Join(root, logRel))
	if err != nil {
		return err
	}
	w = bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "Registry events initialized.")
	writeEvents(w, 0, events)
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

var old = time.Date(2025, 10, 11, 15, 2, 37, 0, time.UTC)

func writeEvents(w io.Writer, from, n int) {
	for i := from; i < from+n; i++ {
		ts := old.Add(time.Duration(i) * time.Second).Format(time.RFC3339)
		switch {
		case i%100 == 7: // JSONL
			fmt.Fprintf(w, `{"timestamp":"%s","event":"federation_sync_%d","version":"v4.4.0","commit_hash":"%064x"}`+"\n", ts, i, i)
		case i%1000 == 13: // a release event with nested objects
			fmt.Fprintf(w, "{\n  \"timestamp\": \"%s\",\n  \"event\": \"governance_release_published\",\n  \"version\": \"v4.3.%d\",\n  \"quarter\": \"2026-Q1\",\n  \"bundle_details\": {\n    \"files\": 9,\n    \"hash\": \"%064x\"\n  }\n}\n", ts, i, i)
		default:
			name := "governance_dashboard_updated"
			if i%50 == 0 {
				name = "blueprint_tagged"
			}
			fmt.Fprintf(w, "{\n  \"timestamp\": \"%s\",\n  \"event\": \"%s\",\n  \"version\": \"v4.2.0\",\n  \"commit_hash\": \"%040x\",\n  \"blueprint\": \"v4.2\",\n  \"root_24_lock\": \"active\",\n  \"compliance_score\": \"100/100\",\n  \"emitted_by\": \"registry_event_trigger.sh\"\n}\n", ts, name, i)
		}
	}
}

func appendEvents(path string, from, n int) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	writeEvents(f, from, n)
	return f.Close()
}

// resetMark makes the state say the previous check saw an empty log.
func resetMark(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	empty := sha256.Sum256(nil)
	st["registry_log"] = map[string]any{"offset": 0, "lines": 0, "tail_len": 0, "tail_sha256": fmt.Sprintf("%x", empty)}
	b, _ = json.MarshalIndent(st, "", "  ")
	return os.WriteFile(path, b, 0o644)
}

// childCheck runs the first check in-process, wired like the CLI, and
// reports memory: the Go runtime's total from the OS (it never shrinks, so
// it bounds the check's heap and stacks) and the kernel's view.
func childCheck(root string) error {
	r, err := tree.OpenRoot(root)
	if err != nil {
		return err
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	b, err := os.ReadFile(filepath.Join(root, cfgRel))
	if err != nil {
		return err
	}
	cfg, err := telemetry.ParseConfig(b)
	if err != nil {
		return err
	}
	p := tree.DefaultPaths()
	m := &telemetry.Monitor{
		Config: cfg, Root: r, Now: time.Now,
		Paths:    telemetry.Paths{DashboardCSV: p.DashboardCSV, State: p.TelemetryState, EventsLog: p.EventsLog},
		Channels: telemetry.BuildChannels(cfg, notify.Options{}, nil),
	}
	rep, err := m.Check(context.Background(), false)
	if err != nil {
		return err
	}
	if f := rep.Failures(); len(f) > 0 {
		return fmt.Errorf("delivery failed: %v", f)
	}
	took := time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	st, _ := os.ReadFile("/proc/self/status")
	field := func(k string) string {
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, k+":") {
				return strings.TrimSpace(strings.TrimPrefix(l, k+":"))
			}
		}
		return "?"
	}
	fmt.Printf("%.3f s; Go memory from the OS %.0f MiB (%.0f MiB before the check); kernel: peak RSS %s, anonymous %s\n",
		took.Seconds(), mib(int64(after.Sys)), mib(int64(before.Sys)), field("VmHWM"), field("RssAnon"))
	return nil
}
