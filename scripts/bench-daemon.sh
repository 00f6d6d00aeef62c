#!/usr/bin/env bash
# The appliance against the stock kubo daemon (issue 7, "Performance"), side
# by side on this machine, interleaved rounds, medians and ratios:
#   - idle RSS IDLE seconds after start (target: ssid-anchor <= 0.8 x kubo),
#   - start to /healthz 200 on an existing repo (target: <= 1 s),
#   - gateway: CONC clients fetching the same 1 MiB anchor for LOAD
#     (target: req/s >= kubo's, p99 <= kubo's).
# Both serve the same content from a repo of their own, loopback only, no
# bootstrap, no router. Needs bin/ssid-anchor and bin/ipfs (make builds both).
#   ROUNDS=3 IDLE=60 LOAD=10s CONC=100 scripts/bench-daemon.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${BIN:-bin/ssid-anchor}")
IPFS=$(realpath "${IPFS:-bin/ipfs}")
ROUNDS=${ROUNDS:-3}
IDLE=${IDLE:-60}
LOAD=${LOAD:-10s}
CONC=${CONC:-100}
SPORT=${SPORT:-18189}
KPORT=${KPORT:-18180}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/gwload" ./scripts/gwload

# The content: one 1 MiB release bundle, anchored by ssid-anchor, added by kubo.
tree=$work/tree repo=$work/repo kubo=$work/kubo
for m in 01_ai_layer 05_documentation 24_meta_orchestration; do mkdir -p "$tree/$m"; done
mkdir -p "$tree/05_documentation/releases"
head -c 1048576 /dev/urandom > "$tree/05_documentation/releases/bench.zip"
"$BIN" --repo "$repo" init --profile air-gapped >/dev/null 2>&1
"$BIN" --root "$tree" event --event quarterly_release --version v1 --hash h >/dev/null 2>&1
cid=$("$BIN" --root "$tree" --repo "$repo" --json anchor 2>/dev/null |
  python3 -c 'import json,sys; print([r["ipfs_cid"] for r in json.load(sys.stdin)["anchored"] if r["file_path"].endswith("bench.zip")][0])')
export IPFS_PATH=$kubo
"$IPFS" init --profile test >/dev/null
"$IPFS" config --json Bootstrap '[]'
"$IPFS" config --json AutoConf.Enabled false
"$IPFS" config --json Addresses.Swarm '["/ip4/127.0.0.1/tcp/0"]'
"$IPFS" config Addresses.API /ip4/127.0.0.1/tcp/0
"$IPFS" config Addresses.Gateway "/ip4/127.0.0.1/tcp/$KPORT"
"$IPFS" config Routing.Type none
"$IPFS" config --json Gateway.NoFetch true
kcid=$("$IPFS" add -Q "$tree/05_documentation/releases/bench.zip")
[ "$kcid" = "$cid" ] || { echo "CID mismatch: ssid-anchor $cid, kubo $kcid" >&2; exit 1; }

now_ms() { date +%s%3N; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
wait_ok() { # url -> waits until 200
  until curl -fs -o /dev/null "$1"; do sleep 0.01; done
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }

declare -a s_rss k_rss s_start k_start s_rps k_rps s_p99 k_p99
for ((i = 1; i <= ROUNDS; i++)); do
  t0=$(now_ms)
  "$BIN" --root "$tree" --repo "$repo" daemon --http "127.0.0.1:$SPORT" --swarm /ip4/127.0.0.1/tcp/0 --rpc /ip4/127.0.0.1/tcp/0 >"$work/s.log" 2>&1 &
  sp=$!; pids+=("$sp")
  wait_ok "http://127.0.0.1:$SPORT/healthz"
  s_start+=($(($(now_ms) - t0)))
  sleep "$IDLE"
  s_rss+=($(rss_kib "$sp"))
  out=$("$work/gwload" -url "http://127.0.0.1:$SPORT/ipfs/$cid" -c "$CONC" -d "$LOAD" -size 1048576)
  s_rps+=($(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$out")); s_p99+=($(sed 's/.*p99_ms=\([^ ]*\).*/\1/' <<<"$out"))
  stop "$sp"

  t0=$(now_ms)
  "$IPFS" daemon >"$work/k.log" 2>&1 &
  kp=$!; pids+=("$kp")
  wait_ok "http://127.0.0.1:$KPORT/ipfs/$cid"
  k_start+=($(($(now_ms) - t0)))
  sleep "$IDLE"
  k_rss+=($(rss_kib "$kp"))
  out=$("$work/gwload" -url "http://127.0.0.1:$KPORT/ipfs/$cid" -c "$CONC" -d "$LOAD" -size 1048576)
  k_rps+=($(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$out")); k_p99+=($(sed 's/.*p99_ms=\([^ ]*\).*/\1/' <<<"$out"))
  stop "$kp"
  echo "round $i: ssid-anchor rss ${s_rss[-1]} KiB start ${s_start[-1]} ms rps ${s_rps[-1]} p99 ${s_p99[-1]} ms | kubo rss ${k_rss[-1]} KiB start ${k_start[-1]} ms rps ${k_rps[-1]} p99 ${k_p99[-1]} ms"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ms=$(median "${s_rss[@]}") mk=$(median "${k_rss[@]}")
rs=$(median "${s_rps[@]}") rk=$(median "${k_rps[@]}")
ps=$(median "${s_p99[@]}") pk=$(median "${k_p99[@]}")
st=$(median "${s_start[@]}")
echo "medians over $ROUNDS rounds (idle ${IDLE}s, $CONC clients for $LOAD, 1 MiB anchor):"
awk -v ms="$ms" -v mk="$mk" -v rs="$rs" -v rk="$rk" -v ps="$ps" -v pk="$pk" -v st="$st" 'BEGIN {
  printf "  idle RSS      ssid-anchor %.1f MiB, kubo %.1f MiB: ratio %.2f (target <= 0.80)\n", ms/1024, mk/1024, ms/mk
  printf "  start->healthz ssid-anchor %d ms (target <= 1000)\n", st
  printf "  gateway req/s ssid-anchor %.1f, kubo %.1f: ratio %.2f (target >= 1.00)\n", rs, rk, rs/rk
  printf "  gateway p99   ssid-anchor %.2f ms, kubo %.2f ms: ratio %.2f (target <= 1.00)\n", ps, pk, ps/pk
}'
