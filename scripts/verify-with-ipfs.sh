#!/usr/bin/env bash
# verify-with-ipfs.sh MANIFEST [ROOT]
#
# Re-derives every record of an ssid-anchor manifest with stock tools only,
# for an auditor who does not run ssid-anchor: the file at ROOT/file_path
# (ROOT defaults to .) must hash to file_hash with sha256sum, and stock kubo
# `ipfs add -Q --only-hash` with the record's CID profile must give
# ipfs_cid. Needs ipfs (kubo), jq and sha256sum on PATH; no daemon, no
# network, no repo of the auditor's: each CID profile gets a throwaway repo
# that kubo itself initialises with that profile, so the import settings are
# kubo's own definition of the profile.
#
# A record whose path has a newer record is history: when the file has
# moved on, it is reported and skipped (ssid-anchor verify checks such
# content from the IPFS blocks instead).
#
# Exit: 0 every record matches; 1 at the first mismatch or missing file,
# named; 2 bad arguments, a missing tool or an unreadable manifest.
set -euo pipefail

die() { echo "verify-with-ipfs: $*" >&2; exit 2; }
fail() { echo "MISMATCH $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: verify-with-ipfs.sh MANIFEST [ROOT]"
manifest=$1
root=${2:-.}

for tool in ipfs jq sha256sum realpath; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH (jq: apt-get install jq; ipfs: the kubo CLI)"
done
[ -f "$manifest" ] || die "manifest $manifest not found"
[ -d "$root" ] || die "root $root is not a directory"
rootreal=$(realpath -- "$root")

jq -e 'type == "object" and (.anchors | type == "array")' "$manifest" >/dev/null 2>&1 ||
	die "$manifest is not an anchor manifest (no \"anchors\" list)"
bad=$(jq -r '.anchors | to_entries[]
	| select((.value.file_path | type) != "string" or (.value.file_hash | type) != "string" or (.value.ipfs_cid | type) != "string"
		or (.value.file_path | (explode | any(. < 32)) or startswith("/") or (split("/") | index("..") != null)))
	| "record \(.key + 1)"' "$manifest" | head -n 1)
[ -z "$bad" ] || die "$manifest: $bad has no usable file_path, file_hash or ipfs_cid (or a path leaving the root)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# repo PROFILE sets $repo to a throwaway IPFS repo initialised with PROFILE.
repo=
repo() {
	local profiles
	case $1 in
	kubo-default) profiles=test ;;
	unixfs-v1-2025) profiles=test,unixfs-v1-2025 ;;
	*) return 1 ;;
	esac
	repo=$tmp/$1
	if [ ! -d "$repo" ]; then
		IPFS_PATH=$repo ipfs init --empty-repo --profile "$profiles" >"$tmp/init.log" 2>&1 ||
			die "ipfs init --profile $profiles failed: $(cat "$tmp/init.log")"
	fi
}

count=0
checked=0
history=0
while IFS= read -r line; do
	eval "set -- $line" # jq's @sh quoted every field
	idx=$1 path=$2 hash=$3 want=$4 profile=$5 latest=$6
	n=$((idx + 1))
	count=$((count + 1))
	if [ -z "$profile" ]; then
		# Records from before cid_profile existed: a CIDv0 can only come
		# from the default import, a CIDv1 from unixfs-v1-2025.
		case $want in
		Qm*) profile=kubo-default ;;
		*) profile=unixfs-v1-2025 ;;
		esac
	fi
	repo "$profile" || fail "record $n ($path): unknown cid_profile \"$profile\""
	file=$root/$path
	if [ ! -f "$file" ]; then
		if [ "$latest" != "$idx" ]; then
			echo "history  $n  $path: gone; record $((latest + 1)) is the newer content of this path"
			history=$((history + 1))
			continue
		fi
		fail "record $n: $path is missing under $root"
	fi
	case $(realpath -- "$file") in
	"$rootreal"/*) ;;
	*) fail "record $n: $path resolves outside $root" ;;
	esac
	sum=$(sha256sum <"$file" | cut -d' ' -f1)
	if [ "$sum" != "$hash" ]; then
		if [ "$latest" != "$idx" ]; then
			echo "history  $n  $path: changed since; record $((latest + 1)) covers its current content"
			history=$((history + 1))
			continue
		fi
		fail "record $n: $path: sha256sum gives $sum, the record says $hash"
	fi
	# From stdin: only the content counts, as in the manifest (no name,
	# and a symlink is read through, never added as a link).
	got=$(IPFS_PATH=$repo ipfs add --offline -Q --only-hash <"$file") ||
		fail "record $n: $path: ipfs add failed"
	if [ "$got" != "$want" ]; then
		fail "record $n: $path: ipfs add -Q --only-hash ($profile) gives $got, the record says $want"
	fi
	checked=$((checked + 1))
	echo "ok       $n  $want  $path  ($profile, sha256 $sum)"
done < <(jq -r '.anchors as $a
	| ($a | to_entries | map({key: .value.file_path, value: .key}) | from_entries) as $latest
	| $a | to_entries[]
	| [.key, .value.file_path, .value.file_hash, .value.ipfs_cid, (.value.cid_profile // ""), $latest[.value.file_path]]
	| @sh' "$manifest")

echo "all match: $checked of $count records re-derived with stock ipfs and sha256sum, $history history record(s) skipped"
