// Package telemetry watches the governance dashboard and the registry events
// log and decides when people must be told.
//
// A check reads the dashboard CSV (either column set, streamed), measures the
// trend against the previous distinct score, applies every threshold of the
// seed's telemetry_config.json, picks up registry events appended since the
// last check, and walks each alert through its lifecycle: it is sent when it
// starts, when its level changes, every repeat_interval_seconds while it
// lasts, and once when it resolves. Delivery state is kept per channel in
// telemetry_state.json (written atomically), so a channel that failed is
// retried at the next check while the others are not bothered again.
//
// The channels themselves live in telemetry/notify; this package declares the
// one-method Notifier it needs. Clock and logger are passed in.
package telemetry
