// Command bench measures ssid-anchor against baselines run side by side on
// the same machine and prints ratios (absolute times drift; ratios do not).
//
//	go run ./scripts/bench -bin bin/ssid-anchor -ipfs bin/ipfs [-size 1GiB] [-runs 3]
//
// Baselines: openssl/sha256sum of the same bytes, stock `ipfs add` from the
// kubo CLI built from this module graph, and the old scripts' way (one
// `ipfs add -Q FILE` process per file against a running daemon).
package main

import (
	"bufio"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type measure struct {
	wall  time.Duration
	rssKB int64
}

var (
	bin   = flag.String("bin", "bin/ssid-anchor", "ssid-anchor binary")
	ipfs  = flag.String("ipfs", "bin/ipfs", "stock kubo CLI")
	size  = flag.Int64("size", 1<<30, "bytes of the large file")
	runs  = flag.Int("runs", 3, "runs per measurement (median is printed)")
	small = flag.Int("small", 1000, "number of 4 KiB files")
	loopN = flag.Int("loop", 100, "files added one process each against a daemon (extrapolated)")
	dir   = flag.String("dir", "", "work directory (default: a temp dir, removed after)")
	only  = flag.String("only", "", "run only this part: large or small")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	work := *dir
	if work == "" {
		d, err := os.MkdirTemp("", "ssid-anchor-bench-")
		check(err)
		defer os.RemoveAll(d)
		work = d
	}
	abs := func(p string) string { a, err := filepath.Abs(p); check(err); return a }
	*bin, *ipfs = abs(*bin), abs(*ipfs)
	if *only == "" || *only == "large" {
		large(work)
	}
	if *only == "" || *only == "small" {
		smallFiles(work)
	}
}

func large(work string) {
	file := filepath.Join(work, "large.bin")
	writeRandom(file, *size)
	warm(file)
	var ssl, sum, stock, anchor []measure
	for i := range *runs {
		if p, err := exec.LookPath("openssl"); err == nil {
			ssl = append(ssl, timeCmd(nil, p, "dgst", "-sha256", file))
		}
		if p, err := exec.LookPath("sha256sum"); err == nil {
			sum = append(sum, timeCmd(nil, p, file))
		}
		repo := filepath.Join(work, fmt.Sprintf("stock-large-%d", i))
		env := []string{"IPFS_PATH=" + repo}
		run(env, *ipfs, "init", "--profile", "test")
		stock = append(stock, timeCmd(env, *ipfs, "add", "--offline", "-Q", file))
		os.RemoveAll(repo)

		root, repo2 := tree(work, fmt.Sprintf("anchor-large-%d", i))
		check(os.Link(file, filepath.Join(root, "05_documentation/releases/large.zip")))
		run(nil, *bin, "--repo", repo2, "init")
		anchor = append(anchor, timeCmd(nil, *bin, "--root", root, "--repo", repo2, "anchor"))
		os.RemoveAll(filepath.Dir(root))
	}
	a, s := median(anchor), median(stock)
	fmt.Printf("\n== one %s file (median of %d) ==\n", human(*size), *runs)
	fmt.Printf("%-40s %8.2f s  rss %4d MiB\n", "ssid-anchor anchor", a.wall.Seconds(), a.rssKB/1024)
	fmt.Printf("%-40s %8.2f s  rss %4d MiB\n", "stock ipfs add --offline -Q", s.wall.Seconds(), s.rssKB/1024)
	if len(ssl) > 0 {
		fmt.Printf("%-40s %8.2f s\n", "openssl dgst -sha256", median(ssl).wall.Seconds())
	}
	if len(sum) > 0 {
		fmt.Printf("%-40s %8.2f s\n", "sha256sum", median(sum).wall.Seconds())
	}
	fmt.Printf("ratio anchor / stock ipfs add      %.2f  (target <= 0.75)\n", ratio(a, s))
	if len(ssl) > 0 {
		fmt.Printf("ratio anchor / openssl sha256      %.2f  (the floor is 1)\n", ratio(a, median(ssl)))
	}
	if len(sum) > 0 {
		fmt.Printf("ratio stock ipfs add / sha256sum   %.2f\n", ratio(s, median(sum)))
	}
	fmt.Printf("peak RSS of anchor                 %d MiB  (target <= 160)\n", a.rssKB/1024)
	os.Remove(file)
}

func smallFiles(work string) {
	src := filepath.Join(work, "small")
	check(os.MkdirAll(src, 0o755))
	buf := make([]byte, 4096)
	for i := range *small {
		rand.Read(buf)
		check(os.WriteFile(filepath.Join(src, fmt.Sprintf("f%05d.zip", i)), buf, 0o644))
	}
	var stock, anchor []measure
	for i := range *runs {
		repo := filepath.Join(work, fmt.Sprintf("stock-small-%d", i))
		env := []string{"IPFS_PATH=" + repo}
		run(env, *ipfs, "init", "--profile", "test")
		stock = append(stock, timeCmd(env, *ipfs, "add", "--offline", "-Q", "-r", src))
		os.RemoveAll(repo)

		root, repo2 := tree(work, fmt.Sprintf("anchor-small-%d", i))
		ents, _ := os.ReadDir(src)
		for _, e := range ents {
			check(os.Link(filepath.Join(src, e.Name()), filepath.Join(root, "05_documentation/releases", e.Name())))
		}
		run(nil, *bin, "--repo", repo2, "init")
		anchor = append(anchor, timeCmd(nil, *bin, "--root", root, "--repo", repo2, "anchor"))
		os.RemoveAll(filepath.Dir(root))
	}
	perFile := loopAgainstDaemon(work, src)
	a, s := median(anchor), median(stock)
	loopTotal := perFile * time.Duration(*small)
	fmt.Printf("\n== %d files of 4 KiB, each its own record (median of %d) ==\n", *small, *runs)
	fmt.Printf("%-40s %8.3f s  rss %4d MiB\n", "ssid-anchor anchor", a.wall.Seconds(), a.rssKB/1024)
	fmt.Printf("%-40s %8.3f s\n", "stock ipfs add --offline -Q -r DIR", s.wall.Seconds())
	fmt.Printf("%-40s %8.1f ms per file -> %.1f s for %d\n", "ipfs add -Q FILE per file (daemon)", float64(perFile.Microseconds())/1000, loopTotal.Seconds(), *small)
	fmt.Printf("ratio anchor / stock add -r        %.2f  (target <= 1.5)\n", ratio(a, s))
	fmt.Printf("per-file loop / anchor             %.0f x  (target >= 100)\n", loopTotal.Seconds()/a.wall.Seconds())
}

// loopAgainstDaemon is the old scripts' way: a running daemon and one
// `ipfs add -Q FILE` process per file. It returns the median time per file.
func loopAgainstDaemon(work, src string) time.Duration {
	repo := filepath.Join(work, "daemon-repo")
	env := []string{"IPFS_PATH=" + repo}
	run(env, *ipfs, "init", "--profile", "test")
	d := exec.Command(*ipfs, "daemon", "--offline")
	d.Env = append(os.Environ(), env...)
	out, err := d.StdoutPipe()
	check(err)
	check(d.Start())
	defer func() { d.Process.Signal(syscall.SIGTERM); d.Wait(); os.RemoveAll(repo) }()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Daemon is ready") {
			break
		}
	}
	go io.Copy(io.Discard, out)
	ents, _ := os.ReadDir(src)
	var per []measure
	for i, e := range ents {
		if i >= *loopN {
			break
		}
		per = append(per, timeCmd(env, *ipfs, "add", "-Q", filepath.Join(src, e.Name())))
	}
	return median(per).wall
}

// tree makes a governance tree whose one registry event selects every
// release bundle.
func tree(work, name string) (root, repo string) {
	base := filepath.Join(work, name)
	root = filepath.Join(base, "root")
	repo = filepath.Join(base, "repo")
	check(os.MkdirAll(filepath.Join(root, "05_documentation/releases"), 0o755))
	logDir := filepath.Join(root, "24_meta_orchestration/registry/logs")
	check(os.MkdirAll(logDir, 0o755))
	check(os.WriteFile(filepath.Join(logDir, "registry_events.log"),
		[]byte("Registry events initialized.\n{\"timestamp\":\"2026-01-01T09:00:00Z\",\"event\":\"quarterly_release\",\"version\":\"bench\"}\n"), 0o644))
	return root, repo
}

// timeCmd runs one measured command. The file system is synced first so
// no command pays for writing back what an earlier one left dirty (syncfs
// in ssid-anchor would otherwise flush the previous baseline's blocks).
func timeCmd(env []string, name string, args ...string) measure {
	syscall.Sync()
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), env...)
	c.Stdout, c.Stderr = io.Discard, os.Stderr
	var errb strings.Builder
	c.Stderr = &errb
	start := time.Now()
	if err := c.Run(); err != nil {
		log.Fatalf("%s %v: %v\n%s", name, args, err, errb.String())
	}
	m := measure{wall: time.Since(start)}
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.rssKB = ru.Maxrss
	}
	return m
}

func run(env []string, name string, args ...string) {
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), env...)
	if out, err := c.CombinedOutput(); err != nil {
		log.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func median(ms []measure) measure {
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b measure) int { return int(a.wall - b.wall) })
	return s[len(s)/2]
}

func ratio(a, b measure) float64 { return a.wall.Seconds() / b.wall.Seconds() }

func writeRandom(path string, n int64) {
	f, err := os.Create(path)
	check(err)
	_, err = io.CopyN(f, rand.Reader, n)
	check(err)
	check(f.Close())
}

func warm(path string) {
	f, err := os.Open(path)
	check(err)
	io.Copy(io.Discard, f)
	f.Close()
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%g GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%g MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
