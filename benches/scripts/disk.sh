#!/usr/bin/env bash
# Disk use under a steady load: `parley up` (fresh data dir, MODE
# retention, records kept LOG_HOURS after every consumer passed them,
# 4 MiB log segments, a retention pass every 10 s), 1,000 clients at RATE
# msg/s for SECS seconds. The log, state and history sizes are sampled
# every 10 s into OUT_DIR/disk.txt and plotted in OUT_DIR/disk.svg; the
# loadgen summary goes to OUT_DIR/load.json. Prints each store's size at
# the end of the first retention period, at the end, and its peak.
#
#   benches/scripts/disk.sh BIN_DIR RATE SECS LOG_HOURS MODE OUT_DIR
set -euo pipefail
BIN="${1:?bin dir}"; RATE="${2:?rate}"; SECS="${3:?seconds}"
HOURS="${4:?log hours}"; MODE="${5:?history|until_delivered}"; OUT="${6:?out dir}"
mkdir -p "$OUT"
. "$(dirname "$0")/common.sh"
export PARLEY__RETENTION__MODE="$MODE" PARLEY__RETENTION__LOG_HOURS="$HOURS"
export PARLEY__RETENTION__LOG_EVERY_MS=10000 PARLEY__LOG_SEGMENT_BYTES=$((4 << 20))
dir="$(mktemp -d -p "${PARLEY_BENCH_DIR:-.}")"; port=$(free_port); url="http://127.0.0.1:$port"
trap 'kill $pid $sampler 2>/dev/null || true; rm -rf "$dir"' EXIT
up "$BIN" "$dir/d" "$port" "$dir/server.log"
start=$(date +%s)
( while kill -0 "$pid" 2>/dev/null; do
      echo "$(( $(date +%s) - start )) log=$(du -sb "$dir/d/log" | cut -f1)" \
           "state=$(du -sb "$dir/d/state.redb" | cut -f1)" \
           "history=$(du -sb "$dir/d/history.redb" | cut -f1)"
      sleep 10
  done ) >"$OUT/disk.txt" &
sampler=$!
"$BIN/parley-loadgen" --url "$url" --pairs 500 --warmup 5 --json \
    --profile "$SECS@$RATE" >"$OUT/load.json"
kill $sampler 2>/dev/null || true
"$BIN/parley-plot" disk "$OUT/disk.svg" "$OUT/disk.txt"
python3 - "$OUT" "$HOURS" <<'PY'
import json, sys
out, hours = sys.argv[1], float(sys.argv[2])
s = json.load(open(f"{out}/load.json"))
print(f"delivered {s['delivered_per_s']:.0f} msg/s on average; p99 {s['latency_ms']['p99']} ms; "
      f"lost {s['lost']} of {s['acked']} acked")
rows = []
for line in open(f"{out}/disk.txt"):
    w = line.split()
    if len(w) == 4:
        rows.append((int(w[0]), {k: int(v) for k, v in (x.split("=") for x in w[1:])}))
period = hours * 3600 + 60
first = next((r for r in rows if r[0] >= period), rows[-1])
for name in ("log", "state", "history"):
    peak = max(r[1][name] for r in rows)
    print(f"{name}: {first[1][name] / 2**20:.0f} MiB at {first[0]} s (one retention period + a minute), "
          f"{rows[-1][1][name] / 2**20:.0f} MiB at the end ({rows[-1][0]} s), peak {peak / 2**20:.0f} MiB")
PY
