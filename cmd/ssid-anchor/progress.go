package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/mattn/go-isatty"
)

// progressIntervalEnv sets how often a long run prints a progress line when
// stderr is not a terminal (a Go duration; "0" or "off" turns the lines
// off). Tests set it short; the default suits a journal or a CI log.
const progressIntervalEnv = "SSID_ANCHOR_PROGRESS_INTERVAL"

// defaultProgressInterval is how often a progress line is printed when
// stderr is not a terminal, as restic does under systemd, CI or nohup.
const defaultProgressInterval = 5 * time.Second

// minProgressTick is the shortest period of the progress ticker.
const minProgressTick = time.Second

// isTerminal says whether w is a terminal (where progress is a bar).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// progressLines prints one line on stderr every interval while a long
// anchor, verify or export runs and stderr is not a terminal:
//
//	[0:05] 3 of 7 files, 812 MiB read; registry/big.zip 41% of 2.0 GiB
//
// Hand-written: kubo's progress bar (cheggaaa/pb) draws a bar in place and
// has no line mode, and restic's reporter is internal to restic.
type progressLines struct {
	w     io.Writer
	unit  string // "files", "records", "CARs"
	verb  string // what the bytes were: "read" or "written"
	now   func() time.Time
	every time.Duration
	start time.Time

	mu               sync.Mutex
	last             time.Time
	done, total      int
	failed           int
	bytes            int64
	cur              string
	curDone, curSize int64

	stop chan struct{}
	wg   sync.WaitGroup
}

// newProgress returns the progress lines of a run counting unit (and
// bytes, which verb says what was done with) on g's
// stderr, or nil when there must be none: --quiet, a terminal (anchor
// draws its bars there), or the interval turned off. Close stops it.
func (g *globalOptions) newProgress(unit, verb string) *progressLines {
	if g.Quiet || isTerminal(g.stderr) {
		return nil
	}
	every := defaultProgressInterval
	if v := strings.TrimSpace(g.env(progressIntervalEnv)); v != "" {
		d, err := time.ParseDuration(v)
		if v == "off" || (err == nil && d <= 0) {
			return nil
		}
		if err != nil {
			g.log.Warn("ignoring "+progressIntervalEnv, "value", v, "err", err)
		} else {
			every = d
		}
	}
	return startProgress(g.stderr, unit, verb, every, time.Now, nil)
}

// startProgress starts the lines; tick, when set, replaces the ticker (a
// test drives it), else a time.Ticker of every runs.
func startProgress(w io.Writer, unit, verb string, every time.Duration, now func() time.Time, tick <-chan time.Time) *progressLines {
	p := &progressLines{w: w, unit: unit, verb: verb, now: now, every: every, stop: make(chan struct{})}
	p.start = now()
	p.last = p.start
	var t *time.Ticker
	if tick == nil {
		// A line comes from the ticker when the run makes no progress
		// for a while (one large file, a slow fetch), and from the
		// updates when it does (due). The ticker ticks at most once a
		// second: a test's tiny interval makes every update print
		// without a ticker spinning.
		t = time.NewTicker(max(every, minProgressTick))
		tick = t.C
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if t != nil {
			defer t.Stop()
		}
		for {
			select {
			case <-p.stop:
				return
			case <-tick:
				p.mu.Lock()
				p.due()
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// Close stops the lines. A nil progress is a no-op throughout.
func (p *progressLines) Close() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
}

// print writes the line; the caller holds mu.
func (p *progressLines) print() {
	t := p.now()
	p.last = t
	el := t.Sub(p.start).Round(time.Second)
	var b strings.Builder
	fmt.Fprintf(&b, "[%d:%02d] ", int(el.Minutes()), int(el.Seconds())%60)
	if p.total > 0 {
		fmt.Fprintf(&b, "%d of %d %s", p.done, p.total, p.unit)
	} else {
		fmt.Fprintf(&b, "%d %s", p.done, p.unit)
	}
	if p.failed > 0 {
		fmt.Fprintf(&b, ", %d failed", p.failed)
	}
	if p.bytes > 0 {
		fmt.Fprintf(&b, ", %s %s", humanize.IBytes(uint64(p.bytes)), p.verb)
	}
	if p.cur != "" && p.curSize > 0 {
		fmt.Fprintf(&b, "; %s %d%% of %s", p.cur, p.curDone*100/p.curSize, humanize.IBytes(uint64(p.curSize)))
	}
	b.WriteByte('\n')
	io.WriteString(p.w, b.String())
}

// due prints a line when the interval has passed since the last one, so a
// run whose updates come faster than the ticker's goroutine is scheduled
// still prints on time; the caller holds mu.
func (p *progressLines) due() {
	if p.now().Sub(p.last) >= p.every {
		p.print()
	}
}

// setTotal says how many units the run has.
func (p *progressLines) setTotal(n int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.total = n
	p.mu.Unlock()
}

// count says how many units are done and how many of them failed.
func (p *progressLines) count(done, failed int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.done, p.failed = done, failed
	p.due()
	p.mu.Unlock()
}

// read counts n more bytes read or written.
func (p *progressLines) read(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.bytes += n
	p.due()
	p.mu.Unlock()
}

// file starts reading a file of size bytes (anchor's OnFile) and returns
// the callback that counts its bytes.
func (p *progressLines) file(path string, size int64) func(int) {
	p.mu.Lock()
	p.cur, p.curDone, p.curSize = path, 0, size
	p.mu.Unlock()
	return func(n int) {
		p.mu.Lock()
		p.curDone += int64(n)
		p.bytes += int64(n)
		p.due()
		p.mu.Unlock()
	}
}
