#!/usr/bin/env bash
# Both consensus engines on the same scenario: a 4-operator devnet, operator 3 killed (SIGKILL)
# once the chain is at block 10, then the blocks the survivors commit in the next WINDOW seconds.
# Usage: scripts/compare-engines.sh [WINDOW=60] [BSS=target/release/bss]
set -euo pipefail
WINDOW=${1:-60}
BSS=${2:-target/release/bss}
height() {
  curl -s -X POST -H 'content-type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}' "http://127.0.0.1:$1" |
    python3 -c 'import json,sys; print(int(json.load(sys.stdin)["result"],16))' 2>/dev/null || echo 0
}
printf '| engine | blocks in %ss before the kill (4 up) | blocks in %ss after killing 1 of 4 |\n|---|---|---|\n' "$WINDOW" "$WINDOW"
for engine in native hotstuff-rs; do
  dir=$(mktemp -d)
  "$BSS" devnet --nodes 4 --engine "$engine" --data-dir "$dir" --base-port 28545 --btc-port 28443 \
    --btc-block-interval 2s >"$dir/devnet.out" 2>&1 &
  devnet=$!
  for _ in $(seq 1 600); do [ "$(height 28545)" -ge 10 ] && break; sleep 0.1; done
  a=$(height 28545); sleep "$WINDOW"; b=$(height 28545)
  pkill -9 -f "$dir/node3.toml" || true
  c=$(height 28545); sleep "$WINDOW"; d=$(height 28545)
  printf '| %s | %s | %s |\n' "$engine" "$((b - a))" "$((d - c))"
  kill -INT "$devnet"; wait "$devnet" || true
  rm -rf "$dir"
done
