#!/usr/bin/env bash
# Install the external programs the test suite runs against lbproxy:
# slowhttptest (slow-header and slow-body attacks, tests/http/test_hostile_clients.py)
# and Chromium (the admin dashboard, driven headless by Playwright in
# tests/admin/test_dashboard.py), curl (a real HTTPS client, tests/http/test_tls.py)
# and openssl (s_client offering one key-exchange group, tests/tls/test_context.py).
#
# Unlike bench/install-tools.sh this is fatal: a test that needs a tool fails
# without it, so a missing tool should stop scripts/test.sh with a clear
# message up front. Idempotent: a tool already on PATH is left alone, and
# `apt-get update` runs only when a package is missing from the index.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"

have() { command -v "$1" >/dev/null 2>&1; }

# tool -> Debian package
declare -A PACKAGE=([slowhttptest]=slowhttptest [chromium]=chromium [curl]=curl [openssl]=openssl)

missing=()
for tool in "${!PACKAGE[@]}"; do
    if ! have "$tool"; then
        missing+=("${PACKAGE[$tool]}")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if ! have apt-get; then
    echo "error: apt-get not found; install ${missing[*]} with your package manager" >&2
    exit 1
fi
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if have sudo && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n env DEBIAN_FRONTEND=noninteractive)
    else
        echo "error: need root or passwordless sudo to install ${missing[*]}" >&2
        exit 1
    fi
fi
apt_get() {
    ${SUDO[@]+"${SUDO[@]}"} apt-get -y -q -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold "$@"
}
candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'
}
for pkg in "${missing[@]}"; do
    cand=$(candidate "$pkg")
    if [[ -z "$cand" || "$cand" == "(none)" ]]; then
        apt_get update
        break
    fi
done
apt_get install --no-install-recommends "${missing[@]}"
for tool in "${!PACKAGE[@]}"; do
    have "$tool" || { echo "error: $tool still missing after installing ${PACKAGE[$tool]}" >&2; exit 1; }
done
