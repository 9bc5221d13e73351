#!/usr/bin/env bash
#
# test_mha_cli.sh - `clattn mha` end to end: verified layer runs on odd shapes
# (cross-attention E=72 H=3 N=37 M=53, grouped-query heads, causal, RoPE,
# biases, 2-D inputs, odd head dims, several attention cores), a forced
# verification failure, and malformed input, where every case must exit with
# the documented code (0 ok, 1 verification failed, 2 bad usage or input),
# name the offending argument on stderr and leave no output file behind.
#
# usage: test_mha_cli.sh <path-to-clattn-binary>
# Inputs come from `clattn random` (no numpy needed).

. "$(dirname "$0")/cli_lib.sh" mha-cli "$@"

# has_shape FILE SHAPE: a float32 .npy of this shape, e.g. '(2, 37, 72)'.
has_shape() {
    head -c 256 "$1" 2>/dev/null | grep -a -q -F "'descr': '<f4'" &&
        head -c 256 "$1" | grep -a -q -F "'shape': $2"
}

# expect_verified NAME SHAPE CMD...: exit 0, "verification passed", y.npy of SHAPE written.
expect_verified() {
    local name=$1 shape=$2
    shift 2
    rm -f y.npy
    run "$@" --out y.npy --verify
    if [ "$rc" -eq 0 ] && grep -q "verification passed" out.txt && has_shape y.npy "$shape"; then
        pass "$name: $(grep -o 'y max error [^ ]*' out.txt)"
    else
        echo "       (exit $rc)"
        fail "$name" out.txt err.txt
    fi
}

FO=$tmp/fail_y.npy
# expect_fail NAME CODE ARG CMD...: expect_error (cli_lib.sh) on CMD --out $FO.
expect_fail() {
    expect_error "$@" --out "$FO"
}

# ---------------------------------------------------------------- help
run mha --help
[ "$rc" -eq 0 ] && grep -q "usage: clattn mha" out.txt && pass "mha --help" || fail "mha --help" out.txt err.txt
run help mha
[ "$rc" -eq 0 ] && grep -q -- "--kv-heads" out.txt && pass "help mha" || fail "help mha" out.txt err.txt
run --help
[ "$rc" -eq 0 ] && grep -q "^  mha " out.txt && pass "--help lists mha" || fail "--help lists mha" out.txt

# ---------------------------------------------------------------- inputs
# E = 72, H = 3 (Dh = 24), Hkv = 1 or 3; weights scaled like torch's nn.Linear (1/sqrt(E)).
w=0.1178
mk x.npy 2,37,72 1
mk kv.npy 2,53,72 2
mk x2.npy 37,72 3
mk wq.npy 72,72 4 --scale $w
mk wo.npy 72,72 5 --scale $w
mk wk.npy 72,72 6 --scale $w
mk wv.npy 72,72 7 --scale $w
mk wk1.npy 24,72 8 --scale $w
mk wv1.npy 24,72 9 --scale $w
mk bq.npy 72 10 --scale 0.5
mk bo.npy 72 11 --scale 0.5
mk bk1.npy 24 12 --scale 0.5
mk bv1.npy 24 13 --scale 0.5
mk bk.npy 72 14 --scale 0.5
# E = 45, H = 3: odd head dimension 15 (no RoPE)
mk xo.npy 2,11,45 15
mk kvo.npy 2,19,45 16
mk wqo.npy 45,45 17 --scale 0.15
mk wko.npy 45,45 18 --scale 0.15
mk wvo.npy 45,45 19 --scale 0.15
mk woo.npy 45,45 20 --scale 0.15
mk xh.npy 2,37,72 21 --dtype f16
mk x1.npy 2,1,72 22
mk kvl.npy 2,1100,72 23

W1=(--wq wq.npy --wk wk1.npy --wv wv1.npy --wo wo.npy)
B1=(--bq bq.npy --bk bk1.npy --bv bv1.npy --bo bo.npy)
W3=(--wq wq.npy --wk wk.npy --wv wv.npy --wo wo.npy)

# ---------------------------------------------------------------- verified runs
expect_verified "cross GQA 3/1, causal, RoPE, every bias (E72 N37 M53)" '(2, 37, 72)' \
    mha --x x.npy --kv kv.npy "${W1[@]}" "${B1[@]}" --heads 3 --kv-heads 1 --causal --rope 10000
expect_verified "cross, no bias, no RoPE" '(2, 37, 72)' mha --x x.npy --kv kv.npy "${W3[@]}" --heads 3
expect_verified "self, causal, RoPE, bq and bk only" '(2, 37, 72)' \
    mha --x x.npy "${W3[@]}" --bq bq.npy --bk bk.npy --heads 3 --causal --rope 500
expect_verified "self 2-D x [37,72], GQA 6/2 (Dh 12)" '(37, 72)' \
    mha --x x2.npy --wq wq.npy --wk wk1.npy --wv wv1.npy --wo wo.npy --heads 6 --kv-heads 2 --causal --rope 10000
expect_verified "one query against 1100 keys, core decode" '(2, 1, 72)' \
    mha --x x1.npy --kv kvl.npy "${W1[@]}" "${B1[@]}" --heads 3 --kv-heads 1 --rope 10000 --variant decode
expect_verified "odd head dim 15 (E45 H3), cross, causal" '(2, 11, 45)' \
    mha --x xo.npy --kv kvo.npy --wq wqo.npy --wk wko.npy --wv wvo.npy --wo woo.npy --heads 3 --causal
for v in naive tiled flash gemm; do
    expect_verified "core $v" '(2, 37, 72)' \
        mha --x x.npy --kv kv.npy "${W1[@]}" "${B1[@]}" --heads 3 --kv-heads 1 --causal --rope 10000 --variant "$v"
done

run mha --x x.npy --kv kv.npy "${W1[@]}" "${B1[@]}" --heads 3 --kv-heads 1 --rope 10000 --verify --json
if [ "$rc" -eq 0 ] && grep -q '"verified":true' out.txt && grep -q '"M":53' out.txt &&
    grep -q '"outputs":\[\]' out.txt && [ "$(wc -l <out.txt)" -eq 1 ]; then
    pass "mha --json: one object, \"verified\":true"
else
    fail "mha --json: one object, \"verified\":true" out.txt err.txt
fi

# ---------------------------------------------------------------- verification failure
rm -f "$tmp"/fail_*
CLATTN_MHA_FORCE_FAIL=1 "$CLATTN" mha --x x.npy "${W3[@]}" --heads 3 --verify --out "$FO" >out.txt 2>err.txt
rc=$?
if [ "$rc" -eq 1 ] && grep -q "clattn: error: --verify:" err.txt && grep -q "verification FAILED" out.txt &&
    ! compgen -G "$tmp/fail_*" >/dev/null; then
    pass "a wrong result fails --verify: exit 1, no output file"
else
    echo "       (exit $rc)"
    fail "a wrong result fails --verify: exit 1, no output file" out.txt err.txt
fi

# ---------------------------------------------------------------- bad usage and input (exit 2)
expect_fail "missing --x" 2 "--x" mha "${W3[@]}" --heads 3
expect_fail "missing --wo" 2 "--wo" mha --x x.npy --wq wq.npy --wk wk.npy --wv wv.npy --heads 3
expect_fail "missing --heads" 2 "--heads" mha --x x.npy "${W3[@]}"
expect_fail "--heads 5 does not divide E 72" 2 "--heads" mha --x x.npy "${W3[@]}" --heads 5
expect_fail "--heads 0" 2 "--heads" mha --x x.npy "${W3[@]}" --heads 0
expect_fail "--heads abc" 2 "--heads" mha --x x.npy "${W3[@]}" --heads abc
expect_fail "--kv-heads 2 does not divide 3" 2 "--kv-heads" mha --x x.npy "${W3[@]}" --heads 3 --kv-heads 2
expect_fail "--wk [72,72] with 1 kv head" 2 "--wk" mha --x x.npy "${W3[@]}" --heads 3 --kv-heads 1
expect_fail "--wq [24,72]" 2 "--wq" mha --x x.npy --wq wk1.npy --wk wk.npy --wv wv.npy --wo wo.npy --heads 3
expect_fail "--bq [24]" 2 "--bq" mha --x x.npy "${W3[@]}" --bq bk1.npy --heads 3
expect_fail "--bv [72] with 1 kv head" 2 "--bv" mha --x x.npy "${W1[@]}" --bv bk.npy --heads 3 --kv-heads 1
expect_fail "--kv with another E" 2 "--kv" mha --x x.npy --kv kvo.npy "${W3[@]}" --heads 3
expect_fail "--kv with another B" 2 "--kv" mha --x x.npy --kv x2.npy "${W3[@]}" --heads 3
expect_fail "--x float16" 2 "--x" mha --x xh.npy "${W3[@]}" --heads 3
expect_fail "--x 1-D" 2 "--x" mha --x bq.npy "${W3[@]}" --heads 3
expect_fail "--rope 0" 2 "--rope" mha --x x.npy "${W3[@]}" --heads 3 --rope 0
expect_fail "--rope nan" 2 "--rope" mha --x x.npy "${W3[@]}" --heads 3 --rope nan
expect_fail "--rope with odd head dim" 2 "--rope" \
    mha --x xo.npy --wq wqo.npy --wk wko.npy --wv wvo.npy --wo woo.npy --heads 3 --rope 10000
expect_fail "--wq missing file" 2 "--wq" mha --x x.npy --wq nope.npy --wk wk.npy --wv wv.npy --wo wo.npy --heads 3
expect_fail "unknown option" 2 "--bogus" mha --x x.npy "${W3[@]}" --heads 3 --bogus
expect_fail "--variant bogus" 2 "--variant" mha --x x.npy "${W3[@]}" --heads 3 --variant bogus
expect_fail "--variant decode (N 37 > 16)" 2 "--variant" mha --x x.npy "${W3[@]}" --heads 3 --variant decode
expect_fail "--device no-such-device" 2 "--device" mha --x x.npy "${W3[@]}" --heads 3 --device no-such-device
run mha --x x.npy "${W3[@]}" --heads 3 --out "$tmp/no/such/dir/y.npy"
[ "$rc" -eq 2 ] && grep -q -- "--out" err.txt && pass "--out in a missing directory" ||
    fail "--out in a missing directory" err.txt

echo "test_mha_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
