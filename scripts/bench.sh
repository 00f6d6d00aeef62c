#!/usr/bin/env bash
# make bench: every benchmark, each printed as ratios against a baseline run
# side by side on this machine. Needs bin/ssid-anchor and bin/ipfs (make
# builds both first).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== anchoring (issue: the main job) =="
go run ./scripts/bench -bin bin/ssid-anchor -ipfs bin/ipfs "$@"
for s in scripts/bench-verify.sh scripts/bench-telemetry.sh scripts/bench-pins.sh scripts/bench-storacha.sh scripts/bench-daemon.sh; do
  if [ -x "$s" ]; then
    echo
    echo "== $s =="
    "$s"
  fi
done
