#!/usr/bin/env bash
# What a fleet buys on this machine: the balancer (deploy/cluster.sh, HAProxy)
# loaded with 1, 2, ... N release replicas on one PostgreSQL, in one run.
# Rows: /healthz straight to a replica and through the balancer (what the
# balancer costs), /users/me with one token, with distinct tokens of existing
# users, and first logins. Results go to bench/results-cluster.md.
#
#   bench/run.sh --cluster N     DURATION=10 CONNECTIONS=32 THREADS=2 TOKENS=20000
set -euo pipefail
cd "$(dirname "$0")/.."

max="${1:-3}"
duration="${DURATION:-10}"
connections="${CONNECTIONS:-32}"
threads="${THREADS:-2}"
tokens="${TOKENS:-20000}"
base="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --bin usergate --example mint_many
export USERGATE_BIN="$PWD/target/release/usergate"
mint="$PWD/target/release/examples/mint_many"
cluster="$PWD/deploy/cluster.sh"

work="$(mktemp -d)"
db="usergate_bench_cluster_$$"
psql -q "$base" -c "CREATE DATABASE $db"
export DATABASE_URL="${base%/*}/$db" RUST_LOG=warn
cleanup() {
  (cd "$work" && "$cluster" down >/dev/null 2>&1) || true
  psql -q "$base" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cat bench/tokens.lua bench/report.lua >"$work/tokens.lua"

# CPU seconds (user + system) a process has used so far.
cpu_secs() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

run() { # replicas name url [token-file [cycle]]
  local n="$1" name="$2" url="$3" script=bench/report.lua
  local args=(-t "$threads" -c "$connections" -d "${duration}s" --latency)
  if [ -n "${4:-}" ]; then
    script="$work/tokens.lua"
    export TOKENS_FILE="$4" WRK_THREADS="$threads" TOKENS_CYCLE="${5:-0}"
  else
    args+=(-H "Authorization: Bearer $one")
  fi
  local lb_pid before after line
  lb_pid="$(cat "$work/.usergate/cluster/haproxy.pid")"
  before="$(cpu_secs "$lb_pid")"
  line="$(wrk "${args[@]}" -s "$script" "$url" | grep '^RESULT')"
  after="$(cpu_secs "$lb_pid")"
  echo "$n $name $line $before $after" >>"$work/rows"
}

for n in $(seq 1 "$max"); do
  lb="$(cd "$work" && "$cluster" up "$n" --dev)"
  replica="$(cd "$work" && "$cluster" status | awk 'NR == 1 { print $1 }')"
  issuer="$lb/" audience="http://localhost:8000/users"
  one="$(cd "$work" && PUBLIC_URL="$lb" "$USERGATE_BIN" mint-token --sub "bench|one" --permissions read:users)"
  curl -fs -H "Authorization: Bearer $one" "$lb/users/me" >/dev/null
  "$mint" "$work/.usergate/dev-key.pem" "$issuer" "$audience" "bench|n$n-user-" "$tokens" 3600 >"$work/first-$n.txt"

  run "$n" healthz_direct "$replica/healthz"
  run "$n" healthz_balanced "$lb/healthz"
  run "$n" me_repeated_token "$lb/users/me"
  run "$n" first_login "$lb/users/me" "$work/first-$n.txt"
  # Fresh tokens of users that now exist: a signature check and a user read each.
  "$mint" "$work/.usergate/dev-key.pem" "$issuer" "$audience" "bench|n$n-user-" "$((tokens / 2))" 3599 >"$work/again-$n.txt"
  run "$n" me_distinct_tokens "$lb/users/me" "$work/again-$n.txt" 1
  (cd "$work" && "$cluster" down >/dev/null)
done

{
  echo "## $(date -u +%Y-%m-%d) — 1 to $max replicas behind HAProxy on PostgreSQL, $connections connections, ${duration}s per row"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), loopback; wrk ($threads threads), HAProxy and every replica share the cores."
  echo
  echo "| replicas | row | requests/s | p50 ms | p99 ms | p99.9 ms | non-2xx | errors | balancer CPU µs/request |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  while read -r n name _ requests secs p50 p99 p999 non2xx errors before after; do
    rps="$(awk -v r="$requests" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')"
    lb_us="$(awk -v a="$after" -v b="$before" -v r="$requests" 'BEGIN { if (r > 0) printf "%.1f", 1e6 * (a - b) / r; else print "-" }')"
    printf '| %s | %s | %s | %.2f | %.2f | %.2f | %s | %s | %s |\n' \
      "$n" "$name" "$rps" "$p50" "$p99" "$p999" "$non2xx" "$errors" "$lb_us"
  done <"$work/rows"
  echo
} | tee -a bench/results-cluster.md
