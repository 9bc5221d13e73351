#!/usr/bin/env bash
#
# test_cli.sh - the clattn tool end to end: help and version, device listing,
# verified runs on odd shapes (GQA, causal, 2-D/3-D inputs, float16, masks), and
# malformed input, where every case must exit with the documented code, name the
# offending argument on stderr and leave no output file behind.
#
# usage: test_cli.sh <path-to-clattn-binary>
# Inputs come from `clattn random` (no numpy needed). Prints one line per check
# and exits 1 if any check failed.

. "$(dirname "$0")/cli_lib.sh" cli "$@"

# expect_ok NAME CMD...: exit 0.
expect_ok() {
    local name=$1
    shift
    run "$@"
    if [ "$rc" -eq 0 ]; then
        pass "$name"
    else
        echo "       (exit $rc)"
        fail "$name" out.txt err.txt
    fi
}

# has_shape FILE DESCR SHAPE: the .npy header names this dtype and shape, e.g.
# has_shape O.npy '<f4' '(1, 4, 37, 40)'.
has_shape() {
    head -c 256 "$1" 2>/dev/null | grep -a -q -F "'descr': '$2'" &&
        head -c 256 "$1" | grep -a -q -F "'shape': $3"
}

# Failure cases write to these paths; they must not exist afterwards.
FO=$tmp/fail_O.npy
FL=$tmp/fail_L.npy

# expect_fail NAME CODE ARG CMD...: expect_error (cli_lib.sh); the failing
# cases write to $FO and $FL.
expect_fail() {
    expect_error "$@"
}

# ---------------------------------------------------------------- help and version
run --help
if [ "$rc" -eq 0 ] && grep -q "devices" out.txt && grep -q "run" out.txt && grep -q "random" out.txt; then
    pass "--help lists the commands"
else
    fail "--help lists the commands" out.txt err.txt
fi
run help
[ "$rc" -eq 0 ] && grep -q "usage: clattn" out.txt && pass "help" || fail "help" out.txt err.txt
run help run
[ "$rc" -eq 0 ] && grep -q -- "--key-lengths" out.txt && pass "help run" || fail "help run" out.txt err.txt
for cmd in devices run random; do
    run "$cmd" --help
    [ "$rc" -eq 0 ] && grep -q "usage: clattn $cmd" out.txt && pass "$cmd --help" || fail "$cmd --help" out.txt err.txt
done
run --version
[ "$rc" -eq 0 ] && grep -q -x "clattn 0.1.0" out.txt && pass "--version" || fail "--version" out.txt err.txt
run
[ "$rc" -eq 2 ] && pass "no command: exit 2" || fail "no command: exit 2" err.txt
expect_fail "unknown command" 2 "frobnicate" frobnicate

# ---------------------------------------------------------------- devices
run devices
if [ "$rc" -eq 0 ] && grep -E -q '^  [* ] [0-9]+:[0-9]+ ' out.txt && grep -q '^  \* ' out.txt; then
    pass "devices lists a device and marks the default"
else
    fail "devices lists a device and marks the default" out.txt err.txt
fi
run devices --json
if [ "$rc" -eq 0 ] && grep -q '"devices":\[{' out.txt && grep -q '"default":true' out.txt &&
    grep -q '"name":' out.txt && [ "$(wc -l <out.txt)" -eq 1 ]; then
    pass "devices --json"
else
    fail "devices --json" out.txt err.txt
fi
expect_fail "devices: unknown flag" 2 "--jsn" devices --jsn

# No OpenCL platform at all is exit 3. ocl-icd (and the Khronos loader) read
# OCL_ICD_VENDORS; a loader that ignores it still finds platforms: skip then.
mkdir -p no_icd
OCL_ICD_VENDORS=$tmp/no_icd "$CLATTN" devices >out.txt 2>err.txt
rc=$?
if [ "$rc" -eq 0 ]; then
    skip "no platform: exit 3 (the ICD loader ignores OCL_ICD_VENDORS)"
elif [ "$rc" -eq 3 ] && grep -q "clattn: error: devices:" err.txt; then
    pass "no platform: devices exits 3"
else
    fail "no platform: devices exits 3" err.txt
fi

# ---------------------------------------------------------------- inputs
# Odd sizes on purpose: Nq 37, Nk 53, D 40, grouped-query 4/2 heads.
mk q.npy 1,4,37,40 1
mk k.npy 1,2,53,40 2
mk v.npy 1,2,53,40 3
run random --shape 1,4,37,40 --seed 1 --out q_again.npy
cmp -s q.npy q_again.npy && pass "random: same seed, same file" || fail "random: same seed, same file" err.txt
run random --shape 1,4,37,40 --seed 2 --out q_other.npy
! cmp -s q.npy q_other.npy && pass "random: other seed, other file" || fail "random: other seed, other file" err.txt
has_shape q.npy '<f4' '(1, 4, 37, 40)' && pass "random: .npy header" || fail "random: .npy header"

# ---------------------------------------------------------------- verified runs
rm -f O.npy LSE.npy
expect_ok "run --verify (GQA 4/2, Nq 37, Nk 53, D 40)" run --q q.npy --k k.npy --v v.npy --out O.npy --lse LSE.npy --verify
if has_shape O.npy '<f4' '(1, 4, 37, 40)' && has_shape LSE.npy '<f4' '(1, 4, 37)'; then
    pass "run wrote O [1,4,37,40] f32 and LSE [1,4,37]"
else
    fail "run wrote O [1,4,37,40] f32 and LSE [1,4,37]"
fi
grep -q "verification passed" out.txt && grep -q "dense-equivalent" out.txt && pass "run: summary" ||
    fail "run: summary" out.txt

rm -f O.npy LSE.npy
expect_ok "run --causal --align bottom-right --verify" run --q q.npy --k k.npy --v v.npy --causal --align bottom-right \
    --out O.npy --lse LSE.npy --verify
[ -f O.npy ] && [ -f LSE.npy ] && pass "causal run wrote O and LSE" || fail "causal run wrote O and LSE"

run run --q q.npy --k k.npy --v v.npy --causal --verify --json --lse LSE.npy
if [ "$rc" -eq 0 ] && grep -E -q '"verified": ?true' out.txt && grep -q '"kernel_ms":' out.txt &&
    grep -q '"params":{' out.txt && grep -q '"outputs":\["LSE.npy"\]' out.txt && [ "$(wc -l <out.txt)" -eq 1 ]; then
    pass "run --json: one object, \"verified\": true"
else
    fail "run --json: one object, \"verified\": true" out.txt err.txt
fi
run run --q q.npy --k k.npy --v v.npy --json
if [ "$rc" -eq 0 ] && grep -q '"verified":null' out.txt && grep -q '"max_err":null' out.txt &&
    grep -q '"outputs":\[\]' out.txt; then
    pass "run --json without --verify: verified null"
else
    fail "run --json without --verify: verified null" out.txt err.txt
fi
# --repeat N: N launches, the median of 2..N reported and the first apart; the
# outputs (and the verification) are the last launch's.
rm -f O.npy
run run --q q.npy --k k.npy --v v.npy --causal --verify --json --repeat 4 --out O.npy
if [ "$rc" -eq 0 ] && grep -q '"runs":4,"first_ms":[0-9]' out.txt && grep -q '"timing":"event"' out.txt &&
    grep -E -q '"verified": ?true' out.txt && has_shape O.npy '<f4' '(1, 4, 37, 40)'; then
    pass "run --repeat 4 --json: runs 4, first_ms, verified"
else
    fail "run --repeat 4 --json: runs 4, first_ms, verified" out.txt err.txt
fi
run run --q q.npy --k k.npy --v v.npy --repeat 3
if [ "$rc" -eq 0 ] && grep -q "ms median of launches 2..3 (device event; first launch [0-9.]* ms)" out.txt; then
    pass "run --repeat 3: summary names the median and the first launch"
else
    fail "run --repeat 3: summary names the median and the first launch" out.txt err.txt
fi
run run --q q.npy --k k.npy --v v.npy --json
grep -q '"runs":1,' out.txt && pass "run without --repeat: runs 1" || fail "run without --repeat: runs 1" out.txt err.txt

# Nq > Nk, bottom-right: the first rows see no key (O = 0, LSE = -inf must match).
mk qe.npy 2,60,16 11
mk ke.npy 2,20,16 12
mk ve.npy 2,20,16 13
rm -f O.npy LSE.npy
expect_ok "run 3-D, Nq > Nk, causal bottom-right (empty rows)" run --q qe.npy --k ke.npy --v ve.npy --causal \
    --align bottom-right --out O.npy --lse LSE.npy --verify
has_shape O.npy '<f4' '(2, 60, 16)' && has_shape LSE.npy '<f4' '(2, 60)' && pass "3-D run: O [2,60,16], LSE [2,60]" ||
    fail "3-D run: O [2,60,16], LSE [2,60]"

mk q2.npy 37,40 21
mk k2.npy 53,40 22
mk v2.npy 53,24 23
rm -f O.npy LSE.npy
expect_ok "run 2-D, Dv 24 != D 40, window 5,3, softcap 2.5" run --q q2.npy --k k2.npy --v v2.npy --window 5,3 \
    --softcap 2.5 --out O.npy --lse LSE.npy --verify
has_shape O.npy '<f4' '(37, 24)' && has_shape LSE.npy '<f4' '(37,)' && pass "2-D run: O [37,24], LSE [37]" ||
    fail "2-D run: O [37,24], LSE [37]"

mk qh.npy 1,4,37,40 31 --dtype f16
mk kh.npy 1,2,53,40 32 --dtype f16
mk vh.npy 1,2,53,40 33 --dtype f16
rm -f O.npy LSE.npy
expect_ok "run float16 inputs --causal --verify" run --q qh.npy --k kh.npy --v vh.npy --causal --out O.npy --lse LSE.npy \
    --verify
has_shape O.npy '<f2' '(1, 4, 37, 40)' && has_shape LSE.npy '<f4' '(1, 4, 37)' && pass "float16 run: O f16, LSE f32" ||
    fail "float16 run: O f16, LSE f32"

# Bias (broadcast over batch and query rows), ALiBi and key lengths together.
mk qb.npy 2,4,37,40 41
mk kb.npy 2,2,53,40 42
mk vb.npy 2,2,53,40 43
mk bias.npy 4,1,53 44 --scale 3
mk alibi.npy 4 45 --scale 0.5
mk lens.npy 2 46 --dtype i32 --int-range 0,53
mk lens0.npy 2 47 --dtype i32 --int-range 0,0
rm -f O.npy LSE.npy
expect_ok "run bias [4,1,53] + ALiBi + key lengths, causal bottom-right" run --q qb.npy --k kb.npy --v vb.npy \
    --bias bias.npy --alibi alibi.npy --key-lengths lens.npy --causal --align bottom-right --scale 0.3 \
    --out O.npy --lse LSE.npy --verify
mk bias1.npy 1 48
expect_ok "run bias [1] (broadcast along every dim)" run --q qb.npy --k kb.npy --v vb.npy --bias bias1.npy --lse LSE.npy \
    --verify
expect_ok "run key lengths all 0 (every row empty)" run --q qb.npy --k kb.npy --v vb.npy --key-lengths lens0.npy \
    --lse LSE.npy --verify
expect_ok "run --variant naive --device 0:0-style spec from devices" run --q q.npy --k k.npy --v v.npy --variant naive \
    --verify --device "$("$CLATTN" devices --json | grep -o '"index":"[0-9]*:[0-9]*"' | head -1 | cut -d'"' -f4)"

# ---------------------------------------------------------------- malformed input: exit 2
common=(--out "$FO" --lse "$FL")
expect_fail "missing --q file" 2 "--q" run --q nonexistent.npy --k k.npy --v v.npy "${common[@]}"
head -c 4096 /dev/urandom >garbage.npy
expect_fail "garbage --k file" 2 "--k" run --q q.npy --k garbage.npy --v v.npy "${common[@]}"
head -c 300 v.npy >trunc.npy
expect_fail "truncated --v file" 2 "--v" run --q q.npy --k k.npy --v trunc.npy "${common[@]}"
mk qi.npy 1,4,37,40 51 --dtype i32 --int-range -5,5
expect_fail "int32 --q" 2 "--q" run --q qi.npy --k k.npy --v v.npy "${common[@]}"
mk q5.npy 1,1,4,37,40 52
expect_fail "5-D --q" 2 "--q" run --q q5.npy --k k.npy --v v.npy "${common[@]}"
mk kd.npy 1,2,53,32 53
expect_fail "--k head dim 32 vs --q 40" 2 "--k" run --q q.npy --k kd.npy --v v.npy "${common[@]}"
mk k3.npy 1,3,53,40 54
mk v3.npy 1,3,53,40 55
expect_fail "Hq 4 not a multiple of Hkv 3" 2 "--k" run --q q.npy --k k3.npy --v v3.npy "${common[@]}"
expect_fail "batch 2 of --k vs 1 of --q" 2 "--k" run --q q.npy --k kb.npy --v vb.npy "${common[@]}"
mk v54.npy 1,2,54,40 56
expect_fail "--v with 54 keys vs --k 53" 2 "--v" run --q q.npy --k k.npy --v v54.npy "${common[@]}"
expect_fail "float16 --k with float32 --q" 2 "--k" run --q q.npy --k kh.npy --v v.npy "${common[@]}"
expect_fail "--window garbage" 2 "--window" run --q q.npy --k k.npy --v v.npy --window abc "${common[@]}"
expect_fail "--window one number" 2 "--window" run --q q.npy --k k.npy --v v.npy --window 3 "${common[@]}"
expect_fail "--window -2,1" 2 "--window" run --q q.npy --k k.npy --v v.npy --window -2,1 "${common[@]}"
expect_fail "--scale nan" 2 "--scale" run --q q.npy --k k.npy --v v.npy --scale nan "${common[@]}"
expect_fail "--scale inf" 2 "--scale" run --q q.npy --k k.npy --v v.npy --scale inf "${common[@]}"
expect_fail "--scale 1.5x" 2 "--scale" run --q q.npy --k k.npy --v v.npy --scale 1.5x "${common[@]}"
expect_fail "--softcap -1" 2 "--softcap" run --q q.npy --k k.npy --v v.npy --softcap -1 "${common[@]}"
expect_fail "--align sideways" 2 "--align" run --q q.npy --k k.npy --v v.npy --align sideways "${common[@]}"
expect_fail "unknown flag" 2 "--frobnicate" run --q q.npy --k k.npy --v v.npy --frobnicate "${common[@]}"
expect_fail "flag given twice" 2 "--causal" run --q q.npy --k k.npy --v v.npy --causal --causal "${common[@]}"
expect_fail "missing value" 2 "--q" run --k k.npy --v v.npy "${common[@]}" --q
expect_fail "missing --v" 2 "--v" run --q q.npy --k k.npy "${common[@]}"
expect_fail "stray positional argument" 2 "extra" run --q q.npy --k k.npy --v v.npy extra "${common[@]}"
expect_fail "--repeat 0" 2 "--repeat" run --q q.npy --k k.npy --v v.npy --repeat 0 "${common[@]}"
expect_fail "unknown --variant" 2 "--variant" run --q q.npy --k k.npy --v v.npy --variant bogus "${common[@]}"
mk lens99.npy 2 61 --dtype i32 --int-range 54,99
expect_fail "--key-lengths above Nk" 2 "--key-lengths" run --q qb.npy --k kb.npy --v vb.npy --key-lengths lens99.npy \
    "${common[@]}"
mk lens3.npy 3 62 --dtype i32 --int-range 0,53
expect_fail "--key-lengths of 3 batches for 2" 2 "--key-lengths" run --q qb.npy --k kb.npy --v vb.npy \
    --key-lengths lens3.npy "${common[@]}"
mk biasbad.npy 3,53 63
expect_fail "--bias [3,53] not broadcastable" 2 "--bias" run --q q.npy --k k.npy --v v.npy --bias biasbad.npy "${common[@]}"
expect_fail "--alibi of 5 slopes for 4 heads" 2 "--alibi" run --q q.npy --k k.npy --v v.npy --alibi bias1.npy \
    "${common[@]}"
# A device spec that parses but names no device is the user's input, exit 2
# (like a malformed one); exit 3 is kept for devices and OpenCL that fail.
expect_fail "--device 9:9 (no such device)" 2 "--device" run --q q.npy --k k.npy --v v.npy --device 9:9 "${common[@]}"
expect_fail "--device 1:x (malformed)" 2 "--device" run --q q.npy --k k.npy --v v.npy --device 1:x "${common[@]}"
# An output in a directory that does not exist is bad input (exit 2), caught before the run.
expect_fail "--out in a missing directory" 2 "--out" run --q q.npy --k k.npy --v v.npy --out "$tmp/nodir/O.npy" \
    --lse "$FL"
[ ! -e "$tmp/nodir" ] && pass "missing directory not created" || fail "missing directory not created"
expect_fail "--lse in a missing directory (and no --out written)" 2 "--lse" run --q q.npy --k k.npy --v v.npy \
    --out "$FO" --lse "$tmp/nodir/L.npy"
expect_fail "--lse same path as --out" 2 "--lse" run --q q.npy --k k.npy --v v.npy --out "$FO" --lse "$FO"

# No platform during run: exit 3 and no output (skipped where the loader ignores OCL_ICD_VENDORS).
rm -f "$FO" "$FL"
OCL_ICD_VENDORS=$tmp/no_icd "$CLATTN" run --q q.npy --k k.npy --v v.npy --out "$FO" >out.txt 2>err.txt
rc=$?
if [ "$rc" -eq 0 ]; then
    skip "no platform: run exits 3 (the ICD loader ignores OCL_ICD_VENDORS)"
elif [ "$rc" -eq 3 ] && grep -q "clattn: error:" err.txt && [ ! -e "$FO" ]; then
    pass "no platform: run exits 3, no output"
else
    fail "no platform: run exits 3, no output" err.txt
fi
rm -f "$FO" "$FL"

# ---------------------------------------------------------------- random: bad usage
expect_fail "random: --shape garbage" 2 "--shape" random --shape 2,x --out "$FO"
expect_fail "random: --shape with 9 dims" 2 "--shape" random --shape 1,1,1,1,1,1,1,1,1 --out "$FO"
expect_fail "random: i32 without --int-range" 2 "--int-range" random --shape 4 --dtype i32 --out "$FO"
expect_fail "random: --int-range with f32" 2 "--int-range" random --shape 4 --int-range 0,3 --out "$FO"
expect_fail "random: --scale 0" 2 "--scale" random --shape 4 --scale 0 --out "$FO"
expect_fail "random: --dtype f64" 2 "--dtype" random --shape 4 --dtype f64 --out "$FO"
expect_fail "random: --seed -1" 2 "--seed" random --shape 4 --seed -1 --out "$FO"
expect_fail "random: missing --out" 2 "--out" random --shape 4
expect_fail "random: --out in a missing directory" 2 "--out" random --shape 4 --out "$tmp/nodir/r.npy"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
