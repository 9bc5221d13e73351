#!/usr/bin/env bash
# The shared library exports clattn_* symbols and nothing else.
set -u
lib=$1
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^clattn_' | grep -v '^_init$\|^_fini$\|^_edata$\|^_end$\|^__bss_start$')
n=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | grep -c '^clattn_')
if [ -n "$bad" ]; then
    echo "exported symbols outside clattn_*:"; echo "$bad"; exit 1
fi
if [ "$n" -lt 20 ]; then
    echo "only $n clattn_* symbols exported"; exit 1
fi
echo "ok: $n symbols, all clattn_*"
