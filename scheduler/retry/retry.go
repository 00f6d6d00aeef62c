// Package retry is ssid-anchor's one retry policy: exponential backoff with
// jitter (github.com/cenkalti/backoff/v5), a server's Retry-After honoured,
// and the HTTP status codes worth another try told apart from the ones that
// are not. Remote pinning and the telemetry notify channels use it, so an
// operator learns one behaviour.
//
// It sits under scheduler, the package about when work runs, and imports
// nothing of this project, so anchor/pinning, anchor/storacha and
// telemetry/notify all import it without an arrow between anchor and
// telemetry.
//
// The policy computes delays and never sleeps: callers that persist their
// work (the remote pin queue) store the next attempt time, and callers that
// wait use their own injected clock.
package retry

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy is exponential backoff with jitter.
type Policy struct {
	// Initial is the delay before the second attempt (before jitter).
	Initial time.Duration
	// Max caps the delay (before jitter), and a server's Retry-After.
	Max time.Duration
	// Multiplier grows the delay after each failed attempt.
	Multiplier float64
	// Jitter spreads each delay over [d·(1−Jitter), d·(1+Jitter)] so that
	// many clients that failed together do not come back together.
	Jitter float64
}

// Default is the policy used unless a caller has a reason for another:
// 2 s, 4 s, 8 s ... up to 10 min, each ±50 %.
func Default() Policy {
	return Policy{Initial: 2 * time.Second, Max: 10 * time.Minute, Multiplier: 2, Jitter: 0.5}
}

// Delay is how long to wait after the given number of consecutive failed
// attempts (1 after the first failure).
func (p Policy) Delay(failures int) time.Duration {
	if failures < 1 {
		failures = 1
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.Initial,
		RandomizationFactor: p.Jitter,
		Multiplier:          p.Multiplier,
		MaxInterval:         p.Max,
	}
	if b.Multiplier < 1 {
		b.Multiplier = 1
	}
	b.Reset()
	var d time.Duration
	for range min(failures, 64) {
		d = b.NextBackOff()
	}
	return d
}

// Next is the delay after a failure: the backoff delay, or the server's
// Retry-After when that is longer (capped at Max, so a hostile or broken
// server cannot park a request for a year).
func (p Policy) Next(failures int, retryAfter time.Duration) time.Duration {
	d := p.Delay(failures)
	if retryAfter > d {
		d = min(retryAfter, p.Max)
	}
	return d
}

// Transient reports whether an HTTP status is worth retrying: request
// timeout, too early, too many requests, and every 5xx.
func Transient(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500 && code <= 599
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110 10.2.3). ok is false when the header is absent or unreadable.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, 1<<31)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}
