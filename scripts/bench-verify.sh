#!/usr/bin/env bash
# Verification benchmarks (make bench). Prints figures and ratios; asserts
# nothing. Everything lives in a temp dir that is removed at exit.
#
#  1. local verify of a 1 GiB anchor  vs  openssl dgst -sha256 of the file
#     plus one read of the repo's blocks (cat blocks/*/* > /dev/null): two
#     passes over the data is the floor; target <= 1.5x.
#  2. verify of 1000 small anchors: wall time; target <= 1 s.
#  3. verify --car of the 1 GiB anchor's CAR (no repo), with the tree and
#     without it, vs the same floor; target <= 1.5x.
#
# Caches are warm for every measurement (each is the best of RUNS runs), so
# the figures compare CPU and memory bandwidth, not the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin/ssid-anchor}
SIZE_MIB=${SIZE_MIB:-1024}
SMALL=${SMALL:-1000}
RUNS=${RUNS:-3}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/ssid-anchor

T=$(mktemp -d "${TMPDIR:-/tmp}/ssid-bench-verify.XXXXXX")
trap 'rm -rf "$T"' EXIT

# calc EXPR prints a floating-point result; calc_true EXPR tests one (awk is
# on every machine, bc is not).
calc() { awk "BEGIN { print $1 }"; }
calc_true() { awk "BEGIN { exit !($1) }"; }

# best CMD...: runs it RUNS times (output discarded) and sets WALL and CPU
# (user+sys) of the run with the lowest wall time.
best() {
  local b="" c="" t w u s
  for _ in $(seq "$RUNS"); do
    t=$( { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null 2>&1; } 2>&1 | tail -1)
    read -r w u s <<<"$t"
    if [ -z "$b" ] || calc_true "$w < $b"; then b=$w; c=$(calc "$u + $s"); fi
  done
  WALL=$b CPU=$c
}

# tree DIR: a governance tree whose rule anchors data/*.bin on any event
tree() {
  local r=$1
  mkdir -p "$r/data" "$r/24_meta_orchestration/registry/logs"
  cat > "$r/appliance.json" <<'EOF'
{"anchor": {"rules": [{"match": ["*"], "globs": ["data/*.bin"]}]}}
EOF
  "$BIN" --root "$r" --repo "$r/repo" --config "$r/appliance.json" init >/dev/null 2>&1
  "$BIN" --root "$r" --repo "$r/repo" --config "$r/appliance.json" event --event bench_anchor --version v1 --hash 0 >/dev/null 2>&1
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo "== 1. local verify of a ${SIZE_MIB} MiB anchor"
R=$T/big
tree "$R"
head -c "$((SIZE_MIB << 20))" /dev/urandom > "$R/data/big.bin"
"$BIN" --root "$R" --repo "$R/repo" --config "$R/appliance.json" anchor >/dev/null 2>&1
"$BIN" --root "$R" --repo "$R/repo" --config "$R/appliance.json" verify >/dev/null 2>&1 || {
  echo "verify failed on the fresh anchor" >&2; exit 1; }
# openssl uses SHA-NI like Go; sha256sum is the fallback where it is missing.
if command -v openssl >/dev/null; then SHA="openssl dgst -sha256"; else SHA=sha256sum; fi
best $SHA "$R/data/big.bin"; t_sha=$WALL c_sha=$CPU
best sh -c "cat '$R'/repo/blocks/*/* > /dev/null"; t_cat=$WALL c_cat=$CPU
floor=$(calc "$t_sha + $t_cat"); cfloor=$(calc "$c_sha + $c_cat")
best "$BIN" --root "$R" --repo "$R/repo" --config "$R/appliance.json" verify; t_ver=$WALL c_ver=$CPU
printf '%-30s %8s %8s\n' "" "wall s" "cpu s"
printf '%-30s %8.3f %8.3f\n' "$SHA file" "$t_sha" "$c_sha"
printf '%-30s %8.3f %8.3f\n' "cat repo blocks" "$t_cat" "$c_cat"
printf '%-30s %8.3f %8.3f\n' "floor (sum)" "$floor" "$cfloor"
printf '%-30s %8.3f %8.3f   wall ratio %.2fx (target <= 1.50x), cpu ratio %.2fx\n' "ssid-anchor verify" "$t_ver" "$c_ver" \
  "$(calc "$t_ver / $floor")" "$(calc "$c_ver / $cfloor")"

echo "== 3. verify --car of the ${SIZE_MIB} MiB anchor (no repo)"
"$BIN" --root "$R" --repo "$R/repo" --config "$R/appliance.json" export --car "$T/out" >/dev/null 2>&1
man=$T/out/ipfs_anchor_manifest.json
cars=$(ls "$T"/out/*.car)
# shellcheck disable=SC2086
"$BIN" --repo "$T/none" verify --manifest "$man" --car $cars >/dev/null 2>&1 || {
  echo "verify --car failed" >&2; exit 1; }
# shellcheck disable=SC2086
best "$BIN" --root "$R" --repo "$T/none" --config "$R/appliance.json" verify --manifest "$man" --car $cars; t_ct=$WALL c_ct=$CPU
# shellcheck disable=SC2086
best "$BIN" --repo "$T/none" verify --manifest "$man" --car $cars; t_co=$WALL c_co=$CPU
printf '%-30s %8.3f %8.3f   wall ratio %.2fx (target <= 1.50x), cpu ratio %.2fx\n' "verify --car, tree present" "$t_ct" "$c_ct" \
  "$(calc "$t_ct / $floor")" "$(calc "$c_ct / $cfloor")"
printf '%-30s %8.3f %8.3f   wall ratio %.2fx (target <= 1.50x), cpu ratio %.2fx\n' "verify --car, CARs only" "$t_co" "$c_co" \
  "$(calc "$t_co / $floor")" "$(calc "$c_co / $cfloor")"
rm -rf "$R" "$T/out"

echo "== 2. verify of ${SMALL} small anchors"
S=$T/small
tree "$S"
for i in $(seq -w 1 "$SMALL"); do
  head -c $((1024 + RANDOM % 7168)) /dev/urandom > "$S/data/s$i.bin"
done
"$BIN" --root "$S" --repo "$S/repo" --config "$S/appliance.json" anchor >/dev/null 2>&1
n=$("$BIN" --json --root "$S" --repo "$S/repo" --config "$S/appliance.json" verify | grep -c '"file_path"')
best "$BIN" --root "$S" --repo "$S/repo" --config "$S/appliance.json" verify
printf 'verify of %d records: wall %.3f s, cpu %.3f s (target <= 1 s wall; process start and repo open included)\n' "$n" "$WALL" "$CPU"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (other work on the machine inflates wall times)"
