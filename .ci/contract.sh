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
dev_serve

curl -sf -o "$reports/openapi.json" "$BASE_URL/openapi.json"
"$venv/bin/openapi-spec-validator" "$reports/openapi.json"

all_permissions="$(dev_run mint-token --sub 'contract|admin' --ttl 3600 \
  --permissions read:users,create:users,update:users,delete:users)"
no_permission="$(dev_run mint-token --sub 'contract|nobody' --ttl 3600)"

failed=0
run() {
  local name="$1" token="$2" own_id
  echo "== schemathesis: $name token"
  # The caller's row, which .ci/schemathesis/hooks.py keeps the run from changing.
  own_id="$(curl -sf -H "Authorization: Bearer $token" "$BASE_URL/users/me" |
    "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
  if ! CONTRACT_OWN_USER_ID="$own_id" CONTRACT_BASE_URL="$BASE_URL" CONTRACT_TOKEN="$token" \
      SCHEMATHESIS_HOOKS=.ci/schemathesis/hooks.py \
      "$venv/bin/schemathesis" --config-file ".ci/schemathesis/$name.toml" run "$BASE_URL/openapi.json" \
      --checks all \
      --max-examples "$examples" \
      --header "Authorization: Bearer $token" \
      --request-timeout 10 \
      --report junit --report-junit-path "$reports/$name.xml"; then
    failed=1
  fi
  dev_check_alive
}
run no-permission "$no_permission"
run all-permissions "$all_permissions"

if [ "$failed" -ne 0 ]; then
  echo "contract test: schemathesis reported failures (see above, and $reports)" >&2
  exit 1
fi
echo "contract test: no failures with either token"
