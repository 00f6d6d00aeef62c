package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// exeRSS sums the Rss (KiB) of this process's read-only mappings of its
// own executable.
func exeRSS(t *testing.T) int {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 5 && strings.Contains(fl[0], "-") && len(fl[1]) == 4 {
			in = len(fl) >= 6 && fl[5] == exe && fl[1][1] != 'w'
			continue
		}
		if in && len(fl) >= 2 && fl[0] == "Rss:" {
			n, _ := strconv.Atoi(fl[1])
			total += n
		}
	}
	return total
}

// TestReleaseTextUnmapsCode: releaseText unmaps the executable's code and
// constant pages (the test binary's own), and the program runs on, mapping
// back what it uses.
func TestReleaseTextUnmapsCode(t *testing.T) {
	// Goroutines other tests left behind (and the GC) may map pages back
	// between the release and the reading; three tries, each must show
	// the release to count. Code that releases nothing fails all three.
	var tries []string
	released := false
	for range 3 {
		before := exeRSS(t)
		releaseText()
		after := exeRSS(t)
		t.Logf("executable pages resident: %d KiB before, %d KiB after", before, after)
		tries = append(tries, strconv.Itoa(after)+" of "+strconv.Itoa(before)+" KiB")
		// The kernel may map the executable with 2 MiB pages (large
		// folios of a freshly written file): touching one byte of a
		// released 2 MiB region maps all of it back, so what stays
		// resident depends on the layout. A quarter of what was resident
		// released (and at least one such page) is the release; a
		// releaseText that does nothing shows none.
		if before >= 4096 && before-after >= max(2048, before/4) {
			released = true
			break
		}
	}
	if !released {
		t.Fatalf("releaseText left resident: %s", strings.Join(tries, "; "))
	}
	// Code and data of every kind still work: a whole command.
	code, out, errOut := runCLI(t, "--help")
	if code != 0 || !strings.Contains(out+errOut, "anchor") {
		t.Fatalf("after releaseText: --help exit %d: %s%s", code, out, errOut)
	}
}
