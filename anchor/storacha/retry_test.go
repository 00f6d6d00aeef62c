package storacha

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Retry calls Upload until it succeeds, fails for good, or maxTries calls
// were made, waiting with b between transient failures (at least what the
// service asked for in Retry-After). st carries the progress from one call
// to the next, so a retry never repeats a finished step.
//
// It lives with the tests, which drive an upload to completion in-process:
// the product's one retry policy is scheduler/retry, applied by the persistent
// remote-pin queue (anchor/pinning), which calls Upload with IsTransient and
// stores the next attempt time instead of sleeping on a server's say-so.
func (c *Client) Retry(ctx context.Context, src Blocks, st *State, save func(*State) error, b backoff.BackOff, maxTries uint) error {
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := c.Upload(ctx, src, st, save)
		last = err
		if err == nil {
			return struct{}{}, nil
		}
		transient, after := IsTransient(err)
		if !transient {
			return struct{}{}, backoff.Permanent(err)
		}
		if after > 0 {
			c.log.Info("storacha bridge asked to wait", "after", after.String())
			return struct{}{}, backoff.RetryAfter(int((after + time.Second - 1) / time.Second))
		}
		c.log.Info("storacha upload will be retried", "error", err.Error())
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxTries(maxTries), backoff.WithMaxElapsedTime(0))
	var ra *backoff.RetryAfterError
	if errors.As(err, &ra) && last != nil {
		return last // tries ran out while the service asked to wait
	}
	return err
}
