package telemetry

import (
	"bufio"
	"bytes"
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

// scanOpenedLog reads the registry events added since mark from a log the
// caller opened (through the governance root, which confines it); err is
// the open's error and path names the log in messages. With a mark whose
// tail still matches, only the bytes after it are read, so a check costs
// the new events, not the whole log. Without one (first check) or when the
// log was rewritten, only the last MiB is read and only events from the
// last window (one check interval) count as new: old history is not
// re-announced. The log is read under a shared lock, so an event being
// appended by `ssid-anchor event` is never seen half-written.
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

	var (
		base        tree.Cursor
		incremental bool
	)
	switch {
	case mark == nil:
		res.mode = "new"
	case mark.Matches(f, size):
		res.mode = "appended"
		base, incremental = *mark, true
	default:
		res.mode = "rewritten"
	}
	if !incremental {
		start := max(0, size-windowBytes)
		// Count the lines before the window (a fast pass, no parsing) so
		// line numbers stay true, and start the window on a line. The
		// events before it are not counted: the cursor's count stays 0
		// (unknown), which telemetry never needs.
		lines, start, err := linesBefore(f, start, size)
		if err != nil {
			return res, fmt.Errorf("reading %s: %w", path, err)
		}
		base = tree.Cursor{Offset: start, Lines: lines}
	}

	firstEvent := 0
	next, _, bad, err := tree.ReadEventsAt(f, size, base, func(e tree.Event) error {
		if firstEvent == 0 {
			firstEvent = e.Line
		}
		res.scanned++
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
			Timestamp: e.Field("timestamp"), ProofAnchor: e.ProofAnchor, Line: e.Line,
		})
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("reading %s: %w", path, err)
	}
	for _, b := range bad {
		if !incremental && base.Offset > 0 && (firstEvent == 0 || b.Line < firstEvent) {
			continue // the window began inside an event
		}
		res.bad = append(res.bad, b)
	}
	if base.Offset > 0 && base.Count == 0 {
		next.Count = 0 // events before the window were never counted
	}
	// The shared cursor stops before an event still being written at the
	// end, so it is read whole next time (proof anchors already reported
	// are remembered).
	res.mark = &next
	return res, nil
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
