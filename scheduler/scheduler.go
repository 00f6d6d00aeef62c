// Package scheduler runs the daemon's jobs on one scheduler in UTC, with
// robfig/cron's spec parser and schedules. A job never runs twice at once,
// a panic in a job is logged and the scheduler survives, a run missed while
// the box was down (the quarterly release on 1 January, say) runs once at
// start, and last run times are persisted atomically. Jobs may also be
// triggered on demand (anchoring when the registry log changes), debounced
// and coalesced so a burst of triggers gives one run and a trigger during a
// run gives one more run after it. It imports no other package of this
// project: cmd hands it closures.
package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
)

// Job is one unit of scheduled work; ctx ends when the scheduler stops.
type Job func(ctx context.Context) error

// Options configure a Scheduler.
type Options struct {
	// StatePath is a JSON file remembering each job's last run, for
	// catch-up after downtime; "" keeps it in memory only.
	StatePath string
	Log       *slog.Logger
	// Clock is the time source; nil means the wall clock.
	Clock Clock
	// OnDone, when set, is told about every finished run (metrics).
	OnDone func(job string, took time.Duration, err error)
}

// OnDemand is the spec shown for jobs that run only when triggered.
const OnDemand = "on demand"

// maxWait caps each sleep of the loop: timers run on the monotonic clock,
// which stops while the machine is suspended, and wall-clock steps (NTP)
// go unnoticed by a 90-day timer; waking every minute re-reads wall time.
const maxWait = time.Minute

// Entry describes a job for status output.
type Entry struct {
	Name         string    `json:"name"`
	Spec         string    `json:"spec"`
	LastRun      time.Time `json:"last_run,omitzero"`
	Next         time.Time `json:"next,omitzero"`
	Running      bool      `json:"running"`
	LastError    string    `json:"last_error,omitempty"`
	LastDuration float64   `json:"last_duration_seconds,omitempty"`
	// LastSuccess is when the last run that returned no error finished
	// (persisted like LastRun); zero when none did.
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// successKey is the state file key of a job's last success. The state
// file stays one flat object of times (an older build reads it and
// ignores these keys, which name no job of its own); the key cannot
// clash with a job name, since the daemon's names carry no "/".
func successKey(job string) string { return job + "/last_success" }

// Scheduler owns the jobs, their loop and their last-run state.
type Scheduler struct {
	o      Options
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{}
	runs   sync.WaitGroup

	mu      sync.Mutex
	started bool
	stopped bool
	jobs    map[string]*job
	state   map[string]time.Time
}

type job struct {
	name     string
	spec     string
	schedule cron.Schedule // nil for on-demand jobs
	run      Job
	next     time.Time

	running  sync.Mutex
	active   atomic.Bool
	pending  atomic.Bool
	debounce uint64 // guarded by Scheduler.mu
	lastErr  string
	lastTook time.Duration
}

// parser reads every schedule: five fields, or one of robfig/cron's
// descriptors (@every <duration>, @hourly, @daily, @midnight, @weekly,
// @monthly, @yearly, @annually), with robfig/cron's own parser options.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// SpecForms says in words what a spec may be, for error messages.
const SpecForms = `5 fields: minute hour day-of-month month day-of-week, e.g. "0 9 1 1,4,7,10 *"; or a descriptor: "@every 10m", "@hourly", "@daily", "@weekly", "@monthly", "@yearly"`

// ParseSpec checks a cron spec ("0 9 1 1,4,7,10 *", "@every 5m", "@daily")
// the way Add does, so config validation can reject it before anything
// starts.
func ParseSpec(spec string) error {
	_, err := parser.Parse(spec)
	return err
}

// New makes a scheduler; nothing runs until Start.
func New(o Options) (*Scheduler, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	s := &Scheduler{o: o, jobs: map[string]*job{}, state: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	if o.StatePath != "" {
		b, err := os.ReadFile(o.StatePath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("reading scheduler state: %w", err)
		default:
			if err := json.Unmarshal(b, &s.state); err != nil {
				return nil, fmt.Errorf("scheduler state %s: %w (delete it to start afresh)", o.StatePath, err)
			}
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Add registers a job under a cron spec ("0 9 1 1,4,7,10 *", "@every 5m"),
// replacing a job of the same name (a config reload). A bad spec is an
// error naming the job.
func (s *Scheduler) Add(name, spec string, run Job) error {
	sched, err := parser.Parse(spec)
	if err != nil {
		return fmt.Errorf("schedule %s: %q is not a cron spec (%s): %w", name, spec, SpecForms, err)
	}
	s.put(&job{name: name, spec: spec, schedule: sched, run: run})
	return nil
}

// AddTriggered registers a job that runs only through Run, Trigger or
// TriggerAfter.
func (s *Scheduler) AddTriggered(name string, run Job) {
	s.put(&job{name: name, spec: OnDemand, run: run})
}

func (s *Scheduler) put(j *job) {
	s.mu.Lock()
	if old := s.jobs[j.name]; old != nil {
		// Keep the old job's run lock so a reload never lets the job run
		// twice at once.
		old.spec, old.schedule, old.run = j.spec, j.schedule, j.run
		j = old
	} else {
		s.jobs[j.name] = j
	}
	if j.schedule != nil {
		j.next = j.schedule.Next(s.o.Clock.Now().UTC())
	} else {
		j.next = time.Time{}
	}
	s.mu.Unlock()
	s.poke()
}

// Remove drops a job; a run in progress finishes.
func (s *Scheduler) Remove(name string) {
	s.mu.Lock()
	delete(s.jobs, name)
	s.mu.Unlock()
	s.poke()
}

// Start runs, once each, the jobs whose last scheduled time passed while
// the scheduler was down, then starts the loop.
func (s *Scheduler) Start() {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return
	}
	s.started = true
	s.mu.Unlock()
	for _, name := range s.Missed() {
		s.o.Log.Info("running a job missed while down", "job", name)
		s.goRun(name)
	}
	s.runs.Add(1)
	go func() {
		defer s.runs.Done()
		s.loop()
	}()
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) loop() {
	for {
		now := s.o.Clock.Now().UTC()
		var due []string
		earliest := now.Add(maxWait)
		s.mu.Lock()
		for name, j := range s.jobs {
			if j.schedule == nil {
				continue
			}
			if !j.next.After(now) {
				due = append(due, name)
				j.next = j.schedule.Next(now)
			}
			if j.next.Before(earliest) {
				earliest = j.next
			}
		}
		s.mu.Unlock()
		sort.Strings(due)
		for _, name := range due {
			s.goRun(name)
		}
		select {
		case <-s.o.Clock.After(earliest.Sub(now)):
		case <-s.wake:
		case <-s.ctx.Done():
			return
		}
	}
}

// goRun starts a run of the job in its own goroutine. Whether the slot is
// skipped (the previous run still works) is decided here, at the slot's
// time, before the loop waits for the next one: decided later in the
// goroutine, a slow start could let a run that finished meanwhile take a
// slot that came while it still ran.
func (s *Scheduler) goRun(name string) {
	j := s.claim(name)
	if j == nil {
		return
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		j.running.Unlock()
		return
	}
	s.runs.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.runs.Done()
		s.runOnce(j)
		j.running.Unlock()
	}()
}

// Missed lists jobs with a recorded last run whose next scheduled time is
// already past. A job never run before is not missed: it waits for its
// first slot.
func (s *Scheduler) Missed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Clock.Now().UTC()
	var out []string
	for name, j := range s.jobs {
		last, ok := s.state[name]
		if ok && j.schedule != nil && !j.schedule.Next(last).After(now) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Run runs a job now and waits for it, unless it is already running: then
// the run is skipped and logged (a cron slot that comes while the previous
// run still works is not queued up behind it).
func (s *Scheduler) Run(name string) {
	if j := s.claim(name); j != nil {
		s.runOnce(j)
		j.running.Unlock()
	}
}

// claim takes the job's run lock for a run starting now and returns the
// job, or nil if there is no such job or it is still running (that run is
// skipped, and logged).
func (s *Scheduler) claim(name string) *job {
	j := s.job(name)
	if j == nil {
		return nil
	}
	if !j.running.TryLock() {
		s.o.Log.Warn("job still running; this run is skipped", "job", name)
		return nil
	}
	return j
}

// Trigger asks for a run of the job and returns at once. Triggers that
// arrive while the job runs are coalesced into one more run after it, so a
// change made during a run is never missed and a burst costs one run.
func (s *Scheduler) Trigger(name string) {
	j := s.job(name)
	if j == nil {
		return
	}
	j.pending.Store(true)
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.runs.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.runs.Done()
		for j.pending.Load() && s.ctx.Err() == nil {
			if !j.running.TryLock() {
				return // the holder sees pending when it finishes
			}
			for j.pending.Swap(false) && s.ctx.Err() == nil {
				s.runOnce(j)
			}
			j.running.Unlock()
		}
	}()
}

// TriggerAfter triggers the job once d has passed without another
// TriggerAfter for it (debouncing: a writer appending ten events in a
// second causes one run, d after the last).
func (s *Scheduler) TriggerAfter(name string, d time.Duration) {
	s.mu.Lock()
	j := s.jobs[name]
	if j == nil || s.stopped {
		s.mu.Unlock()
		return
	}
	j.debounce++
	gen := j.debounce
	s.runs.Add(1)
	s.mu.Unlock()
	timer := s.o.Clock.After(d)
	go func() {
		defer s.runs.Done()
		select {
		case <-timer:
		case <-s.ctx.Done():
			return
		}
		s.mu.Lock()
		cur := j.debounce
		s.mu.Unlock()
		if cur == gen {
			s.Trigger(name)
		}
	}()
}

func (s *Scheduler) job(name string) *job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs[name]
}

// runOnce runs j (whose run lock the caller holds), recovering a panic.
// The last run is recorded even when the job fails: failures are reported,
// not retried in a loop.
func (s *Scheduler) runOnce(j *job) {
	j.active.Store(true)
	s.mu.Lock()
	run := j.run
	s.mu.Unlock()
	start := s.o.Clock.Now().UTC()
	t0 := time.Now()
	s.o.Log.Info("job started", "job", j.name)
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return run(s.ctx)
	}()
	took := time.Since(t0)
	// The state is recorded before the run is reported, so whoever sees
	// "job done" (a log reader, OnDone) sees it finished: not running,
	// with its last run, error and success.
	s.mu.Lock()
	j.active.Store(false)
	j.lastTook = took
	j.lastErr = ""
	if err != nil {
		j.lastErr = err.Error()
	}
	s.state[j.name] = start
	if err == nil {
		s.state[successKey(j.name)] = s.o.Clock.Now().UTC()
	}
	serr := s.saveLocked()
	s.mu.Unlock()
	if serr != nil {
		s.o.Log.Error("saving scheduler state", "err", serr)
	}
	if err != nil {
		s.o.Log.Error("job failed", "job", j.name, "took", took, "err", err)
	} else {
		s.o.Log.Info("job done", "job", j.name, "took", took)
	}
	if s.o.OnDone != nil {
		s.o.OnDone(j.name, took, err)
	}
}

// LastRuns returns the persisted last run of every job ever run, also of
// jobs not registered in this process (status without a daemon).
func (s *Scheduler) LastRuns() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.state))
	for k, v := range s.state {
		if !strings.HasSuffix(k, successKey("")) {
			out[k] = v
		}
	}
	return out
}

// Entries lists the jobs with their last and next runs.
func (s *Scheduler) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Clock.Now().UTC()
	out := make([]Entry, 0, len(s.jobs))
	for name, j := range s.jobs {
		e := Entry{Name: name, Spec: j.spec, LastRun: s.state[name], Running: j.active.Load(), LastError: j.lastErr, LastDuration: j.lastTook.Seconds(),
			LastSuccess: s.state[successKey(name)]}
		if j.schedule != nil {
			e.Next = j.next
			if e.Next.IsZero() || !s.started {
				e.Next = j.schedule.Next(now)
			}
		}
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// Stop stops scheduling, cancels the running jobs' context and waits for
// them to return or for ctx to end.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.runs.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// saveLocked writes the state atomically: temp file, fsync, rename, fsync
// of the directory, so a crash leaves the old state or the new one.
func (s *Scheduler) saveLocked() error {
	if s.o.StatePath == "" {
		return nil
	}
	b, err := json.MarshalIndent(s.state, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.o.StatePath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".scheduler-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.o.StatePath); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
