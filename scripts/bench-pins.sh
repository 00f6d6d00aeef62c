#!/usr/bin/env bash
# Remote pinning benchmarks (issue 8), each against its baseline on this machine:
#  - what queueing a remote pin request per new anchor adds to an anchoring
#    run of SSID_BENCH_FILES (default 1000) files: side by side, interleaved,
#    medians and their ratio, plus the queue step timed alone (target ≤ 5 %);
#  - how fast one drain pushes SSID_BENCH_PINS (default 1000) requests to a
#    Pinning Service API server on loopback (target ≥ 200 req/s).
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./cmd/ssid-anchor -run '^$' -bench BenchmarkAnchorRemoteQueue -benchtime=1x -count=1
go test ./anchor/pinning -run '^$' -bench BenchmarkDrainPSA -benchtime=1x -count=1
