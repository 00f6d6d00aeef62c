// Command bench is the benchmark of issues 13 ("anchoring at the speed of
// the disk") and 22 ("the appliance at the real tree's size"), the first
// part of `make bench` (scripts/bench.sh) and all of `make soak`. In
// one run it measures ssid-anchor against baselines on this machine and
// prints, per case, a table of medians and the ratios the issue sets targets
// for (absolute times drift with the machine and its load; ratios of
// commands run interleaved do not).
//
//	go run ./scripts/bench -bin bin/ssid-anchor -ipfs bin/ipfs \
//	    [-size 1GiB] [-small 1000] [-treefiles 20000] [-depth 8] [-runs 3] \
//	    [-only large,small,tree,verify,export,incremental,daemon,soak] [-idle 30s]
//	    [-soak 10m] [-scrape 5s] [-dir DIR] [-seed N] [-cold] [-json FILE]
//
// Cases:
//   - large: one -size random file anchored;
//   - small: -small files of 4 KiB, each its own record;
//   - tree: -treefiles files in a tree -depth levels deep (mostly 1-64 KiB,
//     a few up to 4 MiB, random content from -seed), selected by `**` globs
//     of an appliance config, anchored end to end (selection included);
//   - verify: `ssid-anchor verify` of that anchored tree;
//   - export: `ssid-anchor export --car` of it;
//   - incremental: runs over the anchored tree (no new event; a new event
//     and nothing changed; one file changed) against a first full anchor
//     of the same files (incremental.go);
//   - daemon: `ssid-anchor daemon` and stock `ipfs daemon --offline`, each
//     holding the tree, idle -idle, their RssAnon and RssFile (daemon.go);
//   - soak (only when named, make soak): the daemon scraped for -soak.
//
// Baselines, each run in the same round as the case: stock kubo (the -ipfs
// CLI, a repo made by `ipfs init` with its default profile) running
// `ipfs add --offline -Q [-r]`, reported alone and with a following sync(2);
// `cp [-r]` into the same file system followed by sync(2), the physical
// floor of a durable copy; `openssl dgst -sha256` of the same bytes. verify
// is compared with openssl over the tree and stock `ipfs repo verify`,
// export with stock `ipfs dag export` of the same files and cp -r + sync.
//
// Round i runs every command of a case once, in an order rotated by i, so
// drift of the machine hits all commands alike; the table shows the median
// of -runs rounds. Before every command the file systems are synced (nobody
// pays for pages an earlier command left dirty); the source files are read
// once before each round so every command finds them in the page cache
// (-cold drops the page cache before every command instead). Wall time and
// peak RSS (ru_maxrss of the command and its children, taken by a small
// launcher process: see launcherArg) are recorded for every command; -json
// FILE writes every sample.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the flags; run takes them so the test drives the harness
// without a process of its own.
type options struct {
	Bin, IPFS string
	Size      int64
	Small     int
	TreeFiles int
	Depth     int
	Runs      int
	Only      string
	Dir       string
	Seed      uint64
	Cold      bool
	JSON      string
	// Idle is how long a daemon idles before its memory is read; Soak
	// how long the soak scrapes it, every Scrape.
	Idle, Soak, Scrape time.Duration
}

// caseNames is every case of "all", in the order they run; extraCases run
// only when named (the soak takes -soak, 10 minutes by default: make soak).
var (
	caseNames  = []string{"large", "small", "tree", "verify", "export", "incremental", "daemon"}
	extraCases = []string{"soak"}
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == launcherArg {
		os.Exit(launcherMain(os.Args[2:]))
	}
	o := options{Size: 1 << 30}
	flag.StringVar(&o.Bin, "bin", "bin/ssid-anchor", "ssid-anchor binary")
	flag.StringVar(&o.IPFS, "ipfs", "bin/ipfs", "stock kubo CLI (make ipfs)")
	flag.Var((*sizeFlag)(&o.Size), "size", "bytes of the large file (suffixes KiB, MiB, GiB)")
	flag.IntVar(&o.Small, "small", 1000, "number of 4 KiB files of the small case")
	flag.IntVar(&o.TreeFiles, "treefiles", 20000, "files of the tree case")
	flag.IntVar(&o.Depth, "depth", 8, "directory levels of the tree case")
	flag.IntVar(&o.Runs, "runs", 3, "rounds per case; tables show the median")
	flag.StringVar(&o.Only, "only", "all", "comma list of cases to run: "+strings.Join(append(caseNames, extraCases...), ",")+" or all (all but "+strings.Join(extraCases, ",")+")")
	flag.StringVar(&o.Dir, "dir", "", "directory (and so file system) to work in; default the system temp dir")
	flag.Uint64Var(&o.Seed, "seed", 0, "seed of the generated data (0: a random seed, printed)")
	flag.BoolVar(&o.Cold, "cold", false, "leave the sources out of the page cache: every command reads them from disk (needs root)")
	flag.StringVar(&o.JSON, "json", "", "write every sample and the environment as JSON to `FILE`")
	flag.DurationVar(&o.Idle, "idle", 30*time.Second, "how long a daemon idles before its memory is read (daemon, soak)")
	flag.DurationVar(&o.Soak, "soak", 10*time.Minute, "how long the soak case scrapes the daemon")
	flag.DurationVar(&o.Scrape, "scrape", 5*time.Second, "the soak's interval between scrapes of /metrics, /status and /")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected argument %q (flags only; see -h)\n", flag.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

// run runs the selected cases, printing each table to out as soon as its
// case is done and progress to progress.
func run(ctx context.Context, o options, out, progress io.Writer) error {
	cases, err := parseOnly(o.Only)
	if err != nil {
		return err
	}
	switch {
	case o.Runs < 1:
		return fmt.Errorf("-runs %d: must be at least 1", o.Runs)
	case o.Size < 1:
		return fmt.Errorf("-size %d: must be positive", o.Size)
	case o.Small < 1:
		return fmt.Errorf("-small %d: must be positive", o.Small)
	case o.TreeFiles < 1:
		return fmt.Errorf("-treefiles %d: must be positive", o.TreeFiles)
	case o.Depth < 1:
		return fmt.Errorf("-depth %d: must be positive", o.Depth)
	case o.Idle < 0:
		return fmt.Errorf("-idle %s: must not be negative", o.Idle)
	case slices.Contains(cases, "soak") && (o.Soak <= 0 || o.Scrape <= 0):
		return fmt.Errorf("-soak %s, -scrape %s: must be positive", o.Soak, o.Scrape)
	}
	for _, p := range []*string{&o.Bin, &o.IPFS} {
		a, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(a); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s: not an executable (make build ipfs builds bin/ssid-anchor and bin/ipfs)", a)
		}
		*p = a
	}
	for _, tool := range []string{"openssl", "cp", "find"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed as a baseline: %w", tool, err)
		}
	}
	if o.Seed == 0 {
		var b [8]byte
		rand.Read(b[:])
		o.Seed = binary.LittleEndian.Uint64(b[:])%(1<<31) + 1 // short to type, exact in JSON
	}
	parent := o.Dir
	if parent == "" {
		parent = os.TempDir()
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("-dir: %w", err)
	}
	work, err := os.MkdirTemp(parent, "ssid-anchor-bench-")
	if err != nil {
		return fmt.Errorf("-dir: %w", err)
	}
	defer os.RemoveAll(work)

	b := &bench{o: o, work: work, out: out, progress: progress}
	b.rep = newReport(ctx, o, work)
	if b.rep.RSSFloorMiB, err = launcherFloor(ctx, work); err != nil {
		return err
	}
	b.printHeader()
	for _, name := range cases {
		if err := ctx.Err(); err != nil {
			return err
		}
		cr, err := b.runCase(ctx, name)
		if err != nil {
			err = fmt.Errorf("case %s: %w", name, err)
			if o.JSON != "" { // keep the cases that finished
				b.rep.finish()
				b.rep.Error = err.Error()
				if jerr := b.rep.writeJSON(o.JSON); jerr != nil {
					fmt.Fprintf(progress, "bench: -json: %v\n", jerr)
				}
			}
			return err
		}
		b.rep.Cases = append(b.rep.Cases, cr)
		printCase(out, cr, o.Runs)
	}
	b.rep.finish()
	fmt.Fprintf(out, "\nload average at the end: %s (at the start: %s) on %d CPUs; other work on the machine inflates wall times, and the ratios less (the commands of a round share its drift); RSS does not depend on it\n",
		b.rep.LoadEnd, b.rep.LoadStart, b.rep.NProc)
	if b.noDrop {
		b.rep.Caches += " (NOT DONE: the page cache could not be dropped, run as root; later commands may pay for reclaiming earlier ones' pages)"
		fmt.Fprintln(out, "warning: the page cache could not be dropped before each command (needs root): a command's wall and CPU time may include reclaiming memory earlier commands filled")
	}
	if o.JSON != "" {
		if err := b.rep.writeJSON(o.JSON); err != nil {
			return fmt.Errorf("-json: %w", err)
		}
		fmt.Fprintf(out, "raw samples: %s\n", o.JSON)
	}
	return nil
}

func parseOnly(s string) ([]string, error) {
	want := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "all" || p == "":
			for _, n := range caseNames {
				want[n] = true
			}
		case slices.Contains(caseNames, p) || slices.Contains(extraCases, p):
			want[p] = true
		default:
			return nil, fmt.Errorf("-only: unknown case %q (cases: %s, or all)", p, strings.Join(append(caseNames, extraCases...), ", "))
		}
	}
	var out []string
	for _, n := range append(caseNames, extraCases...) {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// sizeFlag is a byte count with an optional binary suffix (4MiB, 1GiB, 512K).
type sizeFlag int64

func (s *sizeFlag) String() string { return human(int64(*s)) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

func parseSize(v string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(v))
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suf)), u.m
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a positive size like 1GiB, 256MiB or 4194304")
	}
	return int64(n * float64(mult)), nil
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', -1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}
