#!/usr/bin/env bash
# Parley and ejabberd side by side in one run, with the same client
# (`parley-loadgen`, which speaks both protocols) and the same 1:1 load:
# USERS clients in fixed pairs, open loop, latency from when each send was
# due. Per rate and server: a fresh server (`parley up` with a fresh data
# dir; the private ejabberd of ../shared/peers/ejabberd, fresh spool,
# users registered), a warm-up, DURATION measured seconds, a drain.
# Prints a table with each server's delivered rate, p50, p99, lost and CPU,
# and Parley's p99 over ejabberd's.
#
#   benches/scripts/vs-ejabberd.sh BIN_DIR RATE [RATE ...]
#   env: USERS=1000 DURATION=20 WARMUP=5
#        MAM=1 (ejabberd archives every message in Mnesia, its default
#        config; MAM=0: routing only, nothing stored)
#        KEEP=DIR keeps each run's `--json` summary (parley-RATE.json,
#        ejabberd-RATE.json) and plots both servers' throughput/latency
#        curves into DIR/curve.svg
set -euo pipefail
BIN="${1:?bin dir with parley and parley-loadgen}"; shift
HERE=$(cd "$(dirname "$0")" && pwd)
PEER="$HERE/../../../shared/peers/ejabberd"
USERS=${USERS:-1000}; DURATION=${DURATION:-20}; WARMUP=${WARMUP:-5}; MAM=${MAM:-1}
PAIRS=$((USERS / 2))
[ -x "$PEER/start.sh" ] || { echo "no ejabberd harness at $PEER" >&2; exit 1; }
dpkg -s ejabberd >/dev/null 2>&1 || "$PEER/setup.sh"
. "$(dirname "$0")/common.sh"
# CPU seconds (user + system) a process has used.
cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
out=$(mktemp -d)
trap '"$PEER/stop.sh" >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
cfg="$PEER/ejabberd.yml"
if [ "$MAM" = 0 ]; then
    cfg="$out/ejabberd.yml"
    sed -e '/^  mod_mam:/,/^    db_type: mnesia/d' "$PEER/ejabberd.yml" >"$cfg"
fi
lg=(--pairs "$PAIRS" --duration "$DURATION" --warmup "$WARMUP" --json --drain 10)

# One run: the name to keep it under, the server pid, then loadgen args;
# prints "delivered p50 p99 lost cpu%".
measure() {
    local name="$1" pid="$2"; shift 2
    local c0; c0=$(cpu "$pid")
    local t0; t0=$(date +%s.%N)
    "$BIN/parley-loadgen" "${lg[@]}" "$@" >"$out/run.json" 2>"$out/run.err"
    local c1; c1=$(cpu "$pid"); local t1; t1=$(date +%s.%N)
    python3 - "$out/run.json" "$c0" "$c1" "$t0" "$t1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c0, c1, t0, t1 = map(float, sys.argv[2:6])
cpu = 100 * (c1 - c0) / (t1 - t0)
print(f"{s['delivered_per_s']:.0f} {s['latency_ms']['p50']:.2f} {s['latency_ms']['p99']:.2f} {s['lost']} {cpu:.0f}")
PY
    if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$out/run.json" "$KEEP/$name.json"; fi
}

printf '%-8s | %-44s | %-44s | %s\n' rate "parley up (durable): msg/s p50 p99 lost cpu%" \
    "ejabberd (mod_mam $MAM): msg/s p50 p99 lost cpu%" "p99 ratio"
for rate in "$@"; do
    dir=$(mktemp -d); port=$(free_port)
    up "$BIN" "$dir/d" "$port" "$dir/server.log"
    p=$(measure "parley-$rate" "$pid" --url "http://127.0.0.1:$port" --rate "$rate")
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dir"

    run=$(EJB_CONFIG="$cfg" "$PEER/start.sh")
    "$PEER/register.sh" "$USERS" >/dev/null
    e=$(measure "ejabberd-$rate" "$(cat "$run/beam.pid")" --xmpp 127.0.0.1:5222 --rate "$rate")
    "$PEER/stop.sh" >/dev/null 2>&1 || true

    ratio=$(python3 -c "print(f'{float(\"$p\".split()[2]) / max(float(\"$e\".split()[2]), 0.001):.2f}')")
    printf '%-8s | %-44s | %-44s | %s\n' "$rate" "$p" "$e" "$ratio"
done
if [ -n "${KEEP:-}" ]; then
    label="ejabberd (mod_mam)"; [ "$MAM" = 0 ] && label="ejabberd (routing only)"
    runs=()
    for rate in "$@"; do
        runs+=("parley up (durable)=$KEEP/parley-$rate.json" "$label=$KEEP/ejabberd-$rate.json")
    done
    "$BIN/parley-plot" curve "$KEEP/curve.svg" "${runs[@]}"
fi
