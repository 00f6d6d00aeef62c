package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the scheduler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fireRecorder records the fake time at which each run started.
type fireRecorder struct {
	clk *FakeClock
	ch  chan time.Time
}

func newRecorder(clk *FakeClock) *fireRecorder {
	return &fireRecorder{clk: clk, ch: make(chan time.Time, 16)}
}

func (r *fireRecorder) job(context.Context) error { r.ch <- r.clk.Now(); return nil }

func (r *fireRecorder) next(t *testing.T) time.Time {
	t.Helper()
	select {
	case at := <-r.ch:
		return at
	case <-time.After(10 * time.Second):
		t.Fatal("job did not run")
		return time.Time{}
	}
}

func (r *fireRecorder) none(t *testing.T) {
	t.Helper()
	select {
	case at := <-r.ch:
		t.Fatalf("unexpected run at %v", at)
	case <-time.After(50 * time.Millisecond):
	}
}

// advanceTo moves the fake clock to at in steps no longer than the loop's
// longest sleep, waiting each time until the loop sleeps again, the way
// wall time passes for the real loop.
func advanceTo(t *testing.T, clk *FakeClock, waiters int, at time.Time) {
	t.Helper()
	for clk.Now().Before(at) {
		if !clk.BlockUntil(waiters, 10*time.Second) {
			t.Fatalf("scheduler loop is not waiting (at %v)", clk.Now())
		}
		step := min(at.Sub(clk.Now()), 24*time.Hour)
		clk.Advance(step)
	}
}

func TestQuarterlyFiresAtItsTimesInUTC(t *testing.T) {
	clk := NewFakeClock(time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC))
	s, err := New(Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(clk)
	if err := s.Add("quarterly", "0 9 1 1,4,7,10 *", rec.job); err != nil {
		t.Fatal(err)
	}
	if e := s.Entries(); len(e) != 1 || !e[0].Next.Equal(time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("next quarterly run %+v, want 2027-01-01T09:00Z", e)
	}
	s.Start()
	defer s.Stop(context.Background())
	var got []string
	for _, want := range []time.Time{
		time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC), time.Date(2027, 4, 1, 9, 0, 0, 0, time.UTC),
		time.Date(2027, 7, 1, 9, 0, 0, 0, time.UTC), time.Date(2027, 10, 1, 9, 0, 0, 0, time.UTC),
	} {
		advanceTo(t, clk, 1, want.Add(-time.Second))
		rec.none(t)
		advanceTo(t, clk, 1, want)
		got = append(got, rec.next(t).Format(time.RFC3339))
	}
	if want := "2027-01-01T09:00:00Z 2027-04-01T09:00:00Z 2027-07-01T09:00:00Z 2027-10-01T09:00:00Z"; strings.Join(got, " ") != want {
		t.Errorf("runs at %v, want %s", got, want)
	}
	if err := s.Add("bad", "0 9 * *", nil); err == nil || !strings.Contains(err.Error(), "schedule bad") {
		t.Errorf("bad spec: %v", err)
	}
}

func TestIntervalJobFiresEveryInterval(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	clk := NewFakeClock(t0)
	s, _ := New(Options{Clock: clk})
	rec := newRecorder(clk)
	if err := s.Add("telemetry", "@every 300s", rec.job); err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Stop(context.Background())
	for i := 1; i <= 3; i++ {
		advanceTo(t, clk, 1, t0.Add(time.Duration(i)*5*time.Minute))
		if at := rec.next(t); !at.Equal(t0.Add(time.Duration(i) * 5 * time.Minute)) {
			t.Fatalf("run %d at %v", i, at)
		}
	}
	// A reload with a new interval replaces the schedule.
	if err := s.Add("telemetry", "@every 60s", rec.job); err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	advanceTo(t, clk, 1, now.Add(time.Minute))
	if at := rec.next(t); !at.Equal(now.Add(time.Minute)) {
		t.Fatalf("after reload: run at %v, want %v", at, now.Add(time.Minute))
	}
}

func TestMissedRunCatchesUpOnce(t *testing.T) {
	state := filepath.Join(t.TempDir(), "sched.json")
	// The box ran the October release, then was down over 1 January.
	clk := NewFakeClock(time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC))
	s, _ := New(Options{StatePath: state, Clock: clk})
	rec := newRecorder(clk)
	s.Add("quarterly", "0 9 1 1,4,7,10 *", rec.job)
	s.Add("telemetry", "@every 5m", func(context.Context) error { return nil })
	s.Run("quarterly")
	rec.next(t)

	clk2 := NewFakeClock(time.Date(2027, 1, 3, 12, 0, 0, 0, time.UTC))
	s2, err := New(Options{StatePath: state, Clock: clk2})
	if err != nil {
		t.Fatal(err)
	}
	rec2 := newRecorder(clk2)
	s2.Add("quarterly", "0 9 1 1,4,7,10 *", rec2.job)
	s2.Add("telemetry", "@every 5m", func(context.Context) error { return nil })
	if m := s2.Missed(); len(m) != 1 || m[0] != "quarterly" {
		t.Fatalf("missed %v, want [quarterly] (telemetry never ran, so it only waits for its slot)", m)
	}
	s2.Start()
	defer s2.Stop(context.Background())
	if at := rec2.next(t); !at.Equal(clk2.Now()) {
		t.Errorf("catch-up ran at %v, want at start %v", at, clk2.Now())
	}
	// Once: a day later nothing more runs, and nothing is missed any more.
	advanceTo(t, clk2, 1, clk2.Now().Add(24*time.Hour))
	rec2.none(t)
	if m := s2.Missed(); len(m) != 0 {
		t.Fatalf("still missed after the catch-up run: %v", m)
	}
	last := s2.LastRuns()["quarterly"]
	if !last.Equal(time.Date(2027, 1, 3, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("persisted last run %v", last)
	}
}

func TestJobNeverRunsTwiceAndPanicIsSurvived(t *testing.T) {
	var logs syncBuffer
	clk := NewFakeClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	var dones []string
	var dmu sync.Mutex
	s, _ := New(Options{Clock: clk, Log: slog.New(slog.NewTextHandler(&logs, nil)), OnDone: func(job string, _ time.Duration, err error) {
		dmu.Lock()
		defer dmu.Unlock()
		dones = append(dones, job+":"+map[bool]string{true: "fail", false: "ok"}[err != nil])
	}})
	// entered holds one: the run may reach it before the test waits.
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var concurrent, maxConcurrent atomic.Int32
	s.Add("slow", "@every 1m", func(context.Context) error {
		n := concurrent.Add(1)
		if n > maxConcurrent.Load() {
			maxConcurrent.Store(n)
		}
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		concurrent.Add(-1)
		return nil
	})
	s.Start()
	// The first slot starts a run that blocks; the next three slots come
	// while it still runs and are skipped.
	advanceTo(t, clk, 1, clk.Now().Add(time.Minute))
	<-entered
	for range 3 {
		advanceTo(t, clk, 1, clk.Now().Add(time.Minute))
	}
	s.Run("slow")
	close(release)
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if maxConcurrent.Load() != 1 {
		t.Errorf("%d runs at once", maxConcurrent.Load())
	}
	if n := strings.Count(logs.String(), "job still running"); n < 3 {
		t.Errorf("%d skipped runs logged, want >= 3: %s", n, logs.String())
	}

	s2, _ := New(Options{Clock: clk, Log: slog.New(slog.NewTextHandler(&logs, nil)), OnDone: s.o.OnDone})
	s2.AddTriggered("boom", func(context.Context) error { panic("kaboom") })
	s2.Run("boom")
	if !strings.Contains(logs.String(), "kaboom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
	s2.AddTriggered("fails", func(context.Context) error { return errors.New("no channel") })
	s2.Run("fails")
	if !strings.Contains(logs.String(), "no channel") {
		t.Errorf("failure not logged: %s", logs.String())
	}
	// The scheduler still works after the panic.
	ran := make(chan struct{})
	s2.AddTriggered("after", func(context.Context) error { close(ran); return nil })
	s2.Trigger("after")
	<-ran
	s2.Stop(context.Background())
	e := map[string]Entry{}
	for _, x := range s2.Entries() {
		e[x.Name] = x
	}
	if e["boom"].LastError != "panic: kaboom" || e["fails"].LastError != "no channel" || e["after"].LastError != "" {
		t.Errorf("entries %+v", e)
	}
	dmu.Lock()
	if got := strings.Join(dones, " "); got != "slow:ok boom:fail fails:fail after:ok" {
		t.Errorf("OnDone saw %q", got)
	}
	dmu.Unlock()
}

func TestTriggersCoalesceAndDebounce(t *testing.T) {
	clk := NewFakeClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	s, _ := New(Options{Clock: clk})
	var runs atomic.Int32
	entered, release := make(chan struct{}, 4), make(chan struct{})
	s.AddTriggered("anchor", func(context.Context) error {
		runs.Add(1)
		entered <- struct{}{}
		<-release
		return nil
	})
	s.Start()
	defer s.Stop(context.Background())
	s.Trigger("anchor")
	<-entered
	// Three triggers during the run become exactly one more run.
	s.Trigger("anchor")
	s.Trigger("anchor")
	s.Trigger("anchor")
	release <- struct{}{}
	<-entered
	release <- struct{}{}
	time.Sleep(50 * time.Millisecond)
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d runs, want 2", n)
	}

	// A burst of debounced triggers runs once, 2 s after the last.
	for range 5 {
		s.TriggerAfter("anchor", 2*time.Second)
		clk.Advance(time.Second)
	}
	select {
	case <-entered:
		t.Fatal("ran before the burst was quiet for 2 s")
	case <-time.After(50 * time.Millisecond):
	}
	clk.Advance(time.Second)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("debounced trigger did not run")
	}
	release <- struct{}{}
	time.Sleep(50 * time.Millisecond)
	if n := runs.Load(); n != 3 {
		t.Fatalf("%d runs, want 3", n)
	}
}

func TestStopCancelsAndWaits(t *testing.T) {
	s, _ := New(Options{})
	entered := make(chan struct{})
	var sawCancel atomic.Bool
	s.AddTriggered("long", func(ctx context.Context) error {
		close(entered)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // a safe point takes a moment
		sawCancel.Store(true)
		return ctx.Err()
	})
	s.Start()
	s.Trigger("long")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !sawCancel.Load() {
		t.Error("Stop returned before the running job saw its context end")
	}
	s.Trigger("long") // after Stop: ignored, no panic
}

// TestLastSuccessPersisted: a run that returns no error records its
// finish as the job's last success, a failing run does not touch it, and
// a new scheduler on the same state file shows it. The file stays a flat
// object of times (what older builds read), and LastRuns lists only jobs.
func TestLastSuccessPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scheduler.json")
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	clk := NewFakeClock(t0)
	s, err := New(Options{StatePath: path, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	fail := atomic.Bool{}
	s.AddTriggered("anchor", func(context.Context) error {
		if fail.Load() {
			return errors.New("broken")
		}
		return nil
	})
	s.Run("anchor")
	clk.Advance(time.Hour)
	fail.Store(true)
	s.Run("anchor")
	e := s.Entries()[0]
	if !e.LastSuccess.Equal(t0) || !e.LastRun.Equal(t0.Add(time.Hour)) || e.LastError == "" {
		t.Fatalf("after a success and a failure: %+v, want last success %v", e, t0)
	}

	s2, err := New(Options{StatePath: path, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	s2.AddTriggered("anchor", func(context.Context) error { return nil })
	if e := s2.Entries()[0]; !e.LastSuccess.Equal(t0) || !e.LastRun.Equal(t0.Add(time.Hour)) {
		t.Fatalf("a new scheduler on the same state: %+v", e)
	}
	if runs := s2.LastRuns(); len(runs) != 1 || !runs["anchor"].Equal(t0.Add(time.Hour)) {
		t.Fatalf("LastRuns: %v, want only the anchor job's last run", runs)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var flat map[string]time.Time
	if err := json.Unmarshal(b, &flat); err != nil {
		t.Fatalf("the state file is no longer a flat object of times: %v\n%s", err, b)
	}
}
