package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// releaseText unmaps the pages of the executable's read-only mappings
// (code and constant data) with MADV_DONTNEED; the kernel maps a page
// back from the page cache when it is used again. A mapping that holds a
// private copy of any page (the relocations the dynamic loader wrote, a
// debugger's breakpoint: "Anonymous" in smaps) is left alone, since
// MADV_DONTNEED would drop that copy.
func releaseText() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	defer f.Close()
	type mapping struct {
		start, end uintptr
		private    bool
	}
	var maps []*mapping
	var cur *mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		fields := bytes.Fields(line)
		// A mapping's header: "start-end perms offset dev inode path".
		if len(fields) >= 6 && len(fields[1]) == 4 && bytes.IndexByte(fields[0], '-') > 0 {
			cur = nil
			if string(fields[5]) != exe || fields[1][1] == 'w' {
				continue
			}
			lo, hi, ok := bytes.Cut(fields[0], []byte("-"))
			start, err1 := strconv.ParseUint(string(lo), 16, 64)
			end, err2 := strconv.ParseUint(string(hi), 16, 64)
			if !ok || err1 != nil || err2 != nil || end <= start {
				continue
			}
			cur = &mapping{start: uintptr(start), end: uintptr(end)}
			maps = append(maps, cur)
			continue
		}
		if cur != nil && len(fields) >= 2 && string(fields[0]) == "Anonymous:" && string(fields[1]) != "0" {
			cur.private = true
		}
	}
	if sc.Err() != nil {
		return
	}
	for _, m := range maps {
		if m.private {
			continue
		}
		// The raw call takes the addresses as they are: no Go pointer to
		// memory the Go runtime does not own.
		unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED)
	}
}
