#!/usr/bin/env bash
# Throughput of Parley on Redis, all roles in one process against every role
# as its own process (2 edges, 2 processors, 2 delivery nodes), on the same
# machine: equal total cores. One private redis-server (log db 0, state
# db 1, no persistence: Redis is not what is measured), then the load
# generator flat out, then everything is stopped.
#
#   benches/scripts/cluster.sh up|cluster [loadgen args...]
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/../.."
MODE="${1:?up or cluster}"; shift
BIN=target/release/parley
LOADGEN=target/release/parley-loadgen
cargo build --release -q -p parley -p parley-benches

DIR="$(mktemp -d)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DIR" --save "" --appendonly no >/dev/null &
pids+=($!)
until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.1; done
export PARLEY__JWT_SECRET=bench-secret-bench-secret-bench-secret
export PARLEY__PARTITIONS=4
COMMON=(--log "redis://127.0.0.1:$PORT/0" --state "redis://127.0.0.1:$PORT/1" --data-dir "$DIR")
start() { # role node -> prints the URL
    local p; p=$(free_port)
    "$BIN" "$1" --node-id "$2" --listen "127.0.0.1:$p" "${COMMON[@]}" >"$DIR/$1-$2.log" 2>&1 &
    pids+=($!)
    until curl -fs "http://127.0.0.1:$p/readyz" >/dev/null 2>&1; do sleep 0.1; done
    echo "http://127.0.0.1:$p"
}
"$BIN" migrate "${COMMON[@]}" >/dev/null 2>&1
case "$MODE" in
    up) URLS=$(start up 1) ;;
    cluster)
        E1=$(start ingest 1); E2=$(start ingest 2)
        start process 11 >/dev/null; start process 12 >/dev/null
        start deliver 21 >/dev/null; start deliver 22 >/dev/null
        sleep 10 # leases settle: each node takes its share
        URLS="$E1,$E2" ;;
    *) echo "mode is up or cluster" >&2; exit 2 ;;
esac
"$LOADGEN" --url "$URLS" "$@"
