package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// report is everything a run measured, and the machine it ran on; -json
// writes it.
type report struct {
	Started     time.Time     `json:"started"`
	Finished    time.Time     `json:"finished"`
	Seed        uint64        `json:"seed"`
	Runs        int           `json:"runs"`
	Cold        bool          `json:"cold"`
	Caches      string        `json:"caches"`
	RSSFloorMiB float64       `json:"rss_floor_mib"`
	Dir         string        `json:"dir"`
	FSType      string        `json:"fs_type"`
	Kernel      string        `json:"kernel"`
	NProc       int           `json:"nproc"`
	LoadStart   string        `json:"loadavg_start"`
	LoadEnd     string        `json:"loadavg_end"`
	GoDriver    string        `json:"go_driver"`
	SSIDAnchor  binaryInfo    `json:"ssid_anchor"`
	IPFS        binaryInfo    `json:"ipfs"`
	OpenSSL     string        `json:"openssl"`
	Options     reportOptions `json:"options"`
	Cases       []*caseResult `json:"cases"`
	Error       string        `json:"error,omitempty"` // the case that failed; Cases holds those before it
}

type reportOptions struct {
	Size      int64  `json:"size"`
	Small     int    `json:"small"`
	TreeFiles int    `json:"treefiles"`
	Depth     int    `json:"depth"`
	Only      string `json:"only"`
}

type binaryInfo struct {
	Path      string `json:"path"`
	GoVersion string `json:"go_version"`
	Kubo      string `json:"kubo_version"`
}

// caseResult is one case: its rows, the ratios of its ssid-anchor command
// to each baseline, and its memory targets.
type caseResult struct {
	Name   string     `json:"name"`
	Title  string     `json:"title"`
	Files  int        `json:"files"`
	Bytes  int64      `json:"bytes"`
	Rows   []*row     `json:"rows"`
	Ratios []ratio    `json:"ratios"`
	RSS    []rssCheck `json:"rss_targets,omitempty"`
	// RSSRatios compare peak RSS with a baseline's.
	RSSRatios []ratio `json:"rss_ratios,omitempty"`
	// Daemon cases: memory rows and ratios; the soak.
	Mem       []*memRow   `json:"daemons,omitempty"`
	MemRatios []memRatio  `json:"daemon_ratios,omitempty"`
	Soak      *soakResult `json:"soak,omitempty"`
}

type ratio struct {
	Subject  string  `json:"subject"`
	Baseline string  `json:"baseline"`
	Value    float64 `json:"value"` // median over median
	// PerRound is the subject's time over the baseline's in each round
	// (the two ran back to back there): its spread shows how far the
	// machine's drift moves the ratio.
	PerRound []float64 `json:"per_round"`
	Target   float64   `json:"target,omitempty"` // at most; 0: none set
	Meets    *bool     `json:"meets,omitempty"`
}

type rssCheck struct {
	Subject  string  `json:"subject"`
	PeakMiB  float64 `json:"peak_mib"`
	LimitMiB float64 `json:"limit_mib"`
	Limit    string  `json:"limit"`
	Meets    bool    `json:"meets"`
}

func (c *caseResult) row(key string) *row {
	for _, r := range c.Rows {
		if r.Key == key {
			return r
		}
	}
	return nil
}

// ratios adds subject's median over each baseline's median, with the
// issue's target where it sets one.
func (c *caseResult) ratios(subject string, baselines []string, targets map[string]float64) {
	s := c.row(subject)
	for _, k := range baselines {
		b := c.row(k)
		r := ratio{Subject: subject, Baseline: k, Value: s.MedianS / b.MedianS}
		for i := range min(len(s.Samples), len(b.Samples)) {
			r.PerRound = append(r.PerRound, s.Samples[i].WallS/b.Samples[i].WallS)
		}
		if t, ok := targets[k]; ok {
			m := r.Value <= t
			r.Target, r.Meets = t, &m
		}
		c.Ratios = append(c.Ratios, r)
	}
}

// rssRatio adds subject's median peak RSS over the baseline's.
func (c *caseResult) rssRatio(subject, baseline string, target float64) {
	s, b := c.row(subject), c.row(baseline)
	r := ratio{Subject: subject, Baseline: baseline, Value: s.MedianRSSMiB / b.MedianRSSMiB}
	for i := range min(len(s.Samples), len(b.Samples)) {
		r.PerRound = append(r.PerRound, float64(s.Samples[i].RSSKiB)/float64(b.Samples[i].RSSKiB))
	}
	if target > 0 {
		m := r.Value <= target
		r.Target, r.Meets = target, &m
	}
	c.RSSRatios = append(c.RSSRatios, r)
}

// sumRow is a baseline made of two commands run in the same rounds: per
// round their wall and CPU times added, the larger peak RSS.
func sumRow(key, label string, a, b *row) *row {
	r := &row{Key: key, Label: label}
	for i := range min(len(a.Samples), len(b.Samples)) {
		x, y := a.Samples[i], b.Samples[i]
		r.Samples = append(r.Samples, sample{Round: x.Round, Position: x.Position, WallS: x.WallS + y.WallS, RSSKiB: max(x.RSSKiB, y.RSSKiB), CPUS: x.CPUS + y.CPUS})
	}
	r.summarize()
	return r
}

func (c *caseResult) rss(subject string, limitMiB float64, limit string) {
	p := c.row(subject).PeakRSSMiB
	c.RSS = append(c.RSS, rssCheck{Subject: subject, PeakMiB: p, LimitMiB: limitMiB, Limit: limit, Meets: p <= limitMiB})
}

func newReport(ctx context.Context, o options, work string) *report {
	r := &report{Started: time.Now().UTC(), Seed: o.Seed, Runs: o.Runs, Cold: o.Cold, Dir: work,
		FSType: fsType(work), Kernel: kernel(), NProc: runtime.NumCPU(), LoadStart: loadavg(),
		GoDriver: runtime.Version(), SSIDAnchor: binInfo(o.Bin), IPFS: binInfo(o.IPFS),
		Options: reportOptions{o.Size, o.Small, o.TreeFiles, o.Depth, o.Only}}
	r.Caches = "warm: before every command sync(2), the page cache dropped (echo 3 > /proc/sys/vm/drop_caches, so no command pays for reclaiming what earlier ones left in memory), then the case's source files (for verify and export also both repos) read back, so every command finds its sources cached and the rest of memory free"
	if o.Cold {
		r.Caches = "cold: sync(2) and echo 3 > /proc/sys/vm/drop_caches before every command"
	}
	if out, err := runUntimed(ctx, nil, o.IPFS, "version"); err == nil {
		r.IPFS.Kubo = strings.TrimPrefix(strings.TrimSpace(string(out)), "ipfs version ")
	}
	if out, err := runUntimed(ctx, nil, "openssl", "version"); err == nil {
		r.OpenSSL = strings.TrimSpace(string(out))
	}
	return r
}

func (r *report) finish() {
	r.Finished = time.Now().UTC()
	r.LoadEnd = loadavg()
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func (b *bench) printHeader() {
	r, w := b.rep, b.out
	fmt.Fprintf(w, "ssid-anchor benchmark (issues 13 and 22), %s\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "load average %s on %d CPUs; kernel %s\n", r.LoadStart, r.NProc, r.Kernel)
	fmt.Fprintf(w, "work dir %s on %s\n", r.Dir, r.FSType)
	fmt.Fprintf(w, "ssid-anchor %s (%s, kubo %s); stock %s (kubo %s, %s); %s; driver %s\n",
		r.SSIDAnchor.Path, r.SSIDAnchor.GoVersion, r.SSIDAnchor.Kubo, r.IPFS.Path, r.IPFS.Kubo, r.IPFS.GoVersion, r.OpenSSL, r.GoDriver)
	fmt.Fprintf(w, "stock kubo: a fresh repo per run from `ipfs init` (default profile); data seed %d (replay with -seed %d)\n", r.Seed, r.Seed)
	fmt.Fprintf(w, "caches %s\n", r.Caches)
	fmt.Fprintf(w, "round i runs every command of a case once, the order rotated by i; tables show the median of %d rounds, the range, the median CPU time (user + system of the command and its children; a row ending + sync shows the command's) and the peak RSS of each command (ru_maxrss of the command and its children; the launcher sets a floor of %.1f MiB, what `true` shows)\n", r.Runs, r.RSSFloorMiB)
}

var labels = map[string]string{
	"add": "stock add", "add+sync": "stock add + sync", "cp+sync": "cp + sync", "openssl": "openssl",
	"repo-verify": "stock repo verify", "dag-export": "stock dag export", "dag-export+sync": "stock dag export + sync",
	"repo-verify+openssl": "(stock repo verify + openssl)", "full": "first full anchor", "nothing-new": "no new event",
}

func printCase(out io.Writer, c *caseResult, runs int) {
	fmt.Fprintf(out, "\n== %s: %s ==\n", c.Name, c.Title)
	if c.Mem != nil {
		printMem(out, c)
		return
	}
	if c.Soak != nil {
		printSoak(out, c)
		return
	}
	w := len("command")
	for _, r := range c.Rows {
		w = max(w, len(r.Label))
	}
	fmt.Fprintf(out, "  %-*s  %9s  %15s  %9s  %12s\n", w, "command", "median s", "min–max s", "cpu s", "peak RSS MiB")
	for _, r := range c.Rows {
		fmt.Fprintf(out, "  %-*s  %9.3f  %15s  %9.3f  %12.1f\n", w, r.Label, r.MedianS, fmt.Sprintf("%.3f–%.3f", r.MinS, r.MaxS), r.MedianCPUS, r.PeakRSSMiB)
	}
	names := func(r ratio) string { return c.row(r.Subject).Label + " / " + labels[r.Baseline] }
	w = 0
	for _, r := range c.Ratios {
		w = max(w, len(names(r)))
	}
	for _, m := range c.RSS {
		w = max(w, len(c.row(m.Subject).Label+", peak RSS"))
	}
	fmt.Fprintf(out, "  ratios of medians (median of %d rounds):\n", runs)
	for _, r := range c.Ratios {
		line := fmt.Sprintf("    %-*s  %7.2f ×", w, names(r), r.Value)
		if len(r.PerRound) > 1 {
			line += fmt.Sprintf("  (rounds %.2f–%.2f)", slices.Min(r.PerRound), slices.Max(r.PerRound))
		}
		if r.Meets != nil {
			line += fmt.Sprintf("    target ≤ %.2f ×  %s", r.Target, verdict(*r.Meets))
		}
		fmt.Fprintln(out, line)
	}
	for _, m := range c.RSS {
		fmt.Fprintf(out, "    %-*s  %7.1f MiB  target ≤ %s (%.1f MiB)  %s\n",
			w, c.row(m.Subject).Label+", peak RSS", m.PeakMiB, m.Limit, m.LimitMiB, verdict(m.Meets))
	}
	for _, r := range c.RSSRatios {
		line := fmt.Sprintf("    %-*s  %7.2f ×", w, c.row(r.Subject).Label+", peak RSS / "+labels[r.Baseline]+"'s", r.Value)
		if len(r.PerRound) > 1 {
			line += fmt.Sprintf("  (rounds %.2f–%.2f)", slices.Min(r.PerRound), slices.Max(r.PerRound))
		}
		if r.Meets != nil {
			line += fmt.Sprintf("    target ≤ %.2f ×  %s", r.Target, verdict(*r.Meets))
		}
		fmt.Fprintln(out, line)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return runtime.GOOS
	}
	s := func(a [65]int8) string {
		b := make([]byte, 0, len(a))
		for _, c := range a {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		return string(b)
	}
	return s(u.Sysname) + " " + s(u.Release) + " " + s(u.Machine)
}

// fsType names the file system holding dir and its device, from the
// longest mount point of /proc/self/mountinfo that contains it (statfs's
// magic number cannot tell ext4 from ext2).
func fsType(dir string) string {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "unknown"
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	best, typ := "", "unknown"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 2 {
			continue
		}
		mp := unescapeMount(fields[4])
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, typ = mp, tail[0]+" ("+tail[1]+" on "+mp+")"
		}
	}
	return typ
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

func binInfo(path string) binaryInfo {
	bi := binaryInfo{Path: path}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return bi
	}
	bi.GoVersion = info.GoVersion
	for _, d := range info.Deps {
		if d.Path == "github.com/ipfs/kubo" {
			bi.Kubo = d.Version
		}
	}
	if info.Main.Path == "github.com/ipfs/kubo" {
		bi.Kubo = info.Main.Version
	}
	return bi
}
