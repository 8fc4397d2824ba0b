#!/usr/bin/env bash
# What the browser tests need besides Python, installed when missing (used by .ci/run and `make test`):
# Debian's Chromium (driven by Playwright through executable_path: Playwright never downloads a browser) and
# the npm packages pinned in tests/browser/node/package-lock.json (axe-core, oidc-provider).
# Installing system packages needs root; elsewhere it says what is missing and the browser tests skip
# (with CI=true they fail instead).
set -euo pipefail
cd "$(dirname "$0")/node"
export DEBIAN_FRONTEND=noninteractive

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "tests/browser/install.sh: missing $*; install it (apt-get install $*) for the browser tests" >&2
        return 0
    fi
    # A fresh machine may have no package lists yet, or stale ones: update only when the install fails.
    apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}

[ -x /usr/bin/chromium ] || apt_install chromium
command -v npm >/dev/null || apt_install nodejs npm

# npm ci again only when the lock file changed since the last install.
if command -v npm >/dev/null && { [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; }; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    touch node_modules/.installed
fi
