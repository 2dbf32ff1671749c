#!/usr/bin/env bash
# Load benchmark on loopback: builds the release binary, starts it in dev mode
# (its local issuer signs the tokens) on SQLite, or PostgreSQL with --postgres,
# and measures each row with wrk on the same server in one run.
#
#   bench/run.sh [--postgres]      DURATION=10 CONNECTIONS=32 THREADS=2 USERS=30000 PROOFS=150000
#                                  MIXED=400000 (requests in the mixed row)
#   bench/run.sh --cluster N       1 to N replicas behind HAProxy (bench/cluster.sh)
#
# PROFILE=1 also samples the server with `perf record -e cpu-clock` during
# each row and writes its flat profile to bench/profiles/BACKEND-ROW.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--cluster" ] && exec bench/cluster.sh "${2:-3}"

backend=sqlite
[ "${1:-}" = "--postgres" ] && backend=postgres
duration="${DURATION:-10}"
connections="${CONNECTIONS:-32}"
threads="${THREADS:-2}"
users="${USERS:-30000}"
mixed="${MIXED:-400000}"
proofs="${PROOFS:-150000}"
port="${BENCH_PORT:-18080}"

if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --bin usergate --example mint_many --example mint_proofs
# Which code ran: the commit, and whether the tree differed from it.
commit="$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")"
git diff --quiet HEAD -- src 2>/dev/null || commit="$commit with uncommitted changes to src"
bin=target/release/usergate
mint=target/release/examples/mint_many
mint_proofs=target/release/examples/mint_proofs

work="$(mktemp -d)"
export DEV_KEY_PATH="$work/dev-key.pem" HOST=127.0.0.1 PORT="$port" RUST_LOG=warn
if [ "$backend" = postgres ]; then
  base="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  db="usergate_bench_$$"
  psql -q "$base" -c "CREATE DATABASE $db"
  export DATABASE_URL="${base%/*}/$db"
else
  export DATABASE_URL="sqlite://$work/bench.db"
fi

"$bin" serve --dev >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$backend" = postgres ] && psql -q "$base" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fs "$url/healthz" >/dev/null && break; sleep 0.1; done

issuer="http://localhost:$port/"
audience="http://localhost:8000/users"
one="$("$bin" mint-token --sub 'bench|one' --permissions read:users)"
curl -fs -H "Authorization: Bearer $one" "$url/users/me" >/dev/null
"$mint" "$DEV_KEY_PATH" "$issuer" "$audience" 'bench|user-' "$users" 3600 >"$work/first.txt"
cat bench/tokens.lua bench/report.lua >"$work/tokens.lua"
cat bench/offsets.lua bench/report.lua >"$work/offsets.lua"

# CPU time in clock ticks: the server's (user + system), and for PostgreSQL
# that of all its processes, so each row also says what a request cost.
hz="$(getconf CLK_TCK)"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
db_cpu_ticks() {
  [ "$backend" = postgres ] || { echo 0; return; }
  local total=0 p
  for p in $(pgrep -x postgres); do total=$((total + $(cpu_ticks "$p"))); done
  echo "$total"
}

run() { # name path [token-file [cycle]]
  local name="$1" path="$2" script="${ROW_SCRIPT:-bench/report.lua}"
  local args=(-t "$threads" -c "$connections" -d "${duration}s" --latency)
  if [ -n "${3:-}" ]; then
    script="$work/tokens.lua"
    export TOKENS_FILE="$3" WRK_THREADS="$threads" TOKENS_CYCLE="${4:-0}"
  else
    args+=(-H "Authorization: Bearer $one")
  fi
  local line perf_pid="" cpu_before db_before
  cpu_before="$(cpu_ticks "$pid")" db_before="$(db_cpu_ticks)"
  if [ -n "${PROFILE:-}" ]; then
    perf record -q -e cpu-clock -F 999 -p "$pid" -o "$work/$name.perf" -- sleep "$duration" 2>/dev/null &
    perf_pid=$!
  fi
  line="$(wrk "${args[@]}" -s "$script" "$url$path" | grep '^RESULT')"
  local cpu=$(($(cpu_ticks "$pid") - cpu_before)) db_cpu=$(($(db_cpu_ticks) - db_before))
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    mkdir -p bench/profiles
    perf report -q -i "$work/$name.perf" --no-children --stdio --sort dso,symbol --percent-limit 0.7 \
      2>/dev/null | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//' \
      >"bench/profiles/$backend-$name.txt"
  fi
  local rss peak
  rss="$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
  peak="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
  echo "$name $line $rss $peak $cpu $db_cpu" >>"$work/rows"
}

run healthz /healthz
run me_repeated_token /users/me
# The same request with a DPoP-bound token (cached like the Bearer one) and
# a fresh proof each time, minted ahead: the row's cost over the one above
# is the proof check and its jti's one insert.
bound="$("$bin" mint-token --sub 'bench|one' --permissions read:users --dpop-key "$work/dpop-key.pem")"
"$mint_proofs" "$work/dpop-key.pem" GET "$url/users/me" "$bound" "$proofs" >"$work/proofs.txt"
export DPOP_TOKEN="$bound"
run me_dpop_fresh_proofs /users/me "$work/proofs.txt"
unset DPOP_TOKEN
run first_login /users/me "$work/first.txt"
# New tokens (never verified) of the users that exist now: the cache-miss
# path, cycling through more tokens than the verified-token cache holds
# (a margin of 200 leaves out subjects the first-login row may have skipped).
created="$(curl -fs -H "Authorization: Bearer $one" "$url/users?limit=1" | sed -E 's/^\{"count":([0-9]+).*/\1/')"
"$mint" "$DEV_KEY_PATH" "$issuer" "$audience" 'bench|user-' "$((created - 200))" 3599 >"$work/again.txt"
run me_distinct_tokens /users/me "$work/again.txt" 1
# The same page again and again (served from the page cache, read once a
# second), then early pages drawn at random (read from the database).
run list_limit_50 "/users?limit=50"
ROW_SCRIPT="$work/offsets.lua" run list_random_early_pages "/users?limit=50"
# Traffic as a deployment sees it: of every 50 requests, 45 repeat the one
# token ("=" lines), 4 bring a new token of an existing user and 1 is a
# first login.
distinct=$((mixed * 8 / 100)) newcomers=$((mixed * 2 / 100))
[ "$distinct" -gt "$((created - 200))" ] && distinct=$((created - 200))
"$mint" "$DEV_KEY_PATH" "$issuer" "$audience" 'bench|user-' "$distinct" 3598 >"$work/distinct.txt"
"$mint" "$DEV_KEY_PATH" "$issuer" "$audience" 'bench|mixed-' "$newcomers" 3600 >"$work/newcomers.txt"
awk -v n="$mixed" 'BEGIN { while ((getline d < ARGV[1]) > 0) dl[++nd] = d; while ((getline f < ARGV[2]) > 0) fl[++nf] = f
  for (i = 0; i < n; i++) { k = i % 50
    if (k == 0 && fi < nf) print fl[++fi]; else if (k <= 4 && k > 0 && di < nd) print dl[++di]; else print "=" } }' \
  "$work/distinct.txt" "$work/newcomers.txt" >"$work/mixed.txt"
export REPEATED_TOKEN="$one"
run mixed_90_8_2 /users/me "$work/mixed.txt"
unset REPEATED_TOKEN
peak="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"

{
  echo "## $(date -u +%Y-%m-%d) — $backend, $users users, $connections connections, ${duration}s per row${PROFILE:+ (perf sampling at 999 Hz beside: PROFILE=1)} — $commit"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), loopback, wrk $threads threads."
  echo
  echo "| row | requests/s | p50 ms | p99 ms | p99.9 ms | non-2xx | errors | RSS after (MB) | peak RSS so far (MB) | vs /healthz | usergate CPU µs/req | PostgreSQL CPU µs/req |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  base_rps=""
  while read -r name _ requests secs p50 p99 p999 non2xx errors rss peak_so_far cpu db_cpu; do
    rps="$(awk -v r="$requests" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')"
    [ -z "$base_rps" ] && base_rps="$rps"
    ratio="$(awk -v a="$rps" -v b="$base_rps" 'BEGIN { printf "%.0f %%", 100 * a / b }')"
    per_request() { awk -v t="$1" -v r="$requests" -v hz="$hz" 'BEGIN { printf "%.0f", t * 1e6 / hz / r }'; }
    db_per_request="—"
    [ "$backend" = postgres ] && db_per_request="$(per_request "$db_cpu")"
    mb() { awk -v k="$1" 'BEGIN { print k / 1024 }'; }
    printf '| %s | %s | %.2f | %.2f | %.2f | %s | %s | %.1f | %.1f | %s | %s | %s |\n' \
      "$name" "$rps" "$p50" "$p99" "$p999" "$non2xx" "$errors" "$(mb "$rss")" "$(mb "$peak_so_far")" "$ratio" \
      "$(per_request "$cpu")" "$db_per_request"
  done <"$work/rows"
  echo
  echo "Peak server RSS over the run: $(awk -v k="$peak" 'BEGIN { printf "%.1f", k / 1024 }') MB."
  echo
} | tee -a "bench/results-$backend.md"
