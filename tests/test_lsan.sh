#!/usr/bin/env bash
# test_lsan.sh - LeakSanitizer is on in the sanitizer build: lsan_canary,
# which leaks one 4243-byte block on purpose after using a clattn context,
# must end with LeakSanitizer's report of exactly that leak (and nothing
# else: no fatal error of the leak checker itself).
# usage: test_lsan.sh <path-to-lsan_canary>
set -u
out=$("$1" 2>&1)
rc=$?
echo "$out" | sed 's/^/  | /' | head -40
if [ "$rc" -eq 77 ]; then
    echo "SKIP: no OpenCL device"
    exit 77
fi
why=""
[ "$rc" -ne 0 ] || why="exit 0: the leak was not reported"
echo "$out" | grep -q "lsan_canary: leaked 4243 bytes" || why="$why; the canary did not reach its leak"
echo "$out" | grep -q "ERROR: LeakSanitizer: detected memory leaks" || why="$why; no LeakSanitizer report"
echo "$out" | grep -q "Direct leak of 4243 byte(s) in 1 object(s)" || why="$why; the 4243-byte leak is not in the report"
echo "$out" | grep -q "LeakSanitizer has encountered a fatal error" && why="$why; the leak checker itself failed"
if [ -n "$why" ]; then
    echo "FAIL ${why#; }"
    exit 1
fi
echo "ok   LeakSanitizer reported the canary's 4243-byte leak (exit $rc)"
