#!/usr/bin/env bash
# 1:1 over MQTT side by side with the same load over WebSocket, and with
# Debian's mosquitto relaying the same pairs (the peer: QoS 1, nothing
# stored, no persistence), in one run with one client (`parley-loadgen`).
# Per rate and target: a fresh server, a warm-up, DURATION measured
# seconds, a drain. Prints msg/s delivered, p50, p99, lost and server CPU.
#
#   benches/scripts/mqtt.sh BIN_DIR RATE [RATE ...]
#   env: USERS=1000 DURATION=20 WARMUP=5
set -euo pipefail
BIN="${1:?bin dir with parley and parley-loadgen}"; shift
USERS=${USERS:-1000}; DURATION=${DURATION:-20}; WARMUP=${WARMUP:-5}
PAIRS=$((USERS / 2))
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] ||
    { apt-get install -y -qq mosquitto >/dev/null; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
. "$(dirname "$0")/common.sh"
cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
lg=(--pairs "$PAIRS" --duration "$DURATION" --warmup "$WARMUP" --json --drain 10)

# One run against the server $pid: loadgen args; prints "msg/s p50 p99 lost cpu%".
measure() {
    local pid="$1"; shift
    local c0; c0=$(cpu "$pid"); local t0; t0=$(date +%s.%N)
    "$BIN/parley-loadgen" "${lg[@]}" "$@" >"$out/run.json" 2>"$out/run.err" ||
        { tail -5 "$out/run.err" >&2; return 1; }
    local c1; c1=$(cpu "$pid"); local t1; t1=$(date +%s.%N)
    python3 - "$out/run.json" "$c0" "$c1" "$t0" "$t1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c0, c1, t0, t1 = map(float, sys.argv[2:6])
print(f"{s['delivered_per_s']:.0f} {s['latency_ms']['p50']:.2f} {s['latency_ms']['p99']:.2f} {s['lost']} {100 * (c1 - c0) / (t1 - t0):.0f}")
PY
}

# parley up with an MQTT listener on $mport too.
up_mqtt() {
    "$BIN/parley" up --data-dir "$1" --listen "127.0.0.1:$2" --mqtt-listen "127.0.0.1:$3" >"$4" 2>&1 &
    pid=$!
    until curl -fs "http://127.0.0.1:$2/readyz" >/dev/null 2>&1; do sleep 0.2; done
}

printf '%-7s | %-34s | %-34s | %-34s\n' rate "parley WebSocket: msg/s p50 p99 lost cpu%" \
    "parley MQTT" "mosquitto (relay only)"
for rate in "$@"; do
    dir=$(mktemp -d); port=$(free_port); mport=$(free_port)
    up_mqtt "$dir/d" "$port" "$mport" "$dir/server.log"
    ws=$(measure "$pid" --url "http://127.0.0.1:$port" --rate "$rate")
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dir"

    dir=$(mktemp -d); port=$(free_port); mport=$(free_port)
    up_mqtt "$dir/d" "$port" "$mport" "$dir/server.log"
    mq=$(measure "$pid" --url "http://127.0.0.1:$port" --mqtt "127.0.0.1:$mport" --rate "$rate")
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dir"

    bport=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n' \
        "$bport" >"$out/mosquitto.conf"
    "$MOSQUITTO" -c "$out/mosquitto.conf" >"$out/mosquitto.log" 2>&1 &
    bpid=$!
    until python3 -c "import socket; socket.create_connection(('127.0.0.1', $bport))" 2>/dev/null; do sleep 0.1; done
    br=$(measure "$bpid" --mqtt-broker "127.0.0.1:$bport" --rate "$rate")
    kill "$bpid"; wait "$bpid" 2>/dev/null || true

    printf '%-7s | %-34s | %-34s | %-34s\n' "$rate" "$ws" "$mq" "$br"
done
