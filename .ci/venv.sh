#!/usr/bin/env bash
# Creates target/ci-venv with the pinned tools of .ci/requirements.txt (again
# whenever that file changes) and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/ci-venv
stamp="$venv/.requirements"
if ! cmp -s .ci/requirements.txt "$stamp"; then
  echo "installing .ci/requirements.txt into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/requirements.txt >&2
  cp .ci/requirements.txt "$stamp"
fi
echo "$PWD/$venv"
