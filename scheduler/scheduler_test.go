package scheduler

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestQuarterlyNextRunsInUTC(t *testing.T) {
	s, err := New(Options{Now: fixedClock(time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add("quarterly", "0 9 1 1,4,7,10 *", func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	e := s.Entries()
	if len(e) != 1 || !e[0].Next.Equal(time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("next quarterly run %v, want 2027-01-01T09:00Z", e)
	}
	next := e[0].Next
	var got []string
	for range 4 {
		next = s.jobs["quarterly"].schedule.Next(next)
		got = append(got, next.Format(time.RFC3339))
	}
	if want := "2027-04-01T09:00:00Z 2027-07-01T09:00:00Z 2027-10-01T09:00:00Z 2028-01-01T09:00:00Z"; strings.Join(got, " ") != want {
		t.Errorf("following runs %v, want %s", got, want)
	}
	if err := s.Add("bad", "0 9 * *", nil); err == nil || !strings.Contains(err.Error(), "schedule bad") {
		t.Errorf("bad spec: %v", err)
	}
}

func TestMissedRunCatchesUpOnce(t *testing.T) {
	state := filepath.Join(t.TempDir(), "sched.json")
	// The box ran the October release, then was down over 1 January.
	s, _ := New(Options{StatePath: state, Now: fixedClock(time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC))})
	var runs atomic.Int32
	s.Add("quarterly", "0 9 1 1,4,7,10 *", func(context.Context) error { runs.Add(1); return nil })
	s.Add("telemetry", "@every 5m", func(context.Context) error { return nil })
	s.Run("quarterly")

	s2, err := New(Options{StatePath: state, Now: fixedClock(time.Date(2027, 1, 3, 12, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	s2.Add("quarterly", "0 9 1 1,4,7,10 *", func(context.Context) error { runs.Add(1); return nil })
	s2.Add("telemetry", "@every 5m", func(context.Context) error { return nil })
	if m := s2.Missed(); len(m) != 1 || m[0] != "quarterly" {
		t.Fatalf("missed %v, want [quarterly] (telemetry never ran, so it only waits for its slot)", m)
	}
	s2.Run("quarterly")
	if m := s2.Missed(); len(m) != 0 {
		t.Fatalf("still missed after the catch-up run: %v", m)
	}
	if runs.Load() != 2 {
		t.Errorf("%d runs, want 2", runs.Load())
	}
}

func TestJobNeverRunsTwiceAndPanicIsSurvived(t *testing.T) {
	var logs bytes.Buffer
	s, _ := New(Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	entered, release := make(chan struct{}), make(chan struct{})
	s.Add("slow", "@every 1h", func(context.Context) error { close(entered); <-release; return nil })
	done := make(chan struct{})
	go func() { s.Run("slow"); close(done) }()
	<-entered
	s.Run("slow") // returns at once: the first run still holds the job
	if !strings.Contains(logs.String(), "job still running") {
		t.Errorf("second run not reported as skipped: %s", logs.String())
	}
	close(release)
	<-done

	s.Add("boom", "@every 1h", func(context.Context) error { panic("kaboom") })
	s.Run("boom")
	if !strings.Contains(logs.String(), "kaboom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
	s.Add("fails", "@every 1h", func(context.Context) error { return errors.New("no channel") })
	s.Run("fails")
	if !strings.Contains(logs.String(), "no channel") {
		t.Errorf("failure not logged: %s", logs.String())
	}
}

func TestStopCancelsAndWaits(t *testing.T) {
	s, _ := New(Options{})
	entered := make(chan struct{})
	var sawCancel atomic.Bool
	s.Add("long", "@every 1h", func(ctx context.Context) error {
		close(entered)
		<-ctx.Done()
		sawCancel.Store(true)
		return ctx.Err()
	})
	s.Start()
	go s.Run("long")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !sawCancel.Load() {
		t.Error("Stop returned before the running job saw its context end")
	}
}
