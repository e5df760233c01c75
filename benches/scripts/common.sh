# Sourced by the bench scripts: what every run of a load generator against
# `parley up` needs.

# Registering thousands of users must not dominate a run.
export PARLEY__ARGON2_MEMORY_KIB=1024 PARLEY_LOG=warn
# The load generators speak for each user at machine speed: per-user rates
# out of the way, every other limit as shipped.
export PARLEY__LIMITS__SENDS_PER_SEC=1000000 PARLEY__LIMITS__SENDS_BURST=1000000
export PARLEY__LIMITS__RECEIPTS_PER_SEC=1000000 PARLEY__LIMITS__RECEIPTS_BURST=1000000
# Thousands of clients from one loopback address: the cap per address is
# for the Internet, not for a load generator beside the server.
export PARLEY__LIMITS__CONNECTIONS_PER_IP_EXEMPT_LOOPBACK=true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# up BIN_DIR DATA_DIR PORT LOG_FILE: starts `parley up` in the background
# (its pid in $pid) and returns once it is ready.
up() {
    "$1/parley" up --data-dir "$2" --listen "127.0.0.1:$3" >"$4" 2>&1 &
    pid=$!
    until curl -fs "http://127.0.0.1:$3/readyz" >/dev/null 2>&1; do sleep 0.2; done
}
