#!/bin/sh
# Quarterly release for CI systems other than GitHub Actions (which uses
# scripts/github/quarterly_release.yml). Runs the whole pipeline with one
# ssid-anchor binary (bundle -> anchor -> remote pin -> telemetry notice),
# checks the bundle's SHA-256 against the release outputs, verifies every
# anchor, and leaves the outputs and the pull request body in $RELEASE_OUT.
#
#   scripts/release.sh [YYYY-QN]     # default: the last quarter that ended (UTC)
#
# Environment:
#   SSID_ANCHOR_BIN   the binary (default: ssid-anchor on PATH)
#   SSID_ROOT         the governance tree (default: .)
#   SSID_ANCHOR_REPO  the IPFS repo (default ~/.ssid-anchor); keep it between
#                     runs (CI cache): verify needs the blocks of earlier runs
#   RELEASE_OUT       directory for outputs.env and pr_body.md (default: a new
#                     temporary directory); keep it outside the tree, or
#                     Root-24-LOCK sees an unexpected entry
#   SOURCE_DATE_EPOCH optional fixed timestamp for the zip entries
#
# Exit status: 0 released and verified; otherwise that of the failing step
# (1 failure, 2 bad config, 3 repo locked or missing).
set -eu

bin=${SSID_ANCHOR_BIN:-ssid-anchor}
root=${SSID_ROOT:-.}
out=${RELEASE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/ssid-release.XXXXXX")}
mkdir -p "$out"

if [ $# -gt 1 ]; then
	echo "usage: $0 [YYYY-QN]" >&2
	exit 2
fi

# init is idempotent: a cached repo is kept as it is.
"$bin" init --profile air-gapped >&2

: >"$out/outputs.env"
rc=0
if [ $# -eq 1 ]; then
	"$bin" --root "$root" release --quarter "$1" --github-output "$out/outputs.env" --markdown >"$out/pr_body.md" || rc=$?
else
	"$bin" --root "$root" release --github-output "$out/outputs.env" --markdown >"$out/pr_body.md" || rc=$?
fi
if [ "$rc" -ne 0 ]; then
	echo "release failed (exit $rc); outputs in $out" >&2
	exit "$rc"
fi

get() { sed -n "s/^$1=//p" "$out/outputs.env" | tail -n 1; }
bundle=$(get bundle)
want=$(get bundle_hash)
if command -v sha256sum >/dev/null 2>&1; then
	have=$(sha256sum "$root/$bundle" | cut -c1-64)
else
	have=$(shasum -a 256 "$root/$bundle" | cut -c1-64)
fi
if [ "$have" != "$want" ]; then
	echo "bundle $bundle: sha256 $have, but the release recorded $want" >&2
	exit 1
fi

"$bin" --root "$root" verify >&2

echo "released $(get quarter) ($(get version)): $bundle sha256 $want, ipfs $(get ipfs_cid)" >&2
echo "$out"
