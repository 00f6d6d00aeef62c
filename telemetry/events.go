package telemetry

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/telemetry/notify"
	"golang.org/x/sys/unix"
)

// Event categories, each behind one event filter.
const (
	CategoryRelease         = "release"
	CategoryQuarterlyReport = "quarterly_report"
	CategoryBlueprintUpdate = "blueprint_update"
)

// Category sorts an event name into the filter that governs it: release
// (governance_release_published), quarterly report (automated_quarterly_audit,
// *_compliance_report*), blueprint update (blueprint_tagged,
// blueprint_v4.5_*). Other events are not news and get "".
func Category(name string) string {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "release"):
		return CategoryRelease
	case strings.Contains(n, "quarterly"), strings.Contains(n, "compliance_report"), strings.Contains(n, "audit"):
		return CategoryQuarterlyReport
	case strings.Contains(n, "blueprint"):
		return CategoryBlueprintUpdate
	}
	return ""
}

// wants says whether the filters let a category through.
func (f EventFilters) wants(category string) bool {
	switch category {
	case CategoryRelease:
		return f.NotifyOnRelease
	case CategoryQuarterlyReport:
		return f.NotifyOnQuarterlyReport
	case CategoryBlueprintUpdate:
		return f.NotifyOnBlueprintUpdate
	}
	return false
}

// tailLen is how many bytes before the mark prove the log was only
// appended to since.
const tailLen = 4096

// windowBytes is how much of the log's end is read when there is no
// usable mark (first check, or the log was rewritten).
const windowBytes = 1 << 20

// logScan is what one pass over the registry log found.
type logScan struct {
	mark    *LogMark
	mode    string // "new" (first check), "appended", "rewritten", "missing"
	scanned int    // events read
	news    []notify.Event
	more    int
	bad     []tree.BadBlock
}

// scanLog reads the registry events added since mark. With a mark whose
// tail still matches, only the bytes after it are read, so a check costs
// the new events, not the whole log. Without one (first check) or when the
// log was rewritten, only the last MiB is read and only events from the
// last window (one check interval) count as new: old history is not
// re-announced. The log is read under a shared lock, so an event being
// appended by `ssid-anchor event` is never seen half-written.
func scanLog(path string, mark *LogMark, now time.Time, window time.Duration, filters EventFilters, seen map[string]bool) (logScan, error) {
	f, err := os.Open(path)
	return scanOpenedLog(f, err, path, mark, now, window, filters, seen)
}

// scanOpenedLog is scanLog on a log the caller opened (through the
// governance root, which confines it); err is the open's error.
func scanOpenedLog(f *os.File, err error, path string, mark *LogMark, now time.Time, window time.Duration, filters EventFilters, seen map[string]bool) (logScan, error) {
	res := logScan{mark: mark}
	if errors.Is(err, fs.ErrNotExist) {
		res.mode = "missing"
		return res, nil
	}
	if err != nil {
		return res, err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		return res, fmt.Errorf("locking %s: %w", path, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	st, err := f.Stat()
	if err != nil {
		return res, err
	}
	size := st.Size()

	var start int64
	lineBase := 0
	incremental := false
	switch {
	case mark == nil:
		res.mode = "new"
	case mark.Offset <= size && tailMatches(f, mark):
		res.mode = "appended"
		start, lineBase, incremental = mark.Offset, mark.Lines, true
	default:
		res.mode = "rewritten"
	}
	if !incremental {
		start = max(0, size-windowBytes)
		// Count the lines before the window (a fast pass, no parsing) so
		// line numbers stay true, and start the window on a line.
		lineBase, start, err = linesBefore(f, start, size)
		if err != nil {
			return res, fmt.Errorf("reading %s: %w", path, err)
		}
	}

	cr := &countingReader{r: io.NewSectionReader(f, start, size-start)}
	var last string
	firstEvent := 0
	bad, err := tree.ScanEvents(cr, func(e tree.Event) error {
		if firstEvent == 0 {
			firstEvent = e.Line
		}
		res.scanned++
		last = e.ProofAnchor
		cat := Category(e.Name())
		if cat == "" || !filters.wants(cat) || seen[e.ProofAnchor] {
			return nil
		}
		if !incremental {
			ts, ok := parseDate(e.Field("timestamp"))
			if !ok || ts.Before(now.Add(-window)) || ts.After(now.Add(5*time.Minute)) {
				return nil
			}
		}
		seen[e.ProofAnchor] = true
		if len(res.news) >= maxListedEvents {
			res.more++
			return nil
		}
		res.news = append(res.news, notify.Event{
			Name: e.Name(), Category: cat, Version: e.Field("version"), Quarter: e.Field("quarter"),
			Timestamp: e.Field("timestamp"), ProofAnchor: e.ProofAnchor, Line: lineBase + e.Line,
		})
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("reading %s: %w", path, err)
	}
	clean := cr.n == 0 || cr.lastByte == '\n'
	for _, b := range bad {
		if !incremental && start > 0 && (firstEvent == 0 || b.Line < firstEvent) {
			continue // the window began inside an event
		}
		if strings.Contains(b.Reason, "not closed at end of file") {
			clean = false
		}
		b.Line += lineBase
		if b.EndLine > 0 {
			b.EndLine += lineBase
		}
		res.bad = append(res.bad, b)
	}
	if !clean {
		// Something is still being written at the end; read it again next
		// time (proof anchors already reported are remembered).
		return res, nil
	}
	end := start + cr.n
	nm := &LogMark{Offset: end, Lines: lineBase + cr.lines, LastEvent: last}
	if last == "" && mark != nil && incremental {
		nm.LastEvent = mark.LastEvent
	}
	nm.TailLen, nm.TailSHA256, err = tailHash(f, end)
	if err != nil {
		return res, fmt.Errorf("reading %s: %w", path, err)
	}
	res.mark = nm
	return res, nil
}

func tailHash(f *os.File, end int64) (int, string, error) {
	n := min(end, tailLen)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, end-n); err != nil && !errors.Is(err, io.EOF) {
		return 0, "", err
	}
	sum := sha256.Sum256(buf)
	return int(n), hex.EncodeToString(sum[:]), nil
}

func tailMatches(f *os.File, m *LogMark) bool {
	if m.Offset < int64(m.TailLen) || m.TailLen < 0 {
		return false
	}
	n, sum, err := tailHash(f, m.Offset)
	return err == nil && n == m.TailLen && sum == m.TailSHA256
}

// linesBefore counts the newlines before off and moves off to the start of
// the next line, so a window never begins mid-line.
func linesBefore(f *os.File, off, size int64) (lines int, start int64, err error) {
	if off == 0 {
		return 0, 0, nil
	}
	buf := make([]byte, 256<<10)
	sr := io.NewSectionReader(f, 0, off)
	for {
		n, rerr := sr.Read(buf)
		lines += bytes.Count(buf[:n], []byte{'\n'})
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, 0, rerr
		}
	}
	if _, err := f.ReadAt(buf[:1], off-1); err != nil {
		return 0, 0, err
	}
	if buf[0] == '\n' {
		return lines, off, nil
	}
	rest := bufio.NewReader(io.NewSectionReader(f, off, size-off))
	for {
		b, err := rest.ReadByte()
		if err == io.EOF {
			return lines, off, nil
		}
		if err != nil {
			return 0, 0, err
		}
		off++
		if b == '\n' {
			return lines + 1, off, nil
		}
	}
}

// countingReader counts what ScanEvents consumed.
type countingReader struct {
	r        io.Reader
	n        int64
	lines    int
	lastByte byte
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		c.lines += bytes.Count(p[:n], []byte{'\n'})
		c.lastByte = p[n-1]
	}
	return n, err
}
