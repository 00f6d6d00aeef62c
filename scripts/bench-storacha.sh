#!/usr/bin/env bash
# Storacha bridge benchmarks (make bench). Prints figures and ratios against
# a baseline measured side by side in the same process; asserts nothing.
#
#  1. a SIZE_MIB anchor (default 1024) cut into CAR shards vs stock
#     `ipfs dag export` of the same root from the same repo, interleaved
#     ROUNDS times, medians; target <= 1.2x.
#  2. 1000 small anchors: anchoring them vs uploading them through a
#     loopback bridge (at most 4 bridge requests, one PUT per shard: the
#     tests assert those counts); target: the upload adds <= 10 %.
set -euo pipefail
cd "$(dirname "$0")/.."
IPFS=${SSID_IPFS_BIN:-$PWD/bin/ipfs}
[ -x "$IPFS" ] || { echo "bench-storacha: no stock ipfs at $IPFS (make ipfs, or set SSID_IPFS_BIN)" >&2; exit 1; }
SSID_IPFS_BIN=$IPFS STORACHA_BENCH_MIB=${SIZE_MIB:-1024} ROUNDS=${ROUNDS:-3} \
  go test ./anchor/storacha -run '^$' -bench 'BenchmarkStoracha' -benchtime 1x -count=1 -timeout 60m
