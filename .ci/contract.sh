#!/usr/bin/env bash
# Contract test: schemathesis (pinned in .ci/requirements.txt) against the
# release binary in dev mode, every check, once with an all-permissions token
# and once with a no-permission token. Fails on any failure.
#   CONTRACT_EXAMPLES   examples per operation and phase (default 50)
#   USERGATE_BIN        the binary to test (default: target/release/usergate, built)
# Reports (JUnit) land in target/contract/.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/dev-server.sh

venv="$(.ci/venv.sh)"
examples="${CONTRACT_EXAMPLES:-50}"
reports="$PWD/target/contract"
rm -rf "$reports" && mkdir -p "$reports"

dev_env
dev_run migrate >/dev/null
# Ids start far from the small and boundary values a fuzzer tries, so that no
# generated id names the callers' own rows (the all-permissions run would
# deactivate or delete its own user). The ids are still int64.
"$venv/bin/python" - "$DEV_TMP/usergate.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('users', 7340316491835020116)")
db.commit()
PY
dev_serve

curl -sf -o "$reports/openapi.json" "$BASE_URL/openapi.json"
"$venv/bin/openapi-spec-validator" "$reports/openapi.json"

all_permissions="$(dev_run mint-token --sub 'contract|admin' --ttl 3600 \
  --permissions read:users,create:users,update:users,delete:users)"
no_permission="$(dev_run mint-token --sub 'contract|nobody' --ttl 3600)"

failed=0
run() {
  local name="$1" token="$2"
  shift 2
  echo "== schemathesis: $name token"
  if ! "$venv/bin/schemathesis" --config-file ".ci/schemathesis/$name.toml" run "$BASE_URL/openapi.json" \
      "$@" \
      --checks all \
      --max-examples "$examples" \
      --header "Authorization: Bearer $token" \
      --request-timeout 10 \
      --report junit --report-junit-path "$reports/$name.xml"; then
    failed=1
  fi
  dev_check_alive
}
# The no-permission user first: its row exists before the other run creates users.
run no-permission "$no_permission"
# /users/me answers the caller's own id, and the stateful phase follows it into
# PATCH and DELETE /users/{id}: the admin would deactivate or delete itself and
# meet only 403s from then on. The no-permission run covers /users/me.
run all-permissions "$all_permissions" --exclude-path /users/me

if [ "$failed" -ne 0 ]; then
  echo "contract test: schemathesis reported failures (see above, and $reports)" >&2
  exit 1
fi
echo "contract test: no failures with either token"
