package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// bench is one run of the harness.
type bench struct {
	o        options
	work     string
	out      io.Writer
	progress io.Writer
	rep      *report
	tree     *treeState
	asides   int
	noDrop   bool // the page cache could not be dropped (not root)
}

// aside moves a previous round's output out of the way instead of
// deleting it: on ext4 without a journal (this machine's disk) every inode
// allocation looks up the inode table for recently deleted inodes, so
// deleting thousands of block files just before a measured command would
// slow that command's file creations (flatfs writes one file per block).
// rounds deletes what was moved aside once the case is measured.
func (b *bench) aside(path string) error {
	if _, err := os.Lstat(path); os.IsNotExist(err) {
		return nil
	}
	dir := filepath.Join(b.work, "aside")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b.asides++
	return os.Rename(path, filepath.Join(dir, fmt.Sprint(b.asides)))
}

// step is one command of a case. Its plain wall time is recorded under key
// (when set) and its wall time plus a sync(2) right after it under syncKey
// (when set), both from the same run.
type step struct {
	key, label         string
	syncKey, syncLabel string
	subject            bool // an ssid-anchor command (ratios are taken of it)
	prep               func() error
	argv               []string
	env                []string
	stdout             string       // file that receives stdout ("" discards it)
	check              func() error // after the measurement, untimed
}

// sample is one measurement of one command.
type sample struct {
	Round    int     `json:"round"`
	Position int     `json:"position"` // 0-based place in the round's order
	WallS    float64 `json:"wall_s"`
	RSSKiB   int64   `json:"max_rss_kib"`
	// CPUS is user + system time of the command and its children: it
	// tells the code's own cost from time spent waiting on the disk or on
	// kernel locks, which wall time mixes in.
	CPUS float64 `json:"cpu_s"`
}

// row is one line of a case's table.
type row struct {
	Key        string   `json:"key"`
	Label      string   `json:"label"`
	Subject    bool     `json:"subject"`
	Samples    []sample `json:"samples"`
	MedianS    float64  `json:"median_s"`
	MedianCPUS float64  `json:"median_cpu_s"`
	MinS       float64  `json:"min_s"`
	MaxS       float64  `json:"max_s"`
	PeakRSSMiB float64  `json:"peak_rss_mib"`
	// MedianRSSMiB is the median of the rounds' peak RSS.
	MedianRSSMiB float64 `json:"median_rss_mib"`
}

func (r *row) summarize() {
	w := make([]float64, len(r.Samples))
	for i, s := range r.Samples {
		w[i] = s.WallS
		r.PeakRSSMiB = max(r.PeakRSSMiB, float64(s.RSSKiB)/1024)
	}
	r.MinS, r.MaxS = slices.Min(w), slices.Max(w)
	r.MedianS = medianOf(w)
	cpu := make([]float64, len(r.Samples))
	for i, s := range r.Samples {
		cpu[i] = s.CPUS
	}
	r.MedianCPUS = medianOf(cpu)
	rss := make([]float64, len(r.Samples))
	for i, s := range r.Samples {
		rss[i] = float64(s.RSSKiB) / 1024
	}
	r.MedianRSSMiB = medianOf(rss)
}

func medianOf(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// rounds runs every step once per round, the order rotated by the round,
// with warm (unless -cold) reading the sources before each round, and
// returns the rows in the steps' order.
func (b *bench) rounds(ctx context.Context, name string, steps []step, warm []string) ([]*row, error) {
	var rows []*row
	byKey := map[string]*row{}
	for _, s := range steps {
		for _, kl := range [][2]string{{s.key, s.label}, {s.syncKey, s.syncLabel}} {
			if kl[0] == "" {
				continue
			}
			if byKey[kl[0]] != nil {
				return nil, fmt.Errorf("two rows named %s", kl[0])
			}
			r := &row{Key: kl[0], Label: kl[1], Subject: s.subject}
			byKey[kl[0]] = r
			rows = append(rows, r)
		}
	}
	logs := filepath.Join(b.work, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	for round := range b.o.Runs {
		for pos := range steps {
			s := steps[(pos+round)%len(steps)]
			wall, withSync, rss, cpu, err := b.measure(ctx, s, warm, filepath.Join(logs, name+"-"+firstNonEmpty(s.key, s.syncKey)+".stderr"))
			if err != nil {
				return nil, err
			}
			if s.key != "" {
				byKey[s.key].Samples = append(byKey[s.key].Samples, sample{round, pos, wall.Seconds(), rss, cpu.Seconds()})
			}
			if s.syncKey != "" {
				byKey[s.syncKey].Samples = append(byKey[s.syncKey].Samples, sample{round, pos, withSync.Seconds(), rss, cpu.Seconds()})
			}
			fmt.Fprintf(b.progress, "%s round %d/%d: %-44s %8.3f s  %6.1f MiB\n", name, round+1, b.o.Runs,
				firstNonEmpty(s.label, s.syncLabel), max(wall, withSync).Seconds(), float64(rss)/1024)
		}
	}
	if err := os.RemoveAll(filepath.Join(b.work, "aside")); err != nil {
		return nil, err
	}
	for _, r := range rows {
		r.summarize()
	}
	return rows, nil
}

// measure runs one step: its untimed preparation, sync(2) (and with -cold
// dropping the page cache), then the command, timed, and the sync after it
// when the step asks for one.
func (b *bench) measure(ctx context.Context, s step, warm []string, errPath string) (wall, withSync time.Duration, rssKiB int64, cpu time.Duration, err error) {
	if s.prep != nil {
		if err := s.prep(); err != nil {
			return 0, 0, 0, 0, fmt.Errorf("preparing %s: %w", firstNonEmpty(s.label, s.syncLabel), err)
		}
	}
	syscall.Sync()
	// Every command starts with the page cache emptied: once earlier
	// commands' output has filled memory, each page a writer allocates
	// costs it a reclaim first (measured here: cp + sync of 1 GiB took 0.3 s
	// of CPU with free memory, 2.6-3.3 s once the cache was full), which
	// would make a command's time depend on what ran before it. Then, unless
	// -cold, the sources are read back so every command finds them cached.
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		if b.o.Cold {
			return 0, 0, 0, 0, fmt.Errorf("-cold: dropping the page cache (needs root): %w", err)
		}
		b.noDrop = true
	}
	if !b.o.Cold {
		if err := readAll(warm); err != nil {
			return 0, 0, 0, 0, fmt.Errorf("warming the page cache: %w", err)
		}
	}
	outPath := s.stdout
	if outPath == "" {
		outPath = os.DevNull
	}
	stdout, err := os.Create(outPath)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer stdout.Close()
	stderr, err := os.Create(errPath)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer stderr.Close()
	self, err := os.Executable()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	res := errPath + ".rusage"
	if err := os.Remove(res); err != nil && !os.IsNotExist(err) {
		return 0, 0, 0, 0, err
	}
	c := exec.CommandContext(ctx, self, append([]string{launcherArg, res}, s.argv...)...)
	c.Env = append(os.Environ(), s.env...)
	c.Stdout, c.Stderr = stdout, stderr
	if err := c.Run(); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("%q: %w\n%s", s.argv, err, tail(errPath))
	}
	if wall, rssKiB, cpu, err = readLauncher(res); err != nil {
		return 0, 0, 0, 0, err
	}
	withSync = wall
	if s.syncKey != "" {
		t := time.Now()
		syscall.Sync()
		withSync += time.Since(t)
	}
	if s.check != nil {
		if err := s.check(); err != nil {
			return 0, 0, 0, 0, fmt.Errorf("after %s: %w", firstNonEmpty(s.label, s.syncLabel), err)
		}
	}
	return wall, withSync, rssKiB, cpu, nil
}

// launcherArg as the first argument makes this program the launcher of one
// measured command: `bench -launch RESULT CMD ARGS...` runs CMD, waits, and
// writes its wall time in nanoseconds and its ru_maxrss in KiB to RESULT.
//
// Why a launcher: Go starts children with clone(CLONE_VM|CLONE_VFORK), and
// on exec Linux folds the high-water RSS of the mm the child leaves (the
// parent's) into the child's ru_maxrss. A command started by the driver
// would report at least the driver's own peak (tens of MiB after it has
// generated data or read a manifest). The launcher is a fresh process whose
// own peak is a few MiB (measured once and printed as the floor of the RSS
// column), and it times the command without its own start-up.
const launcherArg = "-launch"

func launcherMain(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "bench -launch RESULT CMD [ARGS...]")
		return 2
	}
	c := exec.Command(args[1], args[2:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the driver's kill
	start := time.Now()
	err := c.Start()
	if err == nil {
		// RESULT.pid names the command's process, for a driver that reads
		// its /proc entry while it runs (a daemon at idle).
		if werr := os.WriteFile(args[0]+".pid", fmt.Appendf(nil, "%d\n", c.Process.Pid), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "bench -launch:", werr)
		}
		err = c.Wait()
	}
	wall := time.Since(start)
	if c.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "bench -launch:", err)
		return 1
	}
	var rss int64
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss // KiB on Linux
	}
	cpu := c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	if werr := os.WriteFile(args[0], fmt.Appendf(nil, "%d %d %d\n", wall.Nanoseconds(), rss, cpu.Nanoseconds()), 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, "bench -launch:", werr)
		return 1
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench -launch:", err)
		return max(c.ProcessState.ExitCode(), 1)
	}
	return 0
}

func readLauncher(path string) (wall time.Duration, rssKiB int64, cpu time.Duration, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("the launcher left no result: %w", err)
	}
	var ns, rss, cpuNS int64
	if _, err := fmt.Sscan(string(b), &ns, &rss, &cpuNS); err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %q: %w", path, b, err)
	}
	return time.Duration(ns), rss, time.Duration(cpuNS), nil
}

// launcherFloor is the ru_maxrss the launcher reports for `true`: what
// every figure of the RSS column includes at least.
func launcherFloor(ctx context.Context, dir string) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	res := filepath.Join(dir, "floor.rusage")
	if out, err := exec.CommandContext(ctx, self, launcherArg, res, "true").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("the launcher (%s %s): %w\n%s", self, launcherArg, err, out)
	}
	_, rss, _, err := readLauncher(res)
	return float64(rss) / 1024, err
}

// runUntimed runs a setup command (repo init, an anchor that verify needs).
func runUntimed(ctx context.Context, env []string, argv ...string) ([]byte, error) {
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("%q: %w\n%s", argv, err, lastBytes(stderr.Bytes()))
	}
	return out, nil
}

// readAll reads every regular file under paths once, so the commands of
// a round find them in the page cache.
func readAll(paths []string) error {
	buf := make([]byte, 1<<20)
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	return lastBytes(b)
}

func lastBytes(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
