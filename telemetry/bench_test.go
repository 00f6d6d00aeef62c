package telemetry

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReadCSV streams a 100,000-row dashboard in the documented shape.
func BenchmarkReadCSV(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("timestamp,quarter,compliance_score,total_roots,verified_roots,violations,blueprint_version,root_24_lock,safe_fix_status\n")
	start := day("2015-01-01T00:00:00Z")
	for i := range 100_000 {
		fmt.Fprintf(&buf, "%s,2015-Q1,%d,24,24,0,v4.3,active,enforced\n", start.Add(time.Duration(i)*time.Hour).Format(time.RFC3339), 100-i%7)
	}
	now := day("2030-01-01T00:00:00Z")
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for b.Loop() {
		if _, err := ReadCSV(bytes.NewReader(buf.Bytes()), "bench.csv", now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanLogFirstCheck is the registry part of a first check on a
// 100,000-event log: one pass counting lines, the last MiB parsed.
func BenchmarkScanLogFirstCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "registry_events.log")
	var buf bytes.Buffer
	buf.WriteString("Registry events initialized.\n")
	for i := range 100_000 {
		fmt.Fprintf(&buf, "{\n  \"timestamp\": \"2025-10-11T15:02:37Z\",\n  \"event\": \"governance_check_%d\",\n  \"version\": \"v4.2.0\"\n}\n", i)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	now := day("2026-01-01T00:00:00Z")
	for b.Loop() {
		res, err := scanLog(path, nil, now, 5*time.Minute, DefaultConfig().EventFilters, map[string]bool{})
		if err != nil || res.mark == nil || res.mark.Lines != 500_001 {
			b.Fatalf("scan: %v %+v", err, res.mark)
		}
	}
}

// scanLog is scanOpenedLog on a path, for the benchmark; the monitor opens
// the log through the governance root instead.
func scanLog(path string, mark *LogMark, now time.Time, window time.Duration, filters EventFilters, seen map[string]bool) (logScan, error) {
	f, err := os.Open(path)
	return scanOpenedLog(f, err, path, mark, now, window, filters, seen)
}
