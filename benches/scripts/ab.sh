#!/usr/bin/env bash
# Two builds of Parley side by side, in one run: the same 1:1 load and the
# same group fan-out against each, in alternating order, so their figures compare
# (on these machines figures move from run to run; quote ratios).
#
#   benches/scripts/ab.sh BEFORE_BIN_DIR AFTER_BIN_DIR [rounds]
#
# Each directory holds release builds of `parley`, `parley-loadgen` and
# `parley-group-bench` (e.g. a `target/release` of each commit). Per round
# and build: `parley up` on a free loopback port with a fresh data dir,
# `parley-loadgen` at RATE (env, default 4,000) msg/s with 1,000 clients (0: flat out), then
# `parley-group-bench` (1,000 members, 200 messages, its own server).
set -euo pipefail
A="${1:?before bin dir}"; B="${2:?after bin dir}"; ROUNDS="${3:-2}"
. "$(dirname "$0")/common.sh"
one() { # label bin_dir
    local label="$1" bin="$2" dir port pid
    dir="$(mktemp -d)"; port=$(free_port)
    up "$bin" "$dir/d" "$port" "$dir/server.log"
    echo "[$label] 1:1: $("$bin/parley-loadgen" --url "http://127.0.0.1:$port" \
        --pairs 500 --rate "${RATE:-4000}" --duration 15 --warmup 3 2>/dev/null)"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    echo "[$label] group: $("$bin/parley-group-bench" --members 1000 --messages 200 2>/dev/null | tr '\n' ' ')"
}
# Order alternates (ABBA...): a run leaves dirty pages and warm caches
# behind, which favour or burden whichever build runs next.
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round"
    if [ $((round % 2)) -eq 1 ]; then
        one before "$A"; one after "$B"
    else
        one after "$B"; one before "$A"
    fi
done
