#!/usr/bin/env bash
# setup.sh - everything a fresh Debian 12 machine needs, then one job:
#   bash tools/setup.sh demo   build, list devices, run a verified attention demo
#   bash tools/setup.sh test   build with -Werror, run every test suite, check the install
# Missing Debian packages are installed with apt (as root, or through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-demo}
case "$mode" in demo|test) ;; *) echo "usage: bash tools/setup.sh demo|test" >&2; exit 2;; esac

pkgs=(gcc libc6-dev g++ python3 meson ninja-build pkg-config ocl-icd-opencl-dev opencl-headers libclblast-dev check)
# PoCL is the default device where no OpenCL driver is installed (no GPU).
if ! ls /etc/OpenCL/vendors/*.icd >/dev/null 2>&1; then
    pkgs+=(pocl-opencl-icd)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
        sudo=sudo
    fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

build=${CLATTN_BUILD_DIR:-build}
if [ -f "$build/build.ninja" ]; then
    meson configure "$build" -Dwerror=true >/dev/null
else
    meson setup "$build" -Dwerror=true
fi
ninja -C "$build"

if [ "$mode" = demo ]; then
    tool="$build/clattn"
    demo="$build/demo"
    mkdir -p "$demo"
    "$tool" devices
    # Q [B=2, Hq=8, Nq=300, D=64], K/V [B=2, Hkv=2, Nk=333, D=64]: GQA 4:1, causal bottom-right
    "$tool" random --shape 2,8,300,64 --seed 1 --out "$demo/q.npy"
    "$tool" random --shape 2,2,333,64 --seed 2 --out "$demo/k.npy"
    "$tool" random --shape 2,2,333,64 --seed 3 --out "$demo/v.npy"
    "$tool" run --q "$demo/q.npy" --k "$demo/k.npy" --v "$demo/v.npy" --causal --align bottom-right \
        --verify --out "$demo/o.npy" --lse "$demo/lse.npy"
    echo "demo: verified; outputs in $demo"
else
    meson test -C "$build" --print-errorlogs --num-processes 2
    # The install: header, libraries, tool and pkg-config file land where they should.
    dest=$(mktemp -d)
    trap 'rm -rf "$dest"' EXIT
    DESTDIR="$dest" meson install -C "$build" --quiet
    for f in include/clattn.h bin/clattn; do
        find "$dest" -path "*/$f" | grep -q . || { echo "install: $f missing" >&2; exit 1; }
    done
    find "$dest" -name 'libclattn.so*' | grep -q . || { echo "install: libclattn.so missing" >&2; exit 1; }
    find "$dest" -name 'libclattn.a' | grep -q . || { echo "install: libclattn.a missing" >&2; exit 1; }
    find "$dest" -name 'clattn.pc' | grep -q . || { echo "install: clattn.pc missing" >&2; exit 1; }
    echo "install: header, shared and static library, tool and clattn.pc present"
fi
