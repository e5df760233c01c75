#!/usr/bin/env bash
# A 10× spike through `parley up`: 30 s at LOW msg/s, 60 s at HIGH, 60 s
# back at LOW (1,000 clients, fresh data dir), with the server's RSS
# sampled every second. Writes OUT_DIR/spike.json (the loadgen summary and
# per-second timeline), OUT_DIR/rss.txt and OUT_DIR/spike.svg, and prints
# the summary, the RSS peak, and how long after the spike p99 took to get
# back under 20 ms.
#
#   benches/scripts/spike.sh BIN_DIR LOW HIGH OUT_DIR
set -euo pipefail
BIN="${1:?bin dir}"; LOW="${2:?low rate}"; HIGH="${3:?high rate}"; OUT="${4:?out dir}"
mkdir -p "$OUT"
. "$(dirname "$0")/common.sh"
dir="$(mktemp -d)"; port=$(free_port); url="http://127.0.0.1:$port"
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
up "$BIN" "$dir/d" "$port" "$dir/server.log"
( while kill -0 "$pid" 2>/dev/null; do
      echo "$(date +%s) $(ps -o rss= -p "$pid")"; sleep 1
  done ) >"$OUT/rss.txt" &
"$BIN/parley-loadgen" --url "$url" --pairs 500 --warmup 5 --json \
    --profile "30@$LOW,60@$HIGH,60@$LOW" >"$OUT/spike.json"
"$BIN/parley-plot" "$OUT/spike.svg" "parley up, $LOW→$HIGH→$LOW msg/s=$OUT/spike.json"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
s = json.load(open(f"{out}/spike.json"))
rss = [int(l.split()[1]) for l in open(f"{out}/rss.txt") if len(l.split()) == 2]
print(f"delivered {s['delivered_per_s']:.0f} msg/s on average; p50 {s['latency_ms']['p50']} ms, "
      f"p99 {s['latency_ms']['p99']} ms, max {s['latency_ms']['max']} ms; errors {s['errors']}; "
      f"lost {s['lost']} of {s['acked']} acked; duplicates {s['duplicates']}")
print(f"server RSS: start {rss[0]/1024:.0f} MiB, peak {max(rss)/1024:.0f} MiB, end {rss[-1]/1024:.0f} MiB")
after = [t for t in s["timeline"] if t["second"] > 90]
back = next((t["second"] - 90 for t in after if t["p99_ms"] < 20), None)
worst = max(t["p99_ms"] for t in s["timeline"])
print(f"worst second's p99 {worst} ms; p99 under 20 ms again {back} s after the spike" if back is not None
      else f"worst second's p99 {worst} ms; p99 never got back under 20 ms")
PY
