#!/usr/bin/env bash
# Where the server's CPU goes at a 1:1 rate: `parley up` (fresh data dir,
# free loopback port), `parley-loadgen` (1,000 clients) at RATE, and
# `perf record` on the server for 10 s in the middle of the run. Prints
# the top functions (self time) and the split by thread name.
#
#   benches/scripts/profile.sh BIN_DIR RATE [OUT_DIR]
set -euo pipefail
BIN="${1:?bin dir with parley, parley-loadgen}"; RATE="${2:?rate}"
OUT="${3:-$(mktemp -d)}"; mkdir -p "$OUT"
command -v perf >/dev/null || apt-get install -y linux-perf >/dev/null
. "$(dirname "$0")/common.sh"
dir="$(mktemp -d)"; port=$(free_port); url="http://127.0.0.1:$port"
trap 'kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
up "$BIN" "$dir/d" "$port" "$OUT/server.log"
"$BIN/parley-loadgen" --url "$url" --pairs "${PAIRS:-500}" --rate "$RATE" --duration 20 --warmup 5 \
    >"$OUT/loadgen.txt" 2>"$OUT/loadgen.err" &
lg=$!
until grep -q "sockets open" "$OUT/loadgen.err" || ! kill -0 "$lg" 2>/dev/null; do sleep 0.2; done
sleep 8
perf record -F 499 -g --call-graph dwarf,16384 -p "$pid" -o "$OUT/perf.data" -- sleep 10 2>"$OUT/perf.err" >/dev/null
wait "$lg" || true
echo "loadgen: $(tail -1 "$OUT/loadgen.txt")"
perf report -i "$OUT/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20
perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -${TOP:-40}
