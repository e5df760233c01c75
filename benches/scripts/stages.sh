#!/usr/bin/env bash
# Where the time goes, per stage, at each given 1:1 rate: `parley up` on a
# free loopback port with a fresh data dir, `parley-loadgen` (1,000
# clients) at the rate, and `parley-stages` reading the server's
# /metrics over the middle of the run.
#
#   benches/scripts/stages.sh BIN_DIR RATE [RATE ...]
set -euo pipefail
BIN="${1:?bin dir with parley, parley-loadgen, parley-stages}"; shift
. "$(dirname "$0")/common.sh"
for rate in "$@"; do
    dir="$(mktemp -d)"; port=$(free_port); url="http://127.0.0.1:$port"
    up "$BIN" "$dir/d" "$port" "$dir/server.log"
    "$BIN/parley-loadgen" --url "$url" --pairs 500 --rate "$rate" --duration 20 --warmup 5 \
        >"$dir/loadgen.txt" 2>"$dir/loadgen.err" &
    lg=$!
    # Set-up (1,000 sign-ups) and the warm-up first; then 10 s of the run.
    until grep -q "sockets open" "$dir/loadgen.err" || ! kill -0 "$lg" 2>/dev/null; do sleep 0.2; done
    sleep 8
    echo "== $rate msg/s"
    "$BIN/parley-stages" --url "$url" --seconds 10
    wait "$lg" || true
    echo "loadgen: $(tail -1 "$dir/loadgen.txt")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
done
