package pinning

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNotQueued means the service to move from has no requests in the queue.
var ErrNotQueued = errors.New("nothing to move")

// MoveReport says what Move did.
type MoveReport struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Moved requests of From are now "moved" (MovedTo To).
	Moved int `json:"moved"`
	// Queued requests are new on To; the others were there already.
	Queued int `json:"queued"`
	// Copied pinned requests of From got a request on To (--all); they
	// stay pinned on From.
	Copied int `json:"copied,omitempty"`
	// KeptPinned pinned requests of From were left alone (no --all).
	KeptPinned int `json:"kept_pinned,omitempty"`
	// Before counts the requests of From already moved to To by an earlier
	// move (a move run again after a crash moves nothing twice).
	Before int `json:"already_moved,omitempty"`
}

// Move hands the requests of service from to service to: for each CID of
// from that is not pinned (all: pinned ones too) a request on to is queued
// unless one is there (the queue's identity rule: one request per service
// and CID), and from's request becomes "moved" to to (a pinned one copied
// by all stays pinned). It is one rewrite of the queue under its lock, so
// a crash leaves the move done or not begun, and running it again changes
// nothing. The manifest learns of it at the next drain (unrecorded
// changes).
func (q *Queue) Move(from, to string, all bool) (MoveReport, error) {
	rep := MoveReport{From: from, To: to}
	if from == to {
		return rep, fmt.Errorf("%w: --from and --to are both %q", ErrNotQueued, from)
	}
	err := q.Update(func(reqs []*Request) ([]*Request, error) {
		rep = MoveReport{From: from, To: to}
		have := map[string]bool{}
		seen := map[string]bool{}
		for _, r := range reqs {
			seen[r.Service] = true
			if r.Service == to {
				have[r.CID] = true
			}
		}
		if !seen[from] {
			var names []string
			for n := range seen {
				names = append(names, n)
			}
			sort.Strings(names)
			if len(names) == 0 {
				return nil, fmt.Errorf("%w: the queue holds no requests at all", ErrNotQueued)
			}
			return nil, fmt.Errorf("%w: no requests for service %q in the queue (it holds requests for %s)", ErrNotQueued, from, strings.Join(names, ", "))
		}
		now := q.now().UTC()
		var add []*Request
		for _, r := range reqs {
			if r.Service != from {
				continue
			}
			switch {
			case r.Status == StatusMoved:
				if r.MovedTo == to {
					rep.Before++
				}
				continue
			case r.Status == StatusPinned && !all:
				rep.KeptPinned++
				continue
			}
			if !have[r.CID] {
				have[r.CID] = true
				add = append(add, &Request{Service: to, CID: r.CID, Name: r.Name, Meta: r.Meta,
					Status: StatusQueued, Created: now, Updated: now, NextAttempt: now})
				rep.Queued++
			}
			if r.Status == StatusPinned {
				rep.Copied++
				continue
			}
			r.Status, r.MovedTo, r.Updated = StatusMoved, to, now
			r.Permanent, r.ServiceGone, r.NextAttempt = false, false, now
			rep.Moved++
		}
		return append(reqs, add...), nil
	})
	return rep, err
}

// DropBatch removes the unfinished storacha batch of service name in the
// queue directory dir and its shard files, when none of its roots has a
// request left that could resume it (all moved or done). It holds the drain
// lock, so no drain is resuming the batch meanwhile.
func (d *Drainer) DropBatch(name string) error {
	unlock, err := d.lockDrain()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := LoadState(d.Queue.dir, name)
	if err != nil || st == nil {
		return err
	}
	reqs, err := d.Queue.List()
	if err != nil {
		return err
	}
	open := map[string]bool{}
	for _, r := range reqs {
		if r.Service == name && !r.Done() {
			open[r.CID] = true
		}
	}
	for _, rs := range st.Roots {
		if open[rs.Root] {
			return nil
		}
	}
	st.RemoveFiles()
	if err := os.Remove(StatePath(d.Queue.dir, name)); err != nil && !os.IsNotExist(err) {
		return err
	}
	os.Remove(filepath.Join(d.Queue.dir, "storacha-"+name+".shards"))
	return nil
}
