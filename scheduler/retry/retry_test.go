package retry

import (
	"net/http"
	"testing"
	"time"
)

func TestDelayGrowsWithJitterAndCap(t *testing.T) {
	p := Default()
	for _, tc := range []struct {
		failures int
		lo, hi   time.Duration
	}{
		{1, 1 * time.Second, 3 * time.Second},
		{2, 2 * time.Second, 6 * time.Second},
		{3, 4 * time.Second, 12 * time.Second},
		{100, 5 * time.Minute, 15 * time.Minute}, // capped at Max before jitter
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.Delay(tc.failures)
			if d < tc.lo || d > tc.hi {
				t.Fatalf("Delay(%d) = %v, want %v..%v", tc.failures, d, tc.lo, tc.hi)
			}
			seen[d] = true
		}
		if len(seen) < 50 {
			t.Errorf("Delay(%d): only %d distinct values in 200; no jitter?", tc.failures, len(seen))
		}
	}
	if d := (Policy{Initial: time.Second, Max: time.Minute, Multiplier: 2}).Delay(3); d != 4*time.Second {
		t.Errorf("without jitter Delay(3) = %v, want 4s", d)
	}
}

func TestNextHonoursRetryAfterUpToMax(t *testing.T) {
	p := Policy{Initial: time.Second, Max: time.Hour, Multiplier: 2}
	if d := p.Next(1, 90*time.Second); d != 90*time.Second {
		t.Errorf("Next with Retry-After 90s = %v", d)
	}
	if d := p.Next(1, 48*time.Hour); d != time.Hour {
		t.Errorf("Retry-After beyond Max = %v, want capped at 1h", d)
	}
	if d := p.Next(3, time.Second); d != 4*time.Second {
		t.Errorf("a short Retry-After must not shorten the backoff: %v", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 120 * time.Second, true},
		{" 5 ", 5 * time.Second, true},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"-3", 0, false},
		{"soon", 0, false},
	} {
		d, ok := ParseRetryAfter(tc.in, now)
		if d != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, d, ok, tc.want, tc.ok)
		}
	}
}

func TestTransient(t *testing.T) {
	for code, want := range map[int]bool{408: true, 425: true, 429: true, 500: true, 502: true, 503: true, 599: true,
		400: false, 401: false, 403: false, 404: false, 409: false, 200: false} {
		if Transient(code) != want {
			t.Errorf("Transient(%d) = %v", code, !want)
		}
	}
}
