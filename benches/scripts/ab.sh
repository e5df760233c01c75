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
export PARLEY__ARGON2_MEMORY_KIB=1024 PARLEY_LOG=warn
# The load generators speak for each user at machine speed: per-user rates
# out of the way, every other limit as shipped.
export PARLEY__LIMITS__SENDS_PER_SEC=1000000 PARLEY__LIMITS__SENDS_BURST=1000000
export PARLEY__LIMITS__RECEIPTS_PER_SEC=1000000 PARLEY__LIMITS__RECEIPTS_BURST=1000000
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
one() { # label bin_dir
    local label="$1" bin="$2" dir port pid
    dir="$(mktemp -d)"; port=$(free_port)
    "$bin/parley" up --data-dir "$dir/d" --listen "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
    pid=$!
    until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.2; done
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
