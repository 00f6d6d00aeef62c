package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/servicetext"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/node"
	"github.com/urfave/cli/v2"
)

type pinsOptions struct {
	Retry   bool
	Wait    time.Duration
	Service string
}

func newPinsCommand(g *globalOptions) *cli.Command {
	var o pinsOptions
	return &cli.Command{
		Name:      "pins",
		Usage:     "list remote pin requests; --retry pushes queued and failed ones now; move hands them to another service",
		ArgsUsage: "[move --from A --to B [--all] [--wait D]]",
		Description: `Lists every remote pin request in the repo's queue (<repo>/remote-pins/queue.json):
service, CID, file, status (queued, pinning, pinned, failed, moved), age and
the last error. Requests are queued by ` + "`anchor --remote NAME`" + `, ` + "`anchor --web3-storage`" + `
and services marked "auto": true; the daemon drains the queue on its schedule.

With --retry, the node goes online, every request that is not pinned is pushed
now (permanent failures too, after you fixed their cause), and the command
stays up to --wait so the services' delegates can fetch the content from this
node; the manifest's remote_pins record the outcome. --wait bounds the pushes
too: one still running when it ends is stopped, keeps what it finished, and
the next drain goes on from there.

A request the service refused because it takes no such requests any more
(Web3.Storage: Storacha stopped taking uploads on 15 April 2026) is failed for
good: no drain sends it again, --retry included. Move it:

  ssid-anchor pins move --from A --to B [--all] [--wait D]

queues on service B every request of A that is not pinned (--all: pinned ones
too), once per CID, marks A's moved ones "moved" (kept in the manifest's
history), then pushes B's requests with the node online for up to --wait.
It is one atomic change of the queue, so a killed move run again moves
nothing twice. B is any configured service or the preset filecoin-pin
(Filecoin Pin's local server). --retry --service NAME pushes only NAME's
requests, and sends those it refused for good once more (for a service that
takes them again).

Exit codes: 0 listed / nothing failed, 1 a request failed or could not reach its
service, 2 bad flag or config, 3 repo missing or locked.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "retry", Destination: &o.Retry, Usage: "push queued and failed requests now, with the node online"},
			&cli.DurationFlag{Name: "wait", Value: 2 * time.Minute, Destination: &o.Wait, Usage: "with --retry, how long to stay online for requests still pinning (and the longest a push may run)"},
			&cli.StringFlag{Name: "service", Destination: &o.Service, Usage: "with --retry, push only the requests of service `NAME`, those it refused for good included"},
		},
		Action: func(c *cli.Context) error {
			// `pins move ...` is an argument of pins, not a urfave
			// subcommand, so the command line sent to a running daemon
			// (its first word decides where it runs) stays "pins".
			if args := c.Args().Slice(); len(args) > 0 {
				if args[0] != "move" {
					return usagef("pins: unknown argument %q (did you mean `ssid-anchor pins move --from A --to B`?)", args[0])
				}
				if o.Retry || o.Service != "" {
					return usagef("pins move: --retry and --service do not go with move (it pushes the moved requests itself)")
				}
				return runPinsMoveArgs(c.Context, g, args[1:])
			}
			if o.Service != "" && !o.Retry {
				return usagef("pins: --service goes with --retry")
			}
			return runPins(c.Context, o, g)
		},
	}
}

func runPins(ctx context.Context, o pinsOptions, g *globalOptions) error {
	q := pinning.OpenQueue(pinning.QueueDir(g.Repo), g.now)
	var rep *pinning.Report
	var drainErr error
	if o.Retry {
		dopts := pinning.DrainOptions{Force: true}
		if o.Service != "" {
			if _, err := pinning.Lookup(g.cfg.RemotePinning.Services, o.Service); err != nil {
				return usagef("--service: %v", err)
			}
			dopts.Services, dopts.RetryGone = []string{o.Service}, true
		}
		n, release, err := g.openNode(ctx, node.OpenOptions{Online: true, Swarm: g.cfg.Node.Swarm, Peering: g.cfg.Node.Peering})
		if err != nil {
			return err
		}
		defer release()
		d, err := ops.NewDrainer(g.opsEnv(), n)
		if err != nil {
			return err
		}
		r, err := d.SettleWith(ctx, o.Wait, dopts)
		if errors.Is(err, pinning.ErrBusy) {
			return fmt.Errorf("%w: %w", node.ErrLocked, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The pushes are saved even when the manifest could not be
		// rewritten; list them first, then report that.
		drainErr = err
		rep = &r
	}
	reqs, err := q.List()
	if err != nil {
		return err
	}
	if g.JSON {
		if reqs == nil {
			reqs = []*pinning.Request{}
		}
		doc := map[string]any{"queue": q.Path(), "requests": reqs}
		if rep != nil {
			doc["drain"] = rep
		}
		if err := writeJSON(g.stdout, doc); err != nil {
			return err
		}
	} else {
		printPins(g.stdout, reqs, g.now(), g.cfg.RemotePinning.Services)
		printServiceNotes(g.stdout, reqs, g.cfg.RemotePinning.Services, g.env)
	}
	if !o.Retry {
		return nil
	}
	if drainErr != nil {
		return drainErr
	}
	if o.Service != "" {
		var mine []*pinning.Request
		for _, r := range reqs {
			if r.Service == o.Service {
				mine = append(mine, r)
			}
		}
		reqs = mine
	}
	return pushOutcome(g, reqs, rep, o.Wait)
}

// pushOutcome is the exit of a command that pushed reqs: 1 when one failed,
// could not reach its service or was cut by the wait; a note for those
// still in progress.
func pushOutcome(g *globalOptions, reqs []*pinning.Request, rep *pinning.Report, wait time.Duration) error {
	var failed, erring, pending int
	for _, r := range reqs {
		switch {
		case r.Status == pinning.StatusFailed:
			failed++
		case r.Done():
		case r.LastError != "":
			erring++
		default:
			pending++
		}
	}
	if failed+erring > 0 {
		msg := fmt.Sprintf("%d of %d remote pin requests failed or could not reach their service (see last error above)", failed+erring, len(reqs))
		if rep != nil && rep.Interrupted > 0 {
			msg += fmt.Sprintf("; %d pushes were stopped when --wait %s ran out (what they finished is kept; the daemon or the next `ssid-anchor pins --retry` goes on)", rep.Interrupted, wait)
		}
		return failure{msg}
	}
	if pending > 0 {
		fmt.Fprintf(g.notices(), "%d requests still in progress; the daemon or the next `ssid-anchor pins --retry` follows them up\n", pending)
	}
	return nil
}

func printPins(w io.Writer, reqs []*pinning.Request, now time.Time, services []pinning.Service) {
	if len(reqs) == 0 {
		fmt.Fprintln(w, "no remote pin requests")
		return
	}
	// Every field may hold what a service or a file name put there: one
	// printable line each, never a terminal escape (the queue may have been
	// written by an older build that kept service text raw).
	clean := func(s string, n int) string { return servicetext.Clean(s, n) }
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tCID\tSTATUS\tAGE\tFILE\tLAST ERROR")
	for _, r := range reqs {
		status := string(r.Status)
		switch {
		case r.Status == pinning.StatusMoved:
			status += " to " + r.MovedTo
		case r.Permanent && r.Status != pinning.StatusFailed:
			status += " (stopped)"
		}
		errText := r.LastError
		if r.Done() {
			errText = evidenceNote(r)
		}
		if r.Attempts > 0 && !r.Permanent && !r.Done() {
			errText = fmt.Sprintf("%s (attempt %d, next %s)", errText, r.Attempts, age(now, r.NextAttempt, true))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", clean(r.Service, 64), clean(r.CID, 100), clean(status, 80),
			age(now, r.Created, false), clean(r.Meta.FilePath, 200), clean(errText, 1000))
	}
	tw.Flush()
}

// evidenceNote is what a pinned request's evidence says (storacha-bridge:
// whether its receipts were verified).
func evidenceNote(r *pinning.Request) string {
	if len(r.Evidence) == 0 {
		return ""
	}
	var ev pinning.BridgeEvidence
	if json.Unmarshal(r.Evidence, &ev) != nil || ev.Kind != pinning.KindStorachaBridge {
		return ""
	}
	return ev.ReceiptStatus
}

// printServiceNotes says, for every service with requests, what the
// operator must know: token variables missing (by name, never a value),
// for storacha-bridge whether receipts are verified, and for requests a
// service refused for good, the move that sends them elsewhere.
func printServiceNotes(w io.Writer, reqs []*pinning.Request, services []pinning.Service, getenv func(string) string) {
	used := map[string]bool{}
	gone := map[string]int{}
	for _, r := range reqs {
		if r.Status == pinning.StatusMoved {
			continue
		}
		used[r.Service] = true
		if r.ServiceGone {
			gone[r.Service]++
		}
	}
	all := pinning.WithPresets(services)
	if used[pinning.Web3Storage] {
		if _, err := pinning.Lookup(services, pinning.Web3Storage); err != nil {
			all = append(all, pinning.Web3StoragePreset())
		}
	}
	for _, s := range all {
		s = s.WithDefaults()
		if !used[s.Name] {
			continue
		}
		used[s.Name] = false
		var notes []string
		if s.Kind == pinning.KindStorachaBridge {
			if s.ServiceDID != "" {
				notes = append(notes, "receipts verified against "+s.ServiceDID)
			} else {
				notes = append(notes, "receipts unverified (no service_did configured)")
			}
		}
		if miss := pinning.MissingEnv(s, getenv); len(miss) > 0 {
			notes = append(notes, "environment variable "+strings.Join(miss, " and ")+" not set")
		} else if s.TokenOptional && getenv(s.TokenEnv) == "" {
			notes = append(notes, "environment variable "+s.TokenEnv+" not set: requests go without a token (a server run with --allow-no-auth)")
		}
		if n := gone[s.Name]; n > 0 {
			head := "the service takes no such uploads any more"
			if s.IsStorachaPublic() {
				head = pinning.Web3StorageStopped
			}
			notes = append(notes, fmt.Sprintf("%d requests refused for good: %s; move them: ssid-anchor pins move --from %s --to %s", n, head, s.Name, moveTarget(services, s.Name)))
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "%s (%s): %s\n", s.Name, s.Kind, strings.Join(notes, "; "))
		}
	}
}

// moveTarget suggests where to move a service's requests: a configured
// Pinning Service API service, else the filecoin-pin preset.
func moveTarget(services []pinning.Service, from string) string {
	for _, s := range services {
		if s = s.WithDefaults(); s.Name != from && s.Kind == pinning.KindPinningService {
			return s.Name
		}
	}
	return pinning.FilecoinPin
}

// age prints a duration the way an operator reads it: 40s, 5m, 3h, 2d.
func age(now, t time.Time, future bool) string {
	d := now.Sub(t)
	if future {
		d = -d
		if d <= 0 {
			return "now"
		}
	}
	if d < 0 {
		d = 0
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d.Hours()))
	default:
		s = fmt.Sprintf("%dd", int(d.Hours()/24))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// remoteTargets resolves --remote and --web3-storage plus the services
// marked auto, before anything is anchored (a typo is a usage error that
// changes nothing).
func remoteTargets(g *globalOptions, names []string, web3 bool) ([]pinning.Service, error) {
	if web3 {
		names = append(names, pinning.Web3Storage)
	}
	var out []pinning.Service
	seen := map[string]bool{}
	for _, name := range names {
		s, err := pinning.Lookup(g.cfg.RemotePinning.Services, name)
		if err != nil {
			return nil, usagef("--remote: %v", err)
		}
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s)
		}
	}
	for _, s := range g.cfg.RemotePinning.Services {
		if s.Auto && !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s.WithDefaults())
		}
	}
	for _, s := range out {
		// Anchoring only queues; say now what the drain will miss.
		if miss := pinning.MissingEnv(s, g.env); len(miss) > 0 {
			fmt.Fprintf(g.stderr, "warning: remote pinning service %s: environment variable %s not set; its requests stay queued until it is\n", s.Name, strings.Join(miss, " and "))
		}
		if s.Kind == pinning.KindStorachaBridge && s.Endpoint == pinning.Web3StoragePreset().Endpoint {
			fmt.Fprintf(g.stderr, "warning: remote pinning service %s: %s; its requests will fail with the service's answer. Move them: ssid-anchor pins move --from %s --to %s\n",
				s.Name, pinning.Web3StorageStopped, s.Name, moveTarget(g.cfg.RemotePinning.Services, s.Name))
		}
	}
	return out, nil
}

type pinsMoveOptions struct {
	From, To string
	All      bool
	Wait     time.Duration
}

// runPinsMoveArgs parses `pins move`'s own flags (args after "move") with
// urfave/cli, so they get the same help and usage errors as any command.
func runPinsMoveArgs(ctx context.Context, g *globalOptions, args []string) error {
	var o pinsMoveOptions
	move := &cli.Command{
		Name:  "move",
		Usage: "queue on service B every request of service A that is not pinned, and mark A's moved",
		Description: `Every request of A that is not pinned (--all: pinned ones too) gets a request on
B, once per CID (one already there is kept); A's become "moved" to B and stay
in the manifest's remote_pins as history. Then B's requests are pushed with
the node online for up to --wait (the daemon, or ` + "`pins --retry`" + `, follows up).
The change to the queue is one atomic rewrite: a move killed at any point and
run again queues nothing twice. B is any configured service or the preset
filecoin-pin.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Destination: &o.From, Usage: "service `A` whose requests move (required)"},
			&cli.StringFlag{Name: "to", Destination: &o.To, Usage: "service `B` that takes them (required)"},
			&cli.BoolFlag{Name: "all", Destination: &o.All, Usage: "also copy requests A has pinned (they stay pinned on A)"},
			&cli.DurationFlag{Name: "wait", Value: 2 * time.Minute, Destination: &o.Wait, Usage: "how long to stay online while B fetches"},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return usageError{err} },
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("pins move: unexpected argument %q", c.Args().First())
			}
			if o.From == "" || o.To == "" {
				return usagef("pins move: --from and --to are required (e.g. ssid-anchor pins move --from web3-storage --to filecoin-pin)")
			}
			return runPinsMove(c.Context, o, g)
		},
	}
	app := &cli.App{
		Name: "ssid-anchor pins", HideVersion: true, HideHelpCommand: true,
		Writer: &g.help, ErrWriter: g.stderr, // as the app's (SPEC 3)
		Commands:       []*cli.Command{move},
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   func(_ *cli.Context, err error, _ bool) error { return usageError{err} },
	}
	return app.RunContext(ctx, append([]string{"ssid-anchor pins", "move"}, args...))
}

// runPinsMove moves A's requests to B in the queue (one atomic rewrite),
// then pushes B's requests like `pins --retry --service B`, which also
// records the move in the manifest.
func runPinsMove(ctx context.Context, o pinsMoveOptions, g *globalOptions) error {
	to, err := pinning.Lookup(g.cfg.RemotePinning.Services, o.To)
	if err != nil {
		return usagef("--to: %v", err)
	}
	q := pinning.OpenQueue(pinning.QueueDir(g.Repo), g.now)
	// The node first: while another process holds the repo, nothing moves.
	n, release, err := g.openNode(ctx, node.OpenOptions{Online: true, Swarm: g.cfg.Node.Swarm, Peering: g.cfg.Node.Peering})
	if err != nil {
		return err
	}
	defer release()
	mv, err := q.Move(o.From, to.Name, o.All)
	if errors.Is(err, pinning.ErrNotQueued) {
		return usagef("--from: %v", err)
	}
	if err != nil {
		return err
	}
	{
		fmt.Fprintf(g.stdout, "moved %d requests from %s to %s (%d newly queued on %s", mv.Moved, mv.From, mv.To, mv.Queued, mv.To)
		if mv.Copied > 0 {
			fmt.Fprintf(g.stdout, ", %d pinned ones copied", mv.Copied)
		}
		if mv.KeptPinned > 0 {
			fmt.Fprintf(g.stdout, ", %d pinned on %s left there; --all copies them", mv.KeptPinned, mv.From)
		}
		if mv.Before > 0 {
			fmt.Fprintf(g.stdout, ", %d moved by an earlier run", mv.Before)
		}
		fmt.Fprintln(g.stdout, ")")
	}
	d, err := ops.NewDrainer(g.opsEnv(), n)
	if err != nil {
		return err
	}
	if err := d.DropBatch(o.From); err != nil && !errors.Is(err, pinning.ErrBusy) {
		g.log.Warn("removing the moved service's unfinished batch", "service", o.From, "err", err)
	}
	rep, err := d.SettleWith(ctx, o.Wait, pinning.DrainOptions{Services: []string{to.Name}})
	busy := errors.Is(err, pinning.ErrBusy)
	if busy {
		// A drain is running (the daemon's job): it pushes them.
		err = nil
		if g.daemon != nil {
			g.daemon.remotePinsQueued()
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	reqs, lerr := q.List()
	if lerr != nil {
		return lerr
	}
	var onB []*pinning.Request
	for _, r := range reqs {
		if r.Service == to.Name {
			onB = append(onB, r)
		}
	}
	if g.JSON {
		doc := map[string]any{"move": mv, "queue": q.Path(), "requests": onB}
		if !busy {
			doc["drain"] = rep
		}
		if werr := writeJSON(g.stdout, doc); werr != nil {
			return werr
		}
	} else {
		printPins(g.stdout, onB, g.now(), g.cfg.RemotePinning.Services)
		printServiceNotes(g.stdout, onB, g.cfg.RemotePinning.Services, g.env)
	}
	if err != nil {
		return err
	}
	if busy {
		fmt.Fprintf(g.notices(), "another drain is running; it pushes the requests on %s\n", to.Name)
		return nil
	}
	return pushOutcome(g, onB, &rep, o.Wait)
}

// remotePinOther counts, in a summary, remote pins whose status is none of
// the known ones.
const remotePinOther = "other"

// summariseRemotePins keeps the counts of the known remote pin statuses
// and folds every other status into one "other" count. The statuses come
// from the manifest, which anyone who can commit to the tree can write:
// 50,000 made-up statuses must not become 50,000 entries (a 3 MB status
// line, a JSON document of that size).
func summariseRemotePins(m map[string]int) map[string]int {
	out := make(map[string]int, 6)
	for st, n := range m {
		switch pinning.Status(st) {
		case pinning.StatusQueued, pinning.StatusPinning, pinning.StatusPinned, pinning.StatusFailed, pinning.StatusMoved:
			out[st] += n
		default:
			out[remotePinOther] += n
		}
	}
	return out
}
