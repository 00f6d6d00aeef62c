package console

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/ssid/ssid-anchor/anchor"
)

// TestKeptVerificationIsSmall: the compact result of a 16,500-record
// verification with 300 failures keeps a verdict per record, the first 100
// failures with their reasons cut short, and encodes to well under the
// full report's size; it reads back as it was.
func TestKeptVerificationIsSmall(t *testing.T) {
	const n = 16500
	recs := records(n)
	rep := &anchor.VerifyReport{ManifestCID: cidFor(999999), Chain: anchor.ChainResult{OK: true, Manifests: make([]anchor.ChainLink, 3)}, Signatures: anchor.SignatureResult{OK: true}}
	var c Recorder
	if err := c.Begin(rep); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 5000)
	for i, r := range recs {
		rr := anchor.RecordResult{Index: i, FilePath: r.FilePath, FileHash: r.FileHash, IPFSCID: r.IPFSCID, OK: i%55 != 0,
			Checks: []anchor.Check{{Name: "file", Status: "ok"}}}
		if !rr.OK {
			rr.Checks = append(rr.Checks, anchor.Check{Name: "blocks", Status: "failed", Detail: "missing from the repo " + long})
			rep.Failed++
		} else {
			rep.Passed++
		}
		if err := c.Record(rr); err != nil {
			t.Fatal(err)
		}
	}
	res := c.Result(rep)
	if len(res.Verdicts) != n || len(res.Keys) != 8*n || res.Failed != 300 || len(res.Failures) != maxFailures || res.MoreFailures != 200 {
		t.Fatalf("%d verdicts, %d key digits, %d failed, %d kept, %d more", len(res.Verdicts), len(res.Keys), res.Failed, len(res.Failures), res.MoreFailures)
	}
	if d := res.Failures[0].Checks; len(d) != 1 || len(d[0].Detail) > maxDetail+len("…") {
		t.Errorf("kept failure %+v: only failed checks, reasons cut at %d bytes", d, maxDetail)
	}
	run := &VerifyRun{At: testNow, Took: 1234, Result: res}
	b, err := MarshalVerifyRun(run)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kept verification of %d records: %d bytes", n, len(b))
	if len(b) > 10*n+maxFailures*(maxDetail+300) {
		t.Errorf("%d bytes for %d records", len(b), n)
	}
	back, err := LoadVerifyRun(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !back.At.Equal(run.At) || back.Took != run.Took || back.Result.Verdicts != res.Verdicts || back.Result.Keys != res.Keys || len(back.Result.Failures) != maxFailures {
		t.Error("the kept verification reads back differently")
	}

	// A verdict shows on its record while it is the same record.
	if got := back.Result.verdictFor(1, &recs[1]); got != "ok" {
		t.Errorf("record 1: %q, want ok", got)
	}
	if got := back.Result.verdictFor(55, &recs[55]); got != "failed" {
		t.Errorf("record 55: %q, want failed", got)
	}
	changed := recs[1]
	changed.FileHash = fmt.Sprintf("%064x", 424242)
	if got := back.Result.verdictFor(1, &changed); got != "" {
		t.Errorf("a record changed since shows %q", got)
	}
	if got := back.Result.verdictFor(n, &recs[0]); got != "" {
		t.Errorf("a record anchored since shows %q", got)
	}
}

// TestKeptVerificationRefusesBadFiles: a damaged or foreign file is an
// error naming what is wrong, never a page built from it.
func TestKeptVerificationRefusesBadFiles(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"not JSON":       {`{"format": 1, "at": `, "unexpected EOF"},
		"other format":   {`{"format": 2, "at": "2026-12-01T00:00:00Z"}`, "format 2"},
		"no time":        {`{"format": 1}`, "no time"},
		"unknown key":    {`{"format": 1, "at": "2026-12-01T00:00:00Z", "records": []}`, `unknown field "records"`},
		"keys mismatch":  {`{"format": 1, "at": "2026-12-01T00:00:00Z", "result": {"verdicts": "++", "keys": "00000000"}}`, "2 verdicts but 8 key digits"},
		"larger than 32": {`{"format": 1, "at": "2026-12-01T00:00:00Z", "error": "` + strings.Repeat("x", MaxSavedVerify) + `"}`, "larger than 32 MiB"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadVerifyRun(strings.NewReader(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}
