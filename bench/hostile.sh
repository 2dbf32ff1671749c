#!/usr/bin/env bash
# 60 s of hostile load on loopback against the release binary in dev mode:
# valid, expired, unknown-kid and malformed tokens, and made-up methods and
# paths. Prints the server's RSS before, after warm-up and every 10 s, and
# the size of /metrics before and after.
#
#   bench/hostile.sh        DURATION=60 CONNECTIONS=16 THREADS=1
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${DURATION:-60}"
connections="${CONNECTIONS:-16}"
threads="${THREADS:-1}"
port="${BENCH_PORT:-18090}"
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
[ -x target/release/usergate ] || cargo build --release --quiet --bin usergate
bin=target/release/usergate

work="$(mktemp -d)"
export DEV_KEY_PATH="$work/dev-key.pem" HOST=127.0.0.1 PORT="$port" RUST_LOG=warn
export DATABASE_URL="sqlite://$work/hostile.db" AUTH_LEEWAY_SECS=0
"$bin" serve --dev >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fs "$url/healthz" >/dev/null && break; sleep 0.1; done

rss() { awk '/VmRSS/ { print $2 " kB" }' "/proc/$pid/status"; }
metrics_size() { curl -fs "$url/metrics" | wc -c; }

export VALID EXPIRED UNKNOWN
VALID="$("$bin" mint-token --sub 'hostile|valid' --ttl 3600)"
EXPIRED="$("$bin" mint-token --sub 'hostile|expired' --ttl 1)"
UNKNOWN="$(DEV_KEY_PATH="$work/other-key.pem" "$bin" mint-token --sub 'hostile|unknown')"
sleep 2 # the expired token is now past its exp (leeway 0)

echo "RSS at start: $(rss); /metrics: $(metrics_size) bytes"
wrk -t "$threads" -c "$connections" -d 10s -s bench/hostile.lua "$url" >/dev/null
echo "RSS after 10 s warm-up: $(rss); /metrics: $(metrics_size) bytes"
wrk -t "$threads" -c "$connections" -d "${duration}s" -s bench/hostile.lua "$url" >"$work/wrk.out" &
load=$!
for t in $(seq 10 10 "$duration"); do
  sleep 10
  echo "RSS at ${t} s: $(rss)"
done
wait "$load"
grep -E "requests in|Requests/sec|Non-2xx" "$work/wrk.out"
echo "RSS after the load: $(rss); /metrics: $(metrics_size) bytes"
