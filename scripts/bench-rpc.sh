#!/usr/bin/env bash
# Idle RSS of the daemon with kubo's RPC API on against the same daemon with
# it off (issue 24: on <= 1.05 x off), side by side on this machine:
# interleaved rounds (each starts with the next variant), medians and the
# ratio.
# Each daemon is a fresh process, started by a fresh `env -i bash -c exec`
# launcher (the PID measured is the daemon itself, with an environment of
# its own), on the same anchored repo, loopback only; VmRSS is read IDLE
# seconds after it is ready. "on, after calls" is the API-on daemon's RSS
# once the stock CLI has run id, pin ls and cat through it (information,
# not the target). BASE_BIN, when set, is a build without the RPC API code
# (e.g. main's) measured the same way, to show what linking it costs.
# Needs bin/ssid-anchor and bin/ipfs (make builds both).
#   ROUNDS=5 IDLE=30 BASE_BIN=/tmp/ssid-anchor-main scripts/bench-rpc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${BIN:-bin/ssid-anchor}")
IPFS=$(realpath "${IPFS:-bin/ipfs}")
BASE_BIN=${BASE_BIN:+$(realpath "$BASE_BIN")}
ROUNDS=${ROUNDS:-5}
IDLE=${IDLE:-30}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The content: one 1 MiB release bundle anchored in an air-gapped repo.
tree=$work/tree repo=$work/repo
for m in 01_ai_layer 05_documentation 24_meta_orchestration; do mkdir -p "$tree/$m"; done
mkdir -p "$tree/05_documentation/releases"
head -c 1048576 /dev/urandom >"$tree/05_documentation/releases/bench.zip"
"$BIN" --repo "$repo" init --profile air-gapped >/dev/null 2>&1
"$BIN" --root "$tree" event --event quarterly_release --version v1 --hash h >/dev/null 2>&1
cid=$("$BIN" --root "$tree" --repo "$repo" --json anchor 2>/dev/null |
  python3 -c 'import json,sys; print([r["ipfs_cid"] for r in json.load(sys.stdin)["anchored"] if r["file_path"].endswith("bench.zip")][0])')
# One config for every run of BIN: the RPC API off unless --rpc turns it on.
# BASE_BIN predates the rpc section and gets an empty one.
echo '{"rpc": {"listen": ""}}' >"$work/appliance.json"
echo '{}' >"$work/base.json"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# start CONFIG BIN [--rpc MULTIADDR]: a fresh launcher execs the daemon;
# sets DPID to its PID once the start-up anchor job is done.
start() {
  local cfg=$1 bin=$2
  shift 2
  : >"$work/d.log"
  env -i HOME="$work" PATH=/usr/bin:/bin bash -c 'exec "$@"' launcher \
    "$bin" --root "$tree" --repo "$repo" --config "$cfg" \
    daemon --http 127.0.0.1:0 --swarm /ip4/127.0.0.1/tcp/0 --anchor-debounce 1h "$@" \
    >"$work/d.log" 2>&1 &
  DPID=$!
  pids+=("$DPID")
  until grep -q 'msg="job done" job=anchor' "$work/d.log"; do
    kill -0 "$DPID" 2>/dev/null || { cat "$work/d.log" >&2; exit 1; }
    sleep 0.05
  done
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }

measure() { # name config bin [args]: appends the idle RSS to the array named name
  local -n out=$1
  start "${@:2}"
  sleep "$IDLE"
  out+=($(rss_kib "$DPID"))
  if [ "$1" = on ]; then
    [ -f "$repo/api" ] || { echo "RPC API on but no $repo/api" >&2; exit 1; }
    IPFS_PATH=$repo "$IPFS" id >/dev/null
    IPFS_PATH=$repo "$IPFS" pin ls --type recursive >/dev/null
    IPFS_PATH=$repo "$IPFS" cat "$cid" >/dev/null
    sleep 2
    on_calls+=($(rss_kib "$DPID"))
  elif [ -f "$repo/api" ]; then
    echo "RPC API off but $repo/api exists" >&2
    exit 1
  fi
  stop "$DPID"
}

declare -a on off base on_calls
variants=(on off)
[ -n "$BASE_BIN" ] && variants+=(base)
run_variant() {
  case $1 in
  on) measure on "$work/appliance.json" "$BIN" --rpc /ip4/127.0.0.1/tcp/0 ;;
  off) measure off "$work/appliance.json" "$BIN" ;;
  base) measure base "$work/base.json" "$BASE_BIN" ;;
  esac
}
for ((i = 1; i <= ROUNDS; i++)); do
  # Each round starts with the next variant, so none is always first.
  n=${#variants[@]}
  for ((k = 0; k < n; k++)); do
    run_variant "${variants[$(((i - 1 + k) % n))]}"
  done
  line="round $i: on ${on[-1]} KiB (after calls ${on_calls[-1]}), off ${off[-1]} KiB"
  [ -n "$BASE_BIN" ] && line+=", base ${base[-1]} KiB"
  echo "$line"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mon=$(median "${on[@]}") moff=$(median "${off[@]}") mcalls=$(median "${on_calls[@]}")
echo "medians over $ROUNDS rounds (idle ${IDLE}s after the start-up anchor job):"
awk -v on="$mon" -v off="$moff" -v calls="$mcalls" 'BEGIN {
  printf "  idle RSS  API on %.1f MiB, API off %.1f MiB: ratio %.3f (target <= 1.05)\n", on/1024, off/1024, on/off
  printf "  API on after id, pin ls, cat: %.1f MiB (%.3f x off)\n", calls/1024, calls/off
}'
if [ -n "$BASE_BIN" ]; then
  mbase=$(median "${base[@]}")
  awk -v off="$moff" -v base="$mbase" 'BEGIN {
    printf "  API off %.1f MiB against BASE_BIN (no RPC code) %.1f MiB: ratio %.3f\n", off/1024, base/1024, off/base
  }'
fi
