#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver from Debian for the browser
# test (tests/api/browser.rs), unless a `chromium` is already on PATH.
# Needs root (CI images run as root). Recommended packages are not needed:
# headless Chromium runs without fonts-liberation, upower, etc.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium already present: $(chromium --version 2>/dev/null || echo unknown version)"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends chromium chromium-driver
chromium --version
