#!/usr/bin/env bash
# Parley as a cluster on this machine, for a person to try: one redis-server
# (log on db 0, state on db 1, AOF fsync always), one clickhouse-server
# (history) and two of each role on loopback. Ctrl-C stops everything.
# Needs redis-server, clickhouse-server (Debian's) and cargo.
#
#   deploy/local/run.sh            # edges on :8081 and :8082
#   PARLEY_LOCAL_REDIS_PORT=6391 PARLEY_LOCAL_CLICKHOUSE_PORT=8124 deploy/local/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

REDIS_PORT="${PARLEY_LOCAL_REDIS_PORT:-6390}"
CH_PORT="${PARLEY_LOCAL_CLICKHOUSE_PORT:-8124}"
DATA="deploy/local/.data"
LOG_URL="redis://127.0.0.1:${REDIS_PORT}/0"
STATE_URL="redis://127.0.0.1:${REDIS_PORT}/1"
HISTORY_URL="clickhouse://127.0.0.1:${CH_PORT}/parley"
mkdir -p "$DATA/redis" "$DATA/clickhouse"

cargo build --release -p parley
BIN=target/release/parley

# Every edge must share the token key; keep one per checkout.
if [ ! -s "$DATA/jwt.secret" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DATA/jwt.secret"
fi
export PARLEY__JWT_SECRET="$(cat "$DATA/jwt.secret")"
export PARLEY__PARTITIONS=8

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA/redis" \
    --appendonly yes --appendfsync always --save "" >"$DATA/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done

# ClickHouse with its own config and data under $DATA (HTTP on $CH_PORT,
# native protocol on the next port), never the system's service.
CH="$(cd "$DATA/clickhouse" && pwd)"
cat >"$CH/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$CH/server.log</log><errorlog>$CH/error.log</errorlog></logger>
  <http_port>$CH_PORT</http_port>
  <tcp_port>$((CH_PORT + 1))</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <timezone>UTC</timezone>
  <path>$CH/data/</path>
  <tmp_path>$CH/tmp/</tmp_path>
  <user_files_path>$CH/user_files/</user_files_path>
  <format_schema_path>$CH/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
cat >"$CH/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
(cd "$CH" && exec /usr/sbin/clickhouse-server --config-file="$CH/config.xml") >/dev/null 2>&1 &
pids+=($!)
until curl -sf "http://127.0.0.1:$CH_PORT/ping" >/dev/null 2>&1; do sleep 0.1; done

MEDIA_URL="file://$DATA/media"
"$BIN" migrate --log "$LOG_URL" --state "$STATE_URL" --history "$HISTORY_URL" --data-dir "$DATA"

role() { # role node port
    "$BIN" "$1" --node-id "$2" --listen "127.0.0.1:$3" \
        --log "$LOG_URL" --state "$STATE_URL" --history "$HISTORY_URL" --media "$MEDIA_URL" \
        --data-dir "$DATA" \
        >"$DATA/$1-$2.log" 2>&1 &
    pids+=($!)
}
role ingest 1 8081
role ingest 2 8082
role process 11 9101
role process 12 9102
role deliver 21 9201
role deliver 22 9202

echo "Parley is up: clients may use either edge."
echo "  edges:      http://127.0.0.1:8081  http://127.0.0.1:8082"
echo "  processors: http://127.0.0.1:9101/metrics  http://127.0.0.1:9102/metrics"
echo "  delivery:   http://127.0.0.1:9201/metrics  http://127.0.0.1:9202/metrics"
echo "  history:    parley analytics <name> --history $HISTORY_URL"
echo "  logs in $DATA; Ctrl-C stops everything"
wait
