#!/usr/bin/env bash
# A local usergate fleet: N replicas on loopback ports against one
# PostgreSQL (DATABASE_URL), HAProxy in front (deploy/haproxy.cfg).
#
#   deploy/cluster.sh up [N] [--dev]   start N replicas (default 3) and the balancer;
#                                      prints the balancer's URL alone on stdout
#   deploy/cluster.sh down             stop everything `up` started
#   deploy/cluster.sh restart-rolling  restart the replicas one at a time
#   deploy/cluster.sh kill-one         SIGKILL one replica (prints its URL)
#   deploy/cluster.sh status           one line per replica: URL STATE
#
# State lives in .usergate/cluster/ of the working directory. The replicas
# run USERGATE_BIN when set, else this checkout's target/release/usergate
# (built when missing). With --dev they share the working directory's dev
# key (DEV_KEY_PATH) and get PUBLIC_URL = the balancer's URL, so
# `PUBLIC_URL=<url> usergate mint-token ...` here mints tokens every replica
# accepts. Other variables (RUST_LOG, LOG_FORMAT, SHUTDOWN_DRAIN_SECS, ...)
# pass through to the replicas.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
checkout=$(dirname "$here")
state="$PWD/.usergate/cluster"
# Comfortably longer than the balancer needs to see a draining replica
# (two failed checks: about 250-350 ms).
drain="${SHUTDOWN_DRAIN_SECS:-2}"

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Alive and not a zombie (processes here may be reaped late).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

wait_gone() {
    local pid=$1 tries=${2:-600}
    while alive "$pid" && [ "$tries" -gt 0 ]; do
        sleep 0.05
        tries=$((tries - 1))
    done
    ! alive "$pid"
}

# `show stat` from HAProxy's socket, as "backend server status" lines.
lb_stat() {
    python3 - "$state/haproxy.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
for line in data.decode().splitlines():
    f = line.split(",")
    if len(f) > 17 and not line.startswith("#") and f[1] not in ("FRONTEND", "BACKEND"):
        print(f[0], f[1], f[17])
PY
}

# The balancer's view of replica $1 in the `ready` backend: UP, DOWN, ...
lb_state() {
    lb_stat 2>/dev/null | awk -v s="r$1" '$1 == "ready" && $2 == s { print $3 }'
}

wait_in_rotation() {
    local i=$1 tries=400
    until [ "$(lb_state "$i")" = UP ]; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || die "replica $i did not come into rotation; see $state/replica-$i.log"
        alive "$(cat "$state/replica-$i.pid")" || die "replica $i exited; see $state/replica-$i.log"
        sleep 0.05
    done
}

binary() {
    if [ -n "${USERGATE_BIN:-}" ]; then
        echo "$USERGATE_BIN"
        return
    fi
    local bin="$checkout/target/release/usergate"
    if [ ! -x "$bin" ]; then
        say "building $bin"
        (cd "$checkout" && cargo build --release --locked --bin usergate >&2)
    fi
    echo "$bin"
}

start_replica() {
    local i=$1 port
    port=$(cat "$state/replica-$i.port")
    # shellcheck disable=SC2046
    env HOST=127.0.0.1 PORT="$port" TRUSTED_PROXIES=127.0.0.1 \
        SHUTDOWN_DRAIN_SECS="$drain" \
        $(cat "$state/extra-env") \
        "$(cat "$state/bin")" serve $(cat "$state/mode") \
        >>"$state/replica-$i.log" 2>&1 </dev/null &
    echo $! >"$state/replica-$i.pid"
}

replicas() {
    local n
    n=$(cat "$state/count" 2>/dev/null) || die "no fleet here (run: deploy/cluster.sh up)"
    seq 1 "$n"
}

up() {
    local n=3 mode=""
    for arg in "$@"; do
        case "$arg" in
            --dev) mode="--dev" ;;
            [0-9]*) n=$arg ;;
            *) die "usage: cluster.sh up [N] [--dev]" ;;
        esac
    done
    [ "$n" -ge 1 ] || die "N must be at least 1"
    case "${DATABASE_URL:-}" in
        postgres://* | postgresql://*) ;;
        *) die "DATABASE_URL must name the PostgreSQL database the replicas share" ;;
    esac
    [ ! -f "$state/count" ] || die "a fleet is already up here (deploy/cluster.sh down first)"
    command -v haproxy >/dev/null || {
        say "installing haproxy from the distribution's packages"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >&2 ||
            { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >&2; }
    }
    mkdir -p "$state"
    local bin lb_port url
    bin=$(binary)
    lb_port=$(free_port)
    url="http://127.0.0.1:$lb_port"
    echo "$bin" >"$state/bin"
    echo "$n" >"$state/count"
    echo "$mode" >"$state/mode"
    : >"$state/extra-env"
    if [ -n "$mode" ]; then
        echo "PUBLIC_URL=$url" >"$state/extra-env"
        # One key for every replica, made before any of them starts.
        PUBLIC_URL="$url" "$bin" mint-token --sub cluster-setup >/dev/null
    fi
    for i in $(seq 1 "$n"); do
        free_port >"$state/replica-$i.port"
        start_replica "$i"
    done
    local servers=""
    for i in $(seq 1 "$n"); do
        servers+="    server r$i 127.0.0.1:$(cat "$state/replica-$i.port") check\n"
    done
    awk -v servers="$servers" '
        /^    server / { if (!done[section]++) printf "%s", servers; next }
        /^backend / { section = $2 }
        { print }' "$here/haproxy.cfg" >"$state/haproxy.cfg"
    LB_BIND="127.0.0.1:$lb_port" STATE_DIR="$state" \
        haproxy -D -f "$state/haproxy.cfg" -p "$state/haproxy.pid" 2>>"$state/haproxy.log" ||
        die "haproxy did not start; see $state/haproxy.log"
    echo "$url" >"$state/url"
    for i in $(seq 1 "$n"); do
        wait_in_rotation "$i"
    done
    say "$n replica(s) in rotation behind $url"
    echo "$url"
}

stop_pid() {
    local pid=$1
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 600 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 100 || true; }
}

down() {
    [ -d "$state" ] || return 0
    for pidfile in "$state"/replica-*.pid "$state/haproxy.pid"; do
        [ -f "$pidfile" ] || continue
        stop_pid "$(cat "$pidfile")"
    done
    rm -rf "$state"
    say "fleet stopped"
}

restart_rolling() {
    for i in $(replicas); do
        local pid
        pid=$(cat "$state/replica-$i.pid")
        if alive "$pid"; then
            kill -TERM "$pid"
            # The replica drains (readyz 503) and exits on its own.
            wait_gone "$pid" 1200 || die "replica $i did not exit after SIGTERM"
        fi
        start_replica "$i"
        wait_in_rotation "$i"
        say "replica $i restarted"
    done
}

kill_one() {
    for i in $(replicas); do
        local pid
        pid=$(cat "$state/replica-$i.pid")
        if alive "$pid"; then
            kill -KILL "$pid"
            wait_gone "$pid" 200 || true
            echo "http://127.0.0.1:$(cat "$state/replica-$i.port")"
            return 0
        fi
    done
    die "no replica is running"
}

status() {
    for i in $(replicas); do
        local state_of="stopped"
        if alive "$(cat "$state/replica-$i.pid")"; then
            case "$(lb_state "$i")" in
                UP) state_of="up" ;;
                *) state_of="down" ;;
            esac
        fi
        echo "http://127.0.0.1:$(cat "$state/replica-$i.port") $state_of"
    done
}

case "${1:-}" in
    up) shift; up "$@" ;;
    down) down ;;
    restart-rolling) restart_rolling ;;
    kill-one) kill_one ;;
    status) status ;;
    *) die "usage: cluster.sh up [N] [--dev] | down | restart-rolling | kill-one | status" ;;
esac
