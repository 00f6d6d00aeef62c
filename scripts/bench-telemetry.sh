#!/bin/sh
# One telemetry check on a 100,000-row dashboard CSV and a 1,000,000-event
# registry log, compared with sha256sum of both files; peak RSS from the
# check's own rusage. Usage: scripts/bench-telemetry.sh [extra telemetrybench flags]
# SSID_ANCHOR_BIN selects the binary (default bin/ssid-anchor, built if missing).
set -eu
cd "$(dirname "$0")/.."
BIN=${SSID_ANCHOR_BIN:-bin/ssid-anchor}
if [ ! -x "$BIN" ]; then
	go build -o "$BIN" ./cmd/ssid-anchor
fi
exec go run ./scripts/telemetrybench -bin "$BIN" "$@"
