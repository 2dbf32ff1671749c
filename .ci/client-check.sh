#!/usr/bin/env bash
# Generates a TypeScript client from the served /openapi.json (openapi-typescript,
# pinned with openapi-fetch and typescript in .ci/client/package-lock.json) and
# type-checks a small call of each operation against it (.ci/client/check.ts).
#   USERGATE_BIN   the binary to serve the document (default: target/release/usergate, built)
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/dev-server.sh

dev_env
dev_serve
curl -sf -o "$DEV_TMP/openapi.json" "$BASE_URL/openapi.json"

cd .ci/client
npm ci --no-audit --no-fund --silent
npx --no-install openapi-typescript "$DEV_TMP/openapi.json" --output schema.ts
npx --no-install tsc --project .
echo "client check: the generated client type-checks against a call of each operation"
