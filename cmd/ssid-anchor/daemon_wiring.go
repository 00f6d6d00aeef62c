package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/console"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
)

// remotePinInterval is how often the daemon's remote-pins job drains the
// queue when nothing triggers it sooner.
const remotePinInterval = time.Minute

// console builds the web console (SPEC 4.8) the daemon serves at "/": its
// jobs come from the scheduler, its remote pins from the queue (which
// knows last errors, unlike the manifest), its IPNS name from the last
// successful publish, and its POST /verify runs on the daemon's node.
func (d *daemon) console() http.Handler {
	g := d.statusGlobals()
	g.log, g.now = d.g.log, d.g.now
	h, src := consoleHandler(g, d.node, d.started)
	src.Jobs = d.consoleJobs
	src.RemotePins = d.consoleRemotePins
	src.IPNSName = func() string {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.ipnsName
	}
	return h
}

func (d *daemon) consoleJobs() []console.Job {
	var out []console.Job
	for _, e := range d.sched.Entries() {
		j := console.Job{Name: e.Name, Schedule: e.Spec, LastRun: e.LastRun, NextRun: e.Next, Running: e.Running,
			Duration: time.Duration(e.LastDuration * float64(time.Second))}
		switch {
		case e.LastError != "":
			j.Outcome = e.LastError
		case !e.LastRun.IsZero():
			j.Outcome = "ok"
		}
		out = append(out, j)
	}
	return out
}

func (d *daemon) consoleRemotePins() []console.RemotePin {
	reqs, err := pinning.OpenQueue(pinning.QueueDir(d.g.Repo), d.g.now).List()
	if err != nil {
		// Shown on the page instead of an empty list that would look fine.
		return []console.RemotePin{{Service: "(queue)", Status: "unreadable", LastError: err.Error()}}
	}
	out := make([]console.RemotePin, 0, len(reqs))
	for _, r := range reqs {
		out = append(out, console.RemotePin{Service: r.Service, CID: r.CID, FilePath: r.Meta.FilePath,
			Status: string(r.Status), Updated: r.Updated, LastError: r.LastError})
	}
	return out
}

// remotePinsStep drains the remote pin queue once on the daemon's online
// node (its delegates fetch from it), then follows up unfinished requests
// when they are due rather than at the next slot.
func (d *daemon) remotePinsStep(ctx context.Context, g *globalOptions) error {
	// A drain held elsewhere (`pins --retry`, a release step) is not an
	// error: that drain does the work.
	rep, err := ops.DrainRemotePins(ctx, g.opsEnv(), d.node)
	if rep.Recorded > 0 {
		d.refreshAnchorStats()
	}
	if !rep.Waiting.IsZero() {
		if wait := rep.Waiting.Sub(g.now()); wait < remotePinInterval {
			d.sched.TriggerAfter(jobRemotePins, max(wait, time.Second))
		}
	}
	// Work that failed is a failed run, not "ok": a request blocked by a
	// missing token variable fails every run until it is set.
	if rep.Failed > 0 {
		err = errors.Join(err, fmt.Errorf("%d remote pin requests failed: %s", rep.Failed, strings.Join(rep.Failures, "; ")))
	}
	return err
}

// remotePinsQueued is called after a run queued remote pin requests: the
// daemon pushes them now instead of at the next slot.
func (d *daemon) remotePinsQueued() {
	d.sched.Trigger(jobRemotePins)
}
