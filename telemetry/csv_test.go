package telemetry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestReadCSVShapes(t *testing.T) {
	cases := []struct {
		file, now   string
		shape       string
		score, prev float64
		viol, line  int
		quarter     string
		blueprint   string
		root24      string
	}{
		// The real SSID file: future quarters are pre-filled placeholders.
		{"dashboard_data.csv", "2026-01-15T00:00:00Z", "real", 100, 0, 0, 2, "2025-Q4", "", "PASS"},
		{"dashboard_data.csv", "2026-04-01T00:00:00Z", "real", 100, 100, 0, 3, "2026-Q1", "", "PASS"},
		{"dashboard_data.csv", "2030-01-01T00:00:00Z", "real", 100, 100, 0, 5, "2026-Q3", "", "PASS"},
		// The documented shape, rows out of order, one in the future.
		{"dashboard_documented.csv", "2026-07-01T00:00:00Z", "documented", 88, 96, 1, 3, "2026-Q2", "v4.4", "active"},
		{"dashboard_documented.csv", "2026-05-01T00:00:00Z", "documented", 96, 100, 0, 4, "2026-Q1", "v4.3", "active"},
		// BOM, CRLF, columns in another order, a quoted decimal score.
		{"dashboard_bom_crlf.csv", "2026-06-01T00:00:00Z", "real", 91.5, 100, 3, 3, "2026-Q1", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.file+"@"+tc.now, func(t *testing.T) {
			d, err := ReadCSVFile(filepath.Join("testdata", tc.file), day(tc.now))
			if err != nil {
				t.Fatal(err)
			}
			c := d.Current
			if d.Shape != tc.shape || c.Score != tc.score || c.Violations != tc.viol || c.Line != tc.line || c.Quarter != tc.quarter ||
				c.BlueprintVersion != tc.blueprint || c.Root24Lock != tc.root24 {
				t.Errorf("got shape %s %+v", d.Shape, c)
			}
			if tc.prev == 0 {
				if d.Previous != nil {
					t.Errorf("previous %+v, want none", d.Previous)
				}
			} else if d.Previous == nil || d.Previous.Score != tc.prev {
				t.Errorf("previous %+v, want score %g", d.Previous, tc.prev)
			}
		})
	}
}

func TestReadCSVErrors(t *testing.T) {
	now := day("2026-06-01T00:00:00Z")
	cases := []struct {
		file string
		want string
	}{
		{"broken_missing_column.csv", `broken_missing_column.csv:1: missing required column "compliance_score" (header has: quarter, date, violations, commits)`},
		{"broken_text_score.csv", `broken_text_score.csv:3:3: column "compliance_score": "excellent" is not a number`},
		{"broken_empty.csv", `broken_empty.csv:1: empty file, expected a header line`},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			_, err := ReadCSVFile(filepath.Join("testdata", tc.file), now)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant  %s", err, tc.want)
			}
			var ce *CSVError
			if !errors.As(err, &ce) {
				t.Errorf("not a *CSVError: %T", err)
			}
		})
	}
	inline := []struct{ name, body, want string }{
		{"bad date", "date,compliance_score,violations\nyesterday,100,0\n", "x.csv:2:1: column \"date\": \"yesterday\" is not a date"},
		{"negative violations", "date,compliance_score,violations\n2026-01-01,100,-1\n", "x.csv:2:3: column \"violations\""},
		{"score above 100", "date,compliance_score,violations\n2026-01-01,101,0\n", "x.csv:2:2: column \"compliance_score\": 101 is out of range (0..100)"},
		{"doubled score column", "date,compliance_score,violations,compliance_score\n2026-01-01,90,0,80\n", "x.csv:1:4: column \"compliance_score\" appears twice (columns 2 and 4)"},
		{"score overflows", "date,compliance_score,violations\n2026-01-01,1e999,0\n", "compliance_score\": 1e999 is out of range"},
		{"short row", "date,compliance_score,violations\n2026-01-01,100\n", "x.csv:2:1: wrong number of fields"},
		{"header only", "date,compliance_score,violations\n", "x.csv:2: no data rows"},
		{"all future", "date,compliance_score,violations\n2099-01-01,100,0\n", "x.csv:2: no row is dated on or before"},
		{"no date column", "quarter,compliance_score,violations\nQ1,100,0\n", `missing required column "date" or "timestamp"`},
	}
	for _, tc := range inline {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(tc.body), "x.csv", now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestReadCSVSameDateLaterRowWins(t *testing.T) {
	d, err := ReadCSV(strings.NewReader("date,compliance_score,violations\n2026-01-01,100,0\n2026-01-01,97,0\n"), "x.csv", day("2026-02-01T00:00:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Current.Score != 97 || d.Previous == nil || d.Previous.Score != 100 {
		t.Errorf("current %+v previous %+v", d.Current, d.Previous)
	}
}

func FuzzReadCSV(f *testing.F) {
	for _, name := range []string{"dashboard_data.csv", "dashboard_documented.csv", "dashboard_bom_crlf.csv", "broken_text_score.csv", "broken_missing_column.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(""))
	f.Add([]byte("\xef\xbb\xbfdate,compliance_score,violations\r\n2026-01-01,\"9\"\"5\",0\r\n"))
	now := day("2026-06-01T00:00:00Z")
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ReadCSV(strings.NewReader(string(b)), "fuzz.csv", now)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv:") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		c := d.Current
		if c.Date.After(now) || c.Score < 0 || c.Score > 100 || c.Violations < 0 || c.Line < 2 {
			t.Errorf("accepted an impossible current row %+v", c)
		}
		if p := d.Previous; p != nil && p.Date.After(c.Date) {
			t.Errorf("previous row %+v is newer than current %+v", p, c)
		}
	})
}
