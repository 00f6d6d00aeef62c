package main

import (
	"runtime/debug"
	"sync"
)

// releaseMemory hands back to the kernel what a finished job or command
// of the daemon used, so an idle daemon holds what it needs between jobs,
// not the peak of the last one (issue 22: after an anchoring job over the
// 16,500-file tree the daemon kept 200 MB it no longer used):
//
//   - free heap pages: Go returns them to the kernel only slowly (its
//     scavenger paces itself to about 1% of a core), so a daemon whose live
//     heap is 15 MB kept the 90 MB the job's peak had mapped;
//   - the executable's file pages (releaseText, Linux): start-up runs every
//     package's init and the node's construction, and the kernel maps 64
//     KiB around each page touched, so a daemon kept about 60 MB of its own
//     binary mapped that it never executes again. They stay in the page
//     cache (clean, shared, reclaimable); a page needed later is mapped
//     again on first use.
//
// One release runs at a time; it costs a garbage collection of the live
// heap and a few system calls.
func releaseMemory() {
	releaseMu.Lock()
	defer releaseMu.Unlock()
	debug.FreeOSMemory()
	releaseText()
}

var releaseMu sync.Mutex
