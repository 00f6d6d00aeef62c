package telemetry

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Reading is one row of the dashboard CSV.
type Reading struct {
	Score      float64 `json:"compliance_score"`
	Violations int     `json:"violations"`
	Quarter    string  `json:"quarter,omitempty"`
	// Date is the row's timestamp (documented shape) or date (real shape).
	Date     time.Time `json:"-"`
	DateText string    `json:"date"`
	// BlueprintVersion and Root24Lock come from the documented shape's
	// columns (root24_status in the real one); empty when absent.
	BlueprintVersion string `json:"blueprint_version,omitempty"`
	Root24Lock       string `json:"root_24_lock,omitempty"`
	Line             int    `json:"line"`
}

// Dashboard is what a CSV says: the current row (latest date not in the
// future) and the one before it.
type Dashboard struct {
	File     string   `json:"file"`
	Shape    string   `json:"shape"` // "real" or "documented"
	Rows     int      `json:"rows"`
	Current  Reading  `json:"current"`
	Previous *Reading `json:"previous,omitempty"`
}

// CSVError points at the file, line and column of a problem.
type CSVError struct {
	File         string
	Line, Column int
	Msg          string
	// Header marks a problem with the header line (a missing or doubled
	// column): the file's layout is wrong, as with a config error.
	Header bool
}

func (e *CSVError) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

var dateLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02"}

// parseDate reads a row date; a value without zone is UTC, a bare date is
// the start of that day.
func parseDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// parseScore accepts "95", "95.5" and "95/100".
func parseScore(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, "/100")
	f, err := strconv.ParseFloat(s, 64)
	if errors.Is(err, strconv.ErrRange) {
		return f, true // ±Inf or 0: the 0..100 check names it out of range
	}
	if err != nil || f != f {
		return 0, false
	}
	return f, true
}

// ReadCSVFile reads the dashboard CSV at path; see ReadCSV.
func ReadCSVFile(path string, now time.Time) (Dashboard, error) {
	f, err := os.Open(path)
	if err != nil {
		return Dashboard{}, err
	}
	defer f.Close()
	return ReadCSV(f, filepath.Base(path), now)
}

// ReadCSV streams a dashboard CSV of either column set, found by header
// name in any order, with or without BOM and CRLF. It keeps only the two
// latest rows, so its memory does not grow with the file. Rows dated after
// now are pre-filled placeholders and are skipped unread. name is used in
// errors ("name:line:column: ...").
func ReadCSV(r io.Reader, name string, now time.Time) (Dashboard, error) {
	return ScanCSV(r, name, now, nil)
}

// ScanCSV is ReadCSV that also hands visit every row that counts (valid,
// not dated after now) in file order, so a caller that wants the whole
// series (the console's chart) reads it with the same rules.
func ScanCSV(r io.Reader, name string, now time.Time, visit func(Reading)) (Dashboard, error) {
	d := Dashboard{File: name}
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\xef\xbb\xbf" {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = 0
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return d, &CSVError{File: name, Line: 1, Msg: "empty file, expected a header line"}
	}
	if err != nil {
		return d, csvErr(name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		k := strings.ToLower(strings.TrimSpace(h))
		if j, dup := col[k]; dup && k != "" {
			return d, &CSVError{File: name, Line: 1, Column: i + 1, Msg: fmt.Sprintf("column %q appears twice (columns %d and %d); keep one", k, j+1, i+1), Header: true}
		}
		col[k] = i
	}
	dateCol, dateName := -1, ""
	for _, k := range []string{"timestamp", "date"} {
		if i, ok := col[k]; ok {
			dateCol, dateName = i, k
			break
		}
	}
	d.Shape = "real"
	if _, ok := col["timestamp"]; ok {
		d.Shape = "documented"
	}
	var missing []string
	if dateCol < 0 {
		missing = append(missing, `"date" or "timestamp"`)
	}
	for _, k := range []string{"compliance_score", "violations"} {
		if _, ok := col[k]; !ok {
			missing = append(missing, strconv.Quote(k))
		}
	}
	if len(missing) > 0 {
		return d, &CSVError{File: name, Line: 1, Msg: fmt.Sprintf("missing required column %s (header has: %s)", strings.Join(missing, ", "), strings.Join(header, ", ")), Header: true}
	}
	opt := func(rec []string, keys ...string) string {
		for _, k := range keys {
			if i, ok := col[k]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
		}
		return ""
	}
	scoreCol, violCol := col["compliance_score"], col["violations"]
	var cur, prev *Reading
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return d, csvErr(name, err)
		}
		line, _ := cr.FieldPos(0)
		d.Rows++
		dt, ok := parseDate(rec[dateCol])
		if !ok {
			return d, &CSVError{File: name, Line: line, Column: dateCol + 1, Msg: fmt.Sprintf("column %q: %q is not a date (want 2006-01-02 or RFC 3339)", dateName, rec[dateCol])}
		}
		if dt.After(now) {
			continue
		}
		score, ok := parseScore(rec[scoreCol])
		if !ok {
			return d, &CSVError{File: name, Line: line, Column: scoreCol + 1, Msg: fmt.Sprintf("column \"compliance_score\": %q is not a number", rec[scoreCol])}
		}
		if score < 0 || score > 100 {
			return d, &CSVError{File: name, Line: line, Column: scoreCol + 1, Msg: fmt.Sprintf("column \"compliance_score\": %s is out of range (0..100)", strings.TrimSpace(rec[scoreCol]))}
		}
		viol, err := strconv.Atoi(strings.TrimSpace(rec[violCol]))
		if errors.Is(err, strconv.ErrRange) {
			return d, &CSVError{File: name, Line: line, Column: violCol + 1, Msg: fmt.Sprintf("column \"violations\": %s is out of range", strings.TrimSpace(rec[violCol]))}
		}
		if err != nil || viol < 0 {
			return d, &CSVError{File: name, Line: line, Column: violCol + 1, Msg: fmt.Sprintf("column \"violations\": %q is not a whole number of 0 or more", rec[violCol])}
		}
		rd := Reading{
			Score: score, Violations: viol, Quarter: opt(rec, "quarter"), Date: dt, DateText: strings.TrimSpace(rec[dateCol]),
			BlueprintVersion: opt(rec, "blueprint_version"), Root24Lock: opt(rec, "root_24_lock", "root24_status"), Line: line,
		}
		if visit != nil {
			visit(rd)
		}
		switch {
		case cur == nil || !dt.Before(cur.Date):
			// Same date: the later row in the file wins.
			prev, cur = cur, &rd
		case prev == nil || !dt.Before(prev.Date):
			// Older than the current row but not than the previous one.
			prev = &rd
		}
	}
	if cur == nil {
		if d.Rows == 0 {
			return d, &CSVError{File: name, Line: 2, Msg: "no data rows after the header"}
		}
		return d, &CSVError{File: name, Line: 2, Msg: fmt.Sprintf("no row is dated on or before %s; all %d rows are in the future", now.UTC().Format(time.RFC3339), d.Rows)}
	}
	d.Current = *cur
	d.Previous = prev
	return d, nil
}

func csvErr(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &CSVError{File: name, Line: pe.Line, Column: pe.Column, Msg: pe.Err.Error()}
	}
	return fmt.Errorf("%s: %w", name, err)
}
