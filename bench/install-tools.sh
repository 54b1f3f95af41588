#!/usr/bin/env bash
# Install the external tools the benchmarks drive: wrk, nginx, haproxy
# (bench/compare.py and the scripts built on it) and testssl (bench/testssl.py).
#
# Idempotent: a tool already on PATH (or in /usr/sbin, where Debian puts nginx
# and haproxy) is left alone, and `apt-get update` runs at most once, only when
# something is actually missing. Safe in CI: no prompts, no TTY needed.
#
# Usage: bench/install-tools.sh            (as root, or with passwordless sudo)
#        bench/install-tools.sh --check    (only report; exit 1 if anything is missing)
#
# Note: the Debian nginx/haproxy packages may try to start their system
# services on install. compare.py never uses them: it runs its own instances
# with private configs on random loopback ports.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# apt puts the daemons in sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"

check_only=0
if [[ "${1:-}" == "--check" ]]; then
    check_only=1
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--check]" >&2
    exit 2
fi

have() { command -v "$1" >/dev/null 2>&1; }

missing=()
for tool in wrk nginx haproxy testssl; do
    if have "$tool"; then
        echo "ok: $tool -> $(command -v "$tool")"
    else
        echo "missing: $tool"
        missing+=("$tool")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "all benchmark tools present"
    exit 0
fi
if [[ $check_only -eq 1 ]]; then
    exit 1
fi

if ! have apt-get; then
    echo "error: apt-get not found; install ${missing[*]} with your package manager" >&2
    exit 1
fi

# Root runs apt directly (CI containers often have no sudo); others need
# non-interactive sudo so CI never hangs on a password prompt.
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

# Update the package index once: needed on fresh images whose lists are empty.
updated=0
ensure_updated() {
    if [[ $updated -eq 0 ]]; then
        apt_get update
        updated=1
    fi
}

# Whether apt knows an installable candidate for a package name.
has_candidate() {
    local cand
    cand=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
    [[ -n "$cand" && "$cand" != "(none)" ]]
}

pkgs=()
for tool in "${missing[@]}"; do
    case "$tool" in
        nginx)
            # nginx-light is the smallest build with everything we use
            # (proxy, upstream keepalive); newer Debian/Ubuntu dropped it, so
            # fall back to plain nginx.
            if ! has_candidate nginx-light && ! has_candidate nginx; then
                ensure_updated
            fi
            if has_candidate nginx-light; then
                pkgs+=(nginx-light)
            else
                pkgs+=(nginx)
            fi
            ;;
        testssl)
            # Debian's package is testssl.sh; its command is testssl.
            if ! has_candidate testssl.sh; then
                ensure_updated
            fi
            pkgs+=(testssl.sh)
            ;;
        *)
            if ! has_candidate "$tool"; then
                ensure_updated
            fi
            pkgs+=("$tool")
            ;;
    esac
done

echo "installing: ${pkgs[*]}"
if ! apt_get install --no-install-recommends "${pkgs[@]}"; then
    # A stale index can name versions the mirror no longer has: refresh once, retry.
    if [[ $updated -eq 0 ]]; then
        ensure_updated
        apt_get install --no-install-recommends "${pkgs[@]}"
    else
        exit 1
    fi
fi

for tool in "${missing[@]}"; do
    if ! have "$tool"; then
        echo "error: $tool still missing after install" >&2
        exit 1
    fi
done
echo "all benchmark tools present"
