#!/usr/bin/env bash
# measure-tree.sh TREE ROUNDS BIN... : anchoring a many-file tree end to end
# with each ssid-anchor BIN (fresh air-gapped repo, one registry event that
# selects every file through TREE/appliance.json's ** rules) interleaved with
# stock `ipfs add --offline -Q -r TREE/tree` (fresh repo, kubo's default
# profile), `sync` before each command. Prints wall, user and sys seconds per
# run and the medians with ratios to stock. TREE comes from gen-tree.py.
#
# Every run gets its own repo directory and nothing is deleted until the
# end: ext4 skips inodes freed in the last 60-360 s when it allocates new
# ones, so removing a 20,000-file repo just before a run made file creation
# (flatfs writes one file per block) a third of that run's CPU, whichever
# tool ran next. Leave a few minutes between two invocations for the same
# reason.
set -euo pipefail
R=$(cd "$1" && pwd); N=$2; shift 2
IPFS=${SSID_IPFS_BIN:-ipfs}
W=$(mktemp -d "${TMPDIR:-/tmp}/measure-tree.XXXXXX")
trap 'rm -rf "$W"' EXIT
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
declare -A all
for i in $(seq "$N"); do
  for B in "$@"; do
    name=$(basename "$B")
    repo=$W/$i-$name
    rm -rf "$R/24_meta_orchestration"
    "$B" --root "$R" --repo "$repo" --config "$R/appliance.json" init >/dev/null 2>&1
    "$B" --root "$R" --repo "$repo" --config "$R/appliance.json" event --event bench_anchor --version v1 --hash 0 >/dev/null 2>&1
    sync
    t=$( { TIMEFORMAT='%R %U %S'; time "$B" --root "$R" --repo "$repo" --config "$R/appliance.json" anchor >"$W/out" 2>&1; } 2>&1 | tail -1)
    grep -q ' 0 failed' "$W/out" || { cat "$W/out" >&2; exit 1; }
    echo "round $i $name $t"
    all[$name]+="${t%% *} "
  done
  repo=$W/$i-ipfs
  IPFS_PATH=$repo "$IPFS" init -e >/dev/null 2>&1
  sync
  t=$( { TIMEFORMAT='%R %U %S'; time IPFS_PATH=$repo "$IPFS" add --offline -Q -r "$R/tree" >"$W/out" 2>&1; } 2>&1 | tail -1)
  echo "round $i ipfs-add-r $t"
  all[ipfs-add-r]+="${t%% *} "
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
base=$(echo "${all[ipfs-add-r]}" | median)
for k in "${!all[@]}"; do
  m=$(echo "${all[$k]}" | median)
  printf '%-20s median %7.3f s   %.2fx stock ipfs add -r\n' "$k" "$m" "$(awk "BEGIN{print $m/$base}")"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
