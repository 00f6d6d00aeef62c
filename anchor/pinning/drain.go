package pinning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/scheduler/retry"
	"golang.org/x/sys/unix"
)

// Backend moves a service's requests forward. Push gets every due request
// of its service at once (a batch protocol can serve them in one upload) and
// advances each by one step, updating Status, RequestID, Attempts,
// LastError, Permanent, NextAttempt and Evidence in place. A request it
// leaves due (NextAttempt not after now) is treated as failed with Push's
// error.
type Backend interface {
	Name() string
	Push(ctx context.Context, reqs []*Request) error
}

// Change is a request whose state the manifest does not show yet.
type Change struct {
	Service   string
	CID       string
	RequestID string
	Status    Status
	UpdatedAt time.Time
	// MovedTo names the service a moved request went to.
	MovedTo string
	// Provider names the service in statistics.storage_providers.
	Provider string
}

// Recorder writes changes into the anchor manifest, all in one rewrite, and
// writes nothing when the manifest already says the same.
type Recorder interface {
	RecordRemotePins(ctx context.Context, changes []Change) error
}

// ErrBusy means another process is draining the same queue.
var ErrBusy = errors.New("another ssid-anchor process is draining the remote pin queue")

// Drainer advances the queue: the daemon's scheduler calls Drain now and
// then, `pins --retry` calls Settle once.
type Drainer struct {
	Queue    *Queue
	Services []Service
	// Backends by service name; a service without one keeps its requests
	// queued and says why.
	Backends map[string]Backend
	// Recorder, when set, receives the state changes of each drain.
	Recorder Recorder
	Policy   retry.Policy
	Now      func() time.Time
	// Sleep waits for d or until ctx ends (Settle uses it between passes).
	Sleep func(ctx context.Context, d time.Duration) error
	Log   *slog.Logger
	// Getenv, when set, is the environment the services' token variables
	// are read from: a service whose variables are unset is not pushed
	// at all, and each drain marks its due requests blocked (LastError
	// names the variables, never a value) and counts them as failed,
	// without backing off, so they go out at the first drain after the
	// variables are set.
	Getenv func(string) string
}

// DrainOptions tune one drain.
type DrainOptions struct {
	// Force pushes every request that is not pinned now, including those
	// waiting for their next attempt and permanent failures (after the
	// operator fixed the token, say), but not those the service refused
	// as no longer taking them (ServiceGone): they wait for `pins move`.
	Force bool
	// Services, when not empty, limits the drain to these services (the
	// others are neither pushed nor touched; the manifest still catches up
	// on every recorded change).
	Services []string
	// RetryGone, with Force, also sends the ServiceGone requests of
	// Services again (the operator says the service takes them again).
	RetryGone bool
}

func (o DrainOptions) covers(service string) bool {
	return len(o.Services) == 0 || slices.Contains(o.Services, service)
}

// Report says what a drain did.
type Report struct {
	Pushed   int `json:"pushed"`
	Changed  int `json:"changed"`
	Recorded int `json:"recorded_in_manifest"`
	// Interrupted counts the requests whose push the context cut short
	// (SIGINT, or Settle's wait running out); they are retried as they
	// were.
	Interrupted int `json:"interrupted,omitempty"`
	// Waiting is the earliest next attempt of an unfinished request that
	// has a backend; zero when none is left.
	Waiting time.Time `json:"next_attempt,omitzero"`
	// Failed counts the requests this drain left failed or erring
	// (blocked by missing credentials, no backend, refused, unreachable);
	// Failures are their distinct reasons (at most maxFailures).
	Failed   int      `json:"failed,omitempty"`
	Failures []string `json:"failures,omitempty"`
}

// maxFailures bounds Report.Failures.
const maxFailures = 3

func (r *Report) fail(n int, reason string) {
	r.Failed += n
	if len(r.Failures) < maxFailures && !slices.Contains(r.Failures, reason) {
		r.Failures = append(r.Failures, reason)
	}
}

func (d *Drainer) now() time.Time {
	if d.Now == nil {
		return time.Now().UTC()
	}
	return d.Now().UTC()
}

func (d *Drainer) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

// lockDrain makes sure one drain runs at a time across processes, so a
// request is never pushed twice at once (which could create two pins).
func (d *Drainer) lockDrain() (func(), error) {
	if err := os.MkdirAll(d.Queue.dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(d.Queue.dir, "drain.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("locking the remote pin drain: %w", err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// Drain pushes every due request once, saves the queue, and records the
// state changes in the manifest in one rewrite (none when nothing changed).
func (d *Drainer) Drain(ctx context.Context, o DrainOptions) (Report, error) {
	var rep Report
	unlock, err := d.lockDrain()
	if err != nil {
		return rep, err
	}
	defer unlock()
	all, err := d.Queue.List()
	if err != nil {
		return rep, err
	}
	now := d.now()
	services := map[string]Service{}
	for _, s := range d.Services {
		services[s.Name] = s.WithDefaults()
	}
	// Work on copies; the queue file is only touched to merge results, so
	// `anchor --remote` can queue while a slow service is being pushed.
	byService := map[string][]*Request{}
	orig := map[string]Request{}
	var order []string
	for _, r := range all {
		if r.Done() || !o.covers(r.Service) {
			continue
		}
		before := *r
		if o.Force && (!r.ServiceGone || o.RetryGone) {
			r.NextAttempt = now
			if r.ServiceGone {
				r.ServiceGone, r.Permanent = false, true
			}
			if r.Permanent {
				r.Permanent, r.Attempts = false, 0
				if r.Status == StatusFailed {
					// The service gave up on this pin: ask again from scratch.
					r.Status, r.RequestID = StatusQueued, ""
				}
			}
		}
		if !r.Due(now) {
			continue
		}
		orig[r.Key()] = before
		if _, ok := byService[r.Service]; !ok {
			order = append(order, r.Service)
		}
		byService[r.Service] = append(byService[r.Service], r)
	}
	for _, name := range order {
		if ctx.Err() != nil {
			break
		}
		reqs := byService[name]
		svc, configured := services[name]
		b := d.Backends[name]
		switch {
		case !configured:
			msg := fmt.Sprintf("service %q is not in remote_pinning.services any more; add it back or remove the request", name)
			setNote(reqs, msg, now)
			rep.fail(len(reqs), msg)
			continue
		case b == nil:
			msg := fmt.Sprintf("no backend for kind %s in this build; the request stays queued", svc.Kind)
			setNote(reqs, msg, now)
			rep.fail(len(reqs), msg)
			continue
		case d.blocked(svc) != "":
			msg := d.blocked(svc)
			setNote(reqs, msg, now)
			rep.fail(len(reqs), msg)
			continue
		}
		rep.Pushed += len(reqs)
		perr := b.Push(ctx, reqs)
		if ctx.Err() != nil {
			// Interrupted: keep what the backend finished, retry the rest
			// as it was, and say so on each.
			msg := fmt.Sprintf("stopped before the service answered (%v); the next drain goes on", context.Cause(ctx))
			for _, r := range reqs {
				if !r.NextAttempt.After(now) && !r.Done() && !r.Permanent {
					r.LastError = msg
					rep.Interrupted++
				}
			}
			break
		}
		for _, r := range reqs {
			if !r.NextAttempt.After(now) && !r.Done() && !r.Permanent {
				msg := "the backend did not advance the request"
				if perr != nil {
					msg = perr.Error()
				}
				r.Attempts++
				r.LastError = msg
				r.NextAttempt = now.Add(d.Policy.Next(r.Attempts, 0))
			}
		}
		for _, r := range reqs {
			if r.Status == StatusFailed || !r.Done() && r.LastError != "" {
				rep.fail(1, r.LastError)
			}
		}
		if perr != nil {
			d.log().Warn("remote pinning", "service", name, "err", perr)
		}
	}
	for _, list := range byService {
		for _, r := range list {
			if o, ok := orig[r.Key()]; ok && !sameState(&o, r) {
				if r.Updated.Equal(o.Updated) {
					r.Updated = now
				}
				rep.Changed++
			}
		}
	}
	// Merge by key: requests queued meanwhile are kept, ours replaced.
	var changes []Change
	err = d.Queue.Update(func(cur []*Request) ([]*Request, error) {
		mine := map[string]*Request{}
		for _, list := range byService {
			for _, r := range list {
				mine[r.Key()] = r
			}
		}
		for i, r := range cur {
			if m, ok := mine[r.Key()]; ok {
				cur[i] = m
			}
		}
		changes = d.unrecorded(cur, services)
		return cur, nil
	})
	if err != nil {
		return rep, err
	}
	rep.Waiting = waiting(all, d.Backends, func(name string) bool { s, ok := services[name]; return ok && d.blocked(s) != "" })
	if len(changes) == 0 || d.Recorder == nil {
		return rep, nil
	}
	if err := d.Recorder.RecordRemotePins(context.WithoutCancel(ctx), changes); err != nil {
		return rep, fmt.Errorf("recording remote pin status in the manifest: %w (the next drain tries again)", err)
	}
	rep.Recorded = len(changes)
	done := map[string]Change{}
	for _, c := range changes {
		done[c.Service+"\x00"+c.CID] = c
	}
	err = d.Queue.Update(func(cur []*Request) ([]*Request, error) {
		for _, r := range cur {
			if c, ok := done[r.Key()]; ok {
				r.Recorded = &RecordedState{Status: c.Status, RequestID: c.RequestID, MovedTo: c.MovedTo}
			}
		}
		return cur, nil
	})
	return rep, err
}

// unrecorded lists the requests whose state differs from what the manifest
// was last told.
func (d *Drainer) unrecorded(reqs []*Request, services map[string]Service) []Change {
	var out []Change
	for _, r := range reqs {
		if r.Recorded != nil && r.Recorded.Status == r.Status && r.Recorded.RequestID == r.RequestID && r.Recorded.MovedTo == r.MovedTo {
			continue
		}
		prov := ""
		if s, ok := services[r.Service]; ok {
			prov = s.Provider()
		}
		out = append(out, Change{Service: r.Service, CID: r.CID, RequestID: r.RequestID, Status: r.Status, UpdatedAt: r.Updated, MovedTo: r.MovedTo, Provider: prov})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].CID < out[j].CID || out[i].CID == out[j].CID && out[i].Service < out[j].Service
	})
	return out
}

func setNote(reqs []*Request, msg string, now time.Time) {
	for _, r := range reqs {
		if r.LastError != msg {
			r.LastError = msg
			r.Updated = now
		}
	}
}

func sameState(a, b *Request) bool {
	return a.Status == b.Status && a.RequestID == b.RequestID && a.LastError == b.LastError &&
		a.Permanent == b.Permanent && a.ServiceGone == b.ServiceGone && a.MovedTo == b.MovedTo &&
		string(a.Evidence) == string(b.Evidence)
}

// blocked says why svc cannot be pushed (its token variables are unset
// in Getenv), "" when it can or Getenv is not set.
func (d *Drainer) blocked(svc Service) string {
	if d.Getenv == nil {
		return ""
	}
	miss := MissingEnv(svc, d.Getenv)
	if len(miss) == 0 {
		return ""
	}
	return fmt.Sprintf("blocked: environment variable %s not set (the token variables of service %s); nothing is sent until it is set", strings.Join(miss, " and "), svc.Name)
}

// waiting is the earliest next attempt of a request that a drain can
// push; blocked services' requests wait for their variables, not a time.
func waiting(all []*Request, backends map[string]Backend, blocked func(string) bool) time.Time {
	var w time.Time
	for _, r := range all {
		if r.Done() || r.Permanent || r.ServiceGone || backends[r.Service] == nil || blocked(r.Service) {
			continue
		}
		if w.IsZero() || r.NextAttempt.Before(w) {
			w = r.NextAttempt
		}
	}
	return w
}

// ErrWaitOver is the cause of a push Settle cut short because its wait ran
// out.
var ErrWaitOver = errors.New("the wait is over")

// Settle drains until no request with a backend is waiting any more (each
// is pinned or failed permanently) or until maxWait has passed: what
// `pins --retry` does while the node is online for the services' delegates.
// The first pass is forced.
func (d *Drainer) Settle(ctx context.Context, maxWait time.Duration) (Report, error) {
	return d.SettleWith(ctx, maxWait, DrainOptions{Force: true})
}

// SettleWith is Settle with the first pass's options (later passes drop
// Force). maxWait bounds the pushes too: a push still running when it has
// passed is stopped, keeps what it finished, and the drain reports it
// (Report.Interrupted, the cause ErrWaitOver); a slow or dripping service
// cannot hold the command and the repo past it. maxWait 0 is one pass,
// bounded only by the backends' own timeouts.
func (d *Drainer) SettleWith(ctx context.Context, maxWait time.Duration, o DrainOptions) (Report, error) {
	deadline := d.now().Add(maxWait)
	if maxWait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, maxWait, ErrWaitOver)
		defer cancel()
	}
	sleep := d.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	var total Report
	for {
		rep, err := d.Drain(ctx, o)
		o.Force, o.RetryGone = false, false
		total.Pushed += rep.Pushed
		total.Changed += rep.Changed
		total.Recorded += rep.Recorded
		total.Interrupted += rep.Interrupted
		for _, f := range rep.Failures {
			total.fail(0, f)
		}
		total.Failed += rep.Failed
		total.Waiting = rep.Waiting
		if err != nil {
			return total, err
		}
		if ctx.Err() != nil {
			if errors.Is(context.Cause(ctx), ErrWaitOver) {
				return total, nil // the requests say what was cut
			}
			return total, ctx.Err()
		}
		if rep.Waiting.IsZero() || rep.Waiting.After(deadline) {
			return total, nil
		}
		if err := sleep(ctx, rep.Waiting.Sub(d.now())); err != nil {
			if errors.Is(context.Cause(ctx), ErrWaitOver) {
				return total, nil
			}
			return total, err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
