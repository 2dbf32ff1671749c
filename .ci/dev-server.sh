# Sourced by .ci/contract.sh and .ci/client-check.sh: runs `usergate serve --dev`
# on a free loopback port, with its own dev key and SQLite file in a temp dir,
# and stops it (by its PID) when the script exits.
#   dev_env        creates the temp dir and exports the server's environment
#   dev_serve      starts the server and waits until /readyz answers 200; sets BASE_URL
#   dev_run ARGS   runs `usergate ARGS` in that environment (mint-token, migrate…)

# The release binary: USERGATE_BIN when set, else the checkout's, built when missing or stale.
usergate_bin() {
  if [ -z "${USERGATE_BIN:-}" ]; then
    cargo build --release --quiet --bin usergate
    USERGATE_BIN="$PWD/target/release/usergate"
  fi
  echo "$USERGATE_BIN"
}

dev_env() {
  DEV_BIN="$(usergate_bin)"
  DEV_TMP="$(mktemp -d)"
  DEV_PID=""
  trap dev_stop EXIT
  local port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  export HOST=127.0.0.1 PORT="$port" SHUTDOWN_DRAIN_SECS=0 RUST_LOG="${RUST_LOG:-warn}"
  export DEV_KEY_PATH="$DEV_TMP/dev-key.pem" DATABASE_URL="sqlite://$DEV_TMP/usergate.db"
  BASE_URL="http://127.0.0.1:$port"
}

# In the temp dir, so that no .env of the checkout is read.
dev_run() {
  (cd "$DEV_TMP" && "$DEV_BIN" "$@")
}

dev_serve() {
  (cd "$DEV_TMP" && exec "$DEV_BIN" serve --dev >"$DEV_TMP/stdout.log" 2>"$DEV_TMP/server.log") &
  DEV_PID=$!
  for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "$BASE_URL/readyz"; then
      return 0
    fi
    if ! kill -0 "$DEV_PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "usergate serve --dev did not become ready:" >&2
  cat "$DEV_TMP/server.log" >&2
  return 1
}

# Fails when the server died or logged a panic while it served.
dev_check_alive() {
  if ! kill -0 "$DEV_PID" 2>/dev/null || grep -q "panicked" "$DEV_TMP/server.log"; then
    echo "the server died or panicked:" >&2
    cat "$DEV_TMP/server.log" >&2
    return 1
  fi
}

dev_stop() {
  if [ -n "${DEV_PID:-}" ]; then
    kill "$DEV_PID" 2>/dev/null || true
    wait "$DEV_PID" 2>/dev/null || true
    DEV_PID=""
  fi
  rm -rf "${DEV_TMP:?}"
}
