#!/usr/bin/env bash
# bench/run.sh - clattn against its peers on this machine's default device
# (see bench/README.md). Installs the peers (Debian's python3-torch and
# libopenblas-dev) with apt where missing, builds clattn, then runs
# bench/peers.py. Extra arguments go to peers.py (e.g. --sizes 1024,2048).
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(python3-torch libopenblas-dev pkg-config)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

build=${CLATTN_BUILD_DIR:-build}
[ -f "$build/build.ninja" ] || bash tools/setup.sh demo >/dev/null
ninja -C "$build" >/dev/null
peer="$build/sgemm-peer"
cc -O2 bench/sgemm_peer.c $(pkg-config --cflags --libs openblas) -o "$peer"
# Debian's torch lives in the system interpreter.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" bench/peers.py --clattn "$build/clattn" --sgemm-peer "$peer" "$@"
