// Package scheduler runs the daemon's jobs on one robfig/cron scheduler in
// UTC. A job never runs twice at once, a panic in a job is logged and the
// scheduler survives, and a run missed while the box was down (the
// quarterly release on 1 January, say) runs once at start. It imports no
// other package of this project: cmd hands it closures.
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
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Job is one unit of scheduled work; ctx ends when the scheduler stops.
type Job func(ctx context.Context) error

// Options configure a Scheduler.
type Options struct {
	// StatePath is a JSON file remembering each job's last run, for
	// catch-up after downtime; "" disables catch-up.
	StatePath string
	Log       *slog.Logger
	// Now is the clock (UTC); nil means time.Now.
	Now func() time.Time
}

// Entry describes a job for status output.
type Entry struct {
	Name    string    `json:"name"`
	Spec    string    `json:"spec"`
	LastRun time.Time `json:"last_run,omitzero"`
	Next    time.Time `json:"next"`
}

// Scheduler owns the cron instance and the jobs' last-run state.
type Scheduler struct {
	o      Options
	cron   *cron.Cron
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	jobs  map[string]*job
	state map[string]time.Time
}

type job struct {
	name     string
	spec     string
	schedule cron.Schedule
	run      Job
	running  sync.Mutex
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// New makes a scheduler; nothing runs until Start.
func New(o Options) (*Scheduler, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Scheduler{o: o, jobs: map[string]*job{}, state: map[string]time.Time{}}
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
	s.cron = cron.New(cron.WithLocation(time.UTC), cron.WithParser(parser), cron.WithLogger(cronLogger{o.Log}))
	return s, nil
}

// Add registers a job under a cron spec ("0 9 1 1,4,7,10 *", "@every 5m").
// A bad spec is an error naming the job.
func (s *Scheduler) Add(name, spec string, run Job) error {
	sched, err := parser.Parse(spec)
	if err != nil {
		return fmt.Errorf("schedule %s: %q is not a cron spec (5 fields or @every <duration>): %w", name, spec, err)
	}
	j := &job{name: name, spec: spec, schedule: sched, run: run}
	s.mu.Lock()
	s.jobs[name] = j
	s.mu.Unlock()
	s.cron.Schedule(sched, cron.FuncJob(func() { s.Run(name) }))
	return nil
}

// Start runs, once each, the jobs whose last scheduled time passed while
// the scheduler was down, then starts the cron loop.
func (s *Scheduler) Start() {
	for _, name := range s.Missed() {
		s.o.Log.Info("running a job missed while down", "job", name)
		go s.Run(name)
	}
	s.cron.Start()
}

// Missed lists jobs with a recorded last run whose next scheduled time is
// already past. A job never run before is not missed: it waits for its
// first slot.
func (s *Scheduler) Missed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now().UTC()
	var out []string
	for name, j := range s.jobs {
		last, ok := s.state[name]
		if ok && !j.schedule.Next(last).After(now) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Run runs a job now unless it is already running (then it is skipped and
// logged). A panic is recovered and logged. The last run is recorded even
// when the job fails: failures are reported, not retried in a loop.
func (s *Scheduler) Run(name string) {
	s.mu.Lock()
	j := s.jobs[name]
	s.mu.Unlock()
	if j == nil {
		return
	}
	if !j.running.TryLock() {
		s.o.Log.Warn("job still running; this run is skipped", "job", name)
		return
	}
	defer j.running.Unlock()
	start := s.o.Now().UTC()
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return j.run(s.ctx)
	}()
	if err != nil {
		s.o.Log.Error("job failed", "job", name, "err", err)
	} else {
		s.o.Log.Info("job done", "job", name, "took", s.o.Now().Sub(start))
	}
	s.mu.Lock()
	s.state[name] = start
	serr := s.saveLocked()
	s.mu.Unlock()
	if serr != nil {
		s.o.Log.Error("saving scheduler state", "err", serr)
	}
}

// Entries lists the jobs with their last and next runs.
func (s *Scheduler) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now().UTC()
	var out []Entry
	for name, j := range s.jobs {
		out = append(out, Entry{Name: name, Spec: j.spec, LastRun: s.state[name], Next: j.schedule.Next(now)})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// Stop stops scheduling, cancels the running jobs' context and waits for
// them to return or for ctx to end.
func (s *Scheduler) Stop(ctx context.Context) error {
	done := s.cron.Stop()
	s.cancel()
	s.mu.Lock()
	jobs := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		jobs = append(jobs, j)
	}
	s.mu.Unlock()
	select {
	case <-done.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	// Runs started outside cron (catch-up, Run) hold their job's lock.
	for _, j := range jobs {
		locked := make(chan struct{})
		go func() { j.running.Lock(); j.running.Unlock(); close(locked) }()
		select {
		case <-locked:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *Scheduler) saveLocked() error {
	if s.o.StatePath == "" {
		return nil
	}
	b, err := json.MarshalIndent(s.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.o.StatePath + ".tmp"
	if err := os.MkdirAll(filepath.Dir(s.o.StatePath), 0o755); err != nil {
		return err
	}
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
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
	return os.Rename(tmp, s.o.StatePath)
}

// cronLogger sends robfig/cron's messages to slog.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}
