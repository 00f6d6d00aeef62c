#!/usr/bin/env bash
# make bench: every benchmark, each printed as ratios against a baseline run
# side by side on this machine. Needs bin/ssid-anchor and bin/ipfs (make
# builds both first). Arguments go to the anchoring benchmark
# (scripts/bench, see go run ./scripts/bench -h), e.g.
#   ./scripts/bench.sh -size 256MiB -treefiles 5000 -runs 5 -json bench-out/bench.json
#   make bench BENCH_FLAGS="-only tree,verify -cold"
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== anchoring, verify, export, incremental runs, daemon memory (issues 13 and 22; make soak runs the daemon soak) =="
go run ./scripts/bench -bin bin/ssid-anchor -ipfs bin/ipfs "$@"
for s in scripts/bench-verify.sh scripts/bench-telemetry.sh scripts/bench-pins.sh scripts/bench-storacha.sh scripts/bench-daemon.sh; do
  if [ -x "$s" ]; then
    echo
    echo "== $s =="
    "$s"
  fi
done
