package telemetry

import (
	"strings"
	"testing"
	"time"
)

// TestScanCSVVisitsEveryRowThatCounts: the console's chart gets every row
// the check would consider, in file order, and none dated in the future.
func TestScanCSVVisitsEveryRowThatCounts(t *testing.T) {
	const in = "\xef\xbb\xbfquarter,date,compliance_score,violations,commits,proof_anchors,hash_valid,root24_status\r\n" +
		"2025-Q4,2025-12-31,100,0,145,3ddc8d7a,true,PASS\r\n" +
		"2026-Q2,2026-06-30,92.5,1,0,pending,true,PASS\r\n" +
		"2026-Q1,2026-03-31,97,0,189,dc9bb56b,true,PASS\r\n" +
		"2026-Q3,2026-09-30,100,0,0,pending,true,PASS\r\n"
	now := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	var got []string
	d, err := ScanCSV(strings.NewReader(in), "dashboard_data.csv", now, func(r Reading) {
		got = append(got, r.DateText+"="+num(r.Score)+"@"+string(rune('0'+r.Line)))
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "2025-12-31=100@2 2026-06-30=92.5@3 2026-03-31=97@4"; strings.Join(got, " ") != want {
		t.Errorf("visited %v, want %s", got, want)
	}
	if d.Current.DateText != "2026-06-30" || d.Previous == nil || d.Previous.DateText != "2026-03-31" || d.Rows != 4 {
		t.Errorf("dashboard %+v: ScanCSV must decide like ReadCSV", d)
	}
}
