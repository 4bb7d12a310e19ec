#!/bin/bash
# A folder job's points while its secondary is away, for a big file changed a little each time:
# time and bytes put in the local cache per point. Not part of CI.
#
#   npm run build:node && bench/cache-folder.sh [REPO_DIR] [LABEL]
#
# REPO_DIR (default: this checkout) lets a build of another commit run the same steps (a git
# worktree of it, built) for a before/after comparison.
set -euo pipefail
REPO=${1:-$(cd "$(dirname "$0")/.." && pwd)}
LABEL=${2:-$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo build)}
W=$(mktemp -d /tmp/tidemark-cache-folder-XXXX)
trap 'rm -rf "$W"' EXIT
export TIDEMARK_DATA_DIR=$W/data
T="node $REPO/bin/tidemark.js"
mkdir -p "$W/tree"
head -c $((512 << 20)) /dev/urandom >"$W/tree/vm.img"
$T init "$W/tree" "$W/arch" >/dev/null
$T snapshot "$W/arch" --cache-dir "$W/cache" >/dev/null
mv "$W/arch" "$W/arch.away"
for k in 1 2 3; do
  head -c 5000 /dev/urandom | dd of="$W/tree/vm.img" bs=5000 seek=$((k * 10000)) conv=notrunc status=none
  start=$(date +%s%N)
  out=$($T snapshot "$W/arch" --json)
  end=$(date +%s%N)
  echo "$out" | node -e '
    let s = "";
    process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const j = JSON.parse(s);
      const [label, k, ns] = process.argv.slice(1);
      console.log(`${label} cached point ${k}: ${(ns / 1e9).toFixed(2)} s, ${j.state.storedBytes} bytes stored (${j.location})`);
    });' "$LABEL" "$k" $((end - start))
done
