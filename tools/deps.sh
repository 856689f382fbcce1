#!/bin/sh
# Install the Debian packages cgrad needs to build and test, only those missing.
# Usage: tools/deps.sh [extra-package ...]
# As root it runs apt-get; otherwise it prints the exact command to run and fails.
set -eu
pkgs="libblis-dev libcmocka-dev zlib1g-dev pkg-config make gcc $*"
missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "cgrad: missing packages:$missing" >&2
    echo "cgrad: this is not a Debian system; install the equivalents of:$missing" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "cgrad: missing packages:$missing" >&2
    echo "cgrad: run as root:  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
echo "cgrad: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq --no-install-recommends $missing >/dev/null
