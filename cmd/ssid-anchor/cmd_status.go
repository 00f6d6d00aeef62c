package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/buildinfo"
	"github.com/ssid/ssid-anchor/node"
	"github.com/ssid/ssid-anchor/scheduler"
	"github.com/urfave/cli/v2"
)

func newStatusCommand(g *globalOptions) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "node, anchors, pins, remote pins, jobs and the effective config",
		Description: `Shows the node (peer ID, profile, addresses, IPNS name, providing), the
anchors in the manifest (records, files, pinned, remote pins by status), the
scheduled jobs with their last and next runs, and the effective appliance
config (no secrets: only the names of the variables that hold them). With a
daemon running it answers from the daemon (daemon_running: true, the live
addresses); without, it opens the repo offline.

While a one-shot command (anchor, verify) holds the repo, status shows a
read-only view of what needs no lock (manifest, config, last runs) and says
which pid holds it.

Exit codes: 0 shown, 1 failure, 3 repo missing.`,
		Action: func(c *cli.Context) error { return runStatus(c.Context, g) },
	}
}

// statusDoc is `status --json` and the daemon's /status.
type statusDoc struct {
	DaemonRunning  bool              `json:"daemon_running"`
	DaemonPID      int               `json:"daemon_pid,omitempty"`
	DaemonStarted  *time.Time        `json:"daemon_started,omitempty"`
	Build          buildinfo.Info    `json:"build"` // the daemon's when it answers
	Repo           string            `json:"repo"`
	Root           string            `json:"root"`
	PeerID         string            `json:"peer_id"`
	Profile        string            `json:"profile"`
	Routing        string            `json:"routing"`
	Addresses      []string          `json:"addresses"`
	ConnectedPeers int               `json:"connected_peers"`
	IPNS           statusIPNS        `json:"ipns"`
	Provide        node.ProvideStats `json:"provide"`
	anchorStats
	// Root-24-LOCK as guard measures it (tree.CheckRoot24).
	statusRoot24
	Manifest statusManifest    `json:"manifest"`
	Jobs     []scheduler.Entry `json:"jobs"`
	// Problems are the configured jobs that cannot run (a missing
	// secret, an unusable config); the daemon's /healthz is 503 while
	// there are any.
	Problems []configProblem `json:"problems"`
	HTTP     *statusHTTP     `json:"http,omitempty"`
	// RepoLocked is set when another process holds the repo and this is
	// the read-only view.
	RepoLocked *statusLocked    `json:"repo_locked,omitempty"`
	RPC        *statusRPC       `json:"rpc,omitempty"`
	Config     appconfig.Config `json:"config"`
}

type statusIPNS struct {
	Name        string     `json:"name"`
	Value       string     `json:"value,omitempty"`
	PublishedAt *time.Time `json:"published_at,omitempty"`
	Error       string     `json:"error,omitempty"`
}

type statusManifest struct {
	Path           string `json:"path"`
	LastUpdated    string `json:"last_updated,omitempty"`
	LastAnchorDate string `json:"last_anchor_date,omitempty"`
	PreviousCID    string `json:"previous_manifest_cid,omitempty"`
}

// statusRoot24 is the Root-24-LOCK verdict: the same word guard, event,
// telemetry and the console show.
type statusRoot24 struct {
	Root24Lock     string   `json:"root_24_lock"`
	Root24Reason   string   `json:"root_24_lock_reason,omitempty"`
	Root24Problems []string `json:"root_24_lock_problems,omitempty"`
}

// root24Status measures Root-24-LOCK for status.
func root24Status(dir string) statusRoot24 {
	root, err := tree.OpenRoot(dir)
	if err != nil {
		reason := fmt.Sprintf("--root: %v", err)
		return statusRoot24{Root24Lock: tree.Root24Unknown, Root24Reason: reason, Root24Problems: []string{reason}}
	}
	defer root.Close()
	st := tree.CheckRoot24(root)
	return statusRoot24{Root24Lock: st.Status(), Root24Reason: st.Reason, Root24Problems: st.Problems}
}

type statusHTTP struct {
	Listen string `json:"listen"`
	URL    string `json:"url"`
}

func runStatus(ctx context.Context, g *globalOptions) error {
	var doc *statusDoc
	n, release, err := g.openNode(ctx, node.OpenOptions{})
	switch {
	case errors.Is(err, node.ErrLocked) && g.daemon == nil:
		// A one-shot command (anchor, verify) holds the repo: what needs
		// no lock is still shown, and says so.
		doc, err = buildLockedStatus(ctx, g, err)
	case err != nil:
		return err
	default:
		defer release()
		doc, err = buildStatus(ctx, g, n, g.daemon)
	}
	if err != nil {
		return err
	}
	if g.JSON {
		return writeJSON(g.stdout, doc)
	}
	printStatus(g, doc)
	return nil
}

// statusGlobals are the daemon's options for building /status.
func (d *daemon) statusGlobals() *globalOptions {
	return &globalOptions{Root: d.g.Root, Repo: d.g.Repo, cfg: d.config(), shared: d.node, daemon: d, served: true}
}

// statusLocked is the read-only view's note: another process holds the
// repo, so the node (addresses, pins, providing) cannot be read.
type statusLocked struct {
	PID    int    `json:"pid,omitempty"` // 0: not known
	Reason string `json:"reason"`
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// buildLockedStatus is status while another process holds the repo lock:
// what can be read without it (the repo's identity files, the manifest,
// the config, the scheduler's state file), with the holder's pid.
func buildLockedStatus(ctx context.Context, g *globalOptions, lockErr error) (*statusDoc, error) {
	repo := absPath(g.Repo)
	pid, perr := node.LockHolder(repo)
	lk := &statusLocked{PID: pid}
	switch {
	case pid > 0:
		lk.Reason = fmt.Sprintf("the repo is locked by pid %d (a one-shot command such as anchor, or another process on the repo); this is a read-only view: the node, its pins and providing are not read", pid)
	case perr != nil:
		lk.Reason = fmt.Sprintf("the repo is locked by another process (%v); this is a read-only view: the node, its pins and providing are not read", perr)
	default:
		lk.Reason = fmt.Sprintf("the repo is locked by another process (%v); this is a read-only view: the node, its pins and providing are not read", lockErr)
	}
	id, profile, _ := node.Identity(repo)
	doc := &statusDoc{
		Repo: repo, Root: absPath(g.Root), PeerID: id, Profile: profile, Addresses: []string{},
		Config: g.cfg, Build: buildinfo.Read(), RepoLocked: lk,
	}
	doc.anchorStats, _ = fillManifest(ctx, g, doc, nil, nil)
	if doc.PinnedErr != "" {
		doc.PinnedErr = "the repo is locked"
		if pid > 0 {
			doc.PinnedErr = fmt.Sprintf("the repo is locked by pid %d", pid)
		}
	}
	jobs, err := offlineJobs(g, repo)
	if err != nil {
		return nil, err
	}
	doc.Jobs = jobs
	doc.Problems = append([]configProblem{}, configProblems(g, g.cfg)...)
	return doc, nil
}

// fillManifest counts the anchors (pins from n; unknown when n is nil)
// and fills the manifest and Root-24 fields of doc.
func fillManifest(ctx context.Context, g *globalOptions, doc *statusDoc, n *node.Node, d *daemon) (anchorStats, *anchor.Manifest) {
	var stats anchorStats
	var man *anchor.Manifest
	if d != nil {
		stats, man = d.counts.count(ctx, g.Root, g.cfg.Paths, n) // remembered while the file is the same
	} else {
		stats, man = countAnchors(ctx, g.Root, g.cfg.Paths, n)
	}
	stats.RemotePins = summariseRemotePins(stats.RemotePins)
	doc.statusRoot24 = root24Status(g.Root)
	doc.Manifest.Path = g.cfg.Paths.Manifest
	if man != nil {
		doc.Manifest.PreviousCID = man.PreviousCID
		doc.Manifest.LastUpdated = rawString(man.Get("last_updated"))
		if st, ok := man.Get("statistics"); ok {
			var s struct {
				Last string `json:"last_anchor_date"`
			}
			json.Unmarshal(st, &s)
			doc.Manifest.LastAnchorDate = s.Last
		}
	}
	return stats, man
}

// buildStatus assembles the document; d is nil without a daemon.
func buildStatus(ctx context.Context, g *globalOptions, n *node.Node, d *daemon) (*statusDoc, error) {
	abs := absPath
	doc := &statusDoc{
		DaemonRunning: d != nil, Repo: n.RepoPath(), Root: abs(g.Root),
		PeerID: n.PeerID(), Profile: n.Profile(), Routing: n.Routing(),
		Addresses: n.Addrs(), ConnectedPeers: n.ConnectedPeers(),
		IPNS:    statusIPNS{Name: n.IPNSName()},
		Provide: n.ProvideStats(),
		Config:  g.cfg,
		Build:   buildinfo.Read(),
	}
	if doc.Addresses == nil {
		doc.Addresses = []string{}
	}
	doc.anchorStats, _ = fillManifest(ctx, g, doc, n, d)
	if d != nil {
		doc.DaemonPID = os.Getpid()
		started := d.started
		doc.DaemonStarted = &started
		doc.Jobs = d.sched.Entries()
		doc.Problems = append([]configProblem{}, d.configProblems()...)
		d.mu.Lock()
		doc.IPNS.Value, doc.IPNS.Error = d.ipnsValue, d.ipnsErr
		if !d.ipnsAt.IsZero() {
			at := d.ipnsAt
			doc.IPNS.PublishedAt = &at
		}
		d.mu.Unlock()
		if d.httpAddr != "" {
			doc.HTTP = &statusHTTP{Listen: d.httpAddr, URL: "http://" + d.httpAddr + "/"}
		}
		doc.RPC = d.rpcStatus()
		return doc, nil
	}
	jobs, err := offlineJobs(g, n.RepoPath())
	if err != nil {
		return nil, err
	}
	doc.Jobs = jobs
	doc.Problems = append([]configProblem{}, configProblems(g, g.cfg)...)
	return doc, nil
}

// offlineJobs lists the jobs a daemon would run with this config, with the
// last runs it recorded in the repo and the next runs it would make.
func offlineJobs(g *globalOptions, repo string) ([]scheduler.Entry, error) {
	s, err := scheduler.New(scheduler.Options{StatePath: filepath.Join(repo, "scheduler.json")})
	if err != nil {
		return nil, err
	}
	noop := func(context.Context) error { return nil }
	s.AddTriggered(jobAnchor, noop)
	if spec := g.cfg.Schedule.Quarterly; spec != "" {
		if err := s.Add(jobQuarterly, spec, noop); err != nil {
			return nil, usageError{err}
		}
	}
	if spec := remotePinsSpec(g.cfg); spec != "" {
		if err := s.Add(jobRemotePins, spec, noop); err != nil {
			return nil, usageError{err}
		}
	}
	if spec, _ := telemetrySpecFor(g); spec != "" {
		if err := s.Add(jobTelemetry, spec, noop); err != nil {
			return nil, usageError{err}
		}
	}
	return s.Entries(), nil
}

func rawString(b json.RawMessage, ok bool) string {
	var s string
	if ok {
		json.Unmarshal(b, &s)
	}
	return s
}

// printStatus writes the human summary to stdout: it is the result (SPEC
// 3, streams).
func printStatus(g *globalOptions, doc *statusDoc) {
	w := g.stdout
	state := "not running (repo opened offline)"
	switch {
	case doc.RepoLocked != nil:
		state = "not running"
	case doc.DaemonRunning:
		state = fmt.Sprintf("running (pid %d, since %s)", doc.DaemonPID, doc.DaemonStarted.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "daemon:     %s\n", state)
	if doc.RepoLocked != nil {
		fmt.Fprintf(w, "repo lock:  %s\n", doc.RepoLocked.Reason)
	}
	fmt.Fprintf(w, "version:    %s\n", doc.Build)
	fmt.Fprintf(w, "repo:       %s\nroot:       %s\n", doc.Repo, doc.Root)
	fmt.Fprintf(w, "root-24:    %s", doc.Root24Lock)
	if len(doc.Root24Problems) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(doc.Root24Problems, "; "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "peer id:    %s (profile %s, routing %s)\n", doc.PeerID, doc.Profile, doc.Routing)
	for _, a := range doc.Addresses {
		fmt.Fprintf(w, "address:    %s\n", a)
	}
	if doc.DaemonRunning {
		fmt.Fprintf(w, "peers:      %d connected\n", doc.ConnectedPeers)
	}
	fmt.Fprintf(w, "ipns:       %s", doc.IPNS.Name)
	if doc.IPNS.Value != "" {
		fmt.Fprintf(w, " -> /ipfs/%s", doc.IPNS.Value)
	}
	if doc.IPNS.Error != "" {
		fmt.Fprintf(w, " (last publish failed: %s)", doc.IPNS.Error)
	}
	fmt.Fprintln(w)
	p := doc.Provide
	fmt.Fprintf(w, "providing:  strategy %s, %d announced since start", p.Strategy, p.Provided)
	if !p.LastProvide.IsZero() {
		fmt.Fprintf(w, ", last %s", p.LastProvide.Format(time.RFC3339))
	}
	if p.Err != "" {
		fmt.Fprintf(w, ", error: %s", p.Err)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "anchors:    %d records of %d files, ", doc.Records, doc.Files)
	switch {
	case doc.PinnedErr != "":
		fmt.Fprintf(w, "pinned unknown (%s; the manifest marks %d pinned)", doc.PinnedErr, doc.ManifestPinned)
	case doc.Pinned != doc.ManifestPinned:
		fmt.Fprintf(w, "%d pinned in the repo (the manifest marks %d pinned: run `ssid-anchor verify`)", doc.Pinned, doc.ManifestPinned)
	default:
		fmt.Fprintf(w, "%d pinned", doc.Pinned)
	}
	if rp := summariseRemotePins(doc.RemotePins); len(rp) > 0 {
		var parts []string
		for _, st := range sortedKeysOfInt(rp) {
			parts = append(parts, fmt.Sprintf("%d %s", rp[st], st))
		}
		fmt.Fprintf(w, "; remote pins: %s", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	if doc.Err != "" {
		fmt.Fprintf(w, "manifest:   %s: %s\n", doc.Manifest.Path, doc.Err)
	} else {
		fmt.Fprintf(w, "manifest:   %s (last updated %s)\n", doc.Manifest.Path, orDash(doc.Manifest.LastUpdated))
	}
	for _, j := range doc.Jobs {
		last, next := "never", "-"
		if !j.LastRun.IsZero() {
			last = j.LastRun.Format(time.RFC3339)
		}
		if !j.Next.IsZero() {
			next = j.Next.Format(time.RFC3339)
		}
		extra := ""
		if j.Running {
			extra = " RUNNING"
		}
		if !j.LastRun.IsZero() {
			if j.LastSuccess.IsZero() {
				extra += ", never succeeded"
			} else if j.LastSuccess.Before(j.LastRun) {
				extra += ", last success " + j.LastSuccess.Format(time.RFC3339)
			}
		}
		if j.LastError != "" {
			extra += " last error: " + j.LastError
		}
		fmt.Fprintf(w, "job:        %-9s %-18s last %s, next %s%s\n", j.Name, j.Spec, last, next, extra)
	}
	for _, p := range doc.Problems {
		fmt.Fprintf(w, "PROBLEM:    job %s cannot run: %s\n", p.Job, p.Reason)
	}
	if doc.HTTP != nil {
		fmt.Fprintf(w, "http:       %s (gateway %sipfs/<cid>)\n", doc.HTTP.Listen, doc.HTTP.URL)
	} else {
		fmt.Fprintf(w, "http:       %s (when the daemon runs)\n", orDash(doc.Config.HTTP.Listen))
	}
	switch {
	case doc.RPC != nil:
		fmt.Fprintf(w, "rpc:        %s (kubo RPC API; the ipfs CLI finds it through %s)\n", doc.RPC.Listen, doc.RPC.APIFile)
	case doc.Config.RPC.Listen == "":
		fmt.Fprintln(w, "rpc:        off (rpc.listen is \"\")")
	default:
		fmt.Fprintf(w, "rpc:        %s (when the daemon runs)\n", doc.Config.RPC.Listen)
	}
}

func sortedKeysOfInt(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
