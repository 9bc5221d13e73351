#!/usr/bin/env bash
#
# test_tools.sh - `clattn prof` and `clattn check` end to end: prof's JSON, CSV
# and SVG outputs (parsed with python3: exact JSON fields and CSV columns, one
# SVG polyline and legend entry per variant), exit 2 and no file on bad usage;
# check's seed reproducibility (two runs, identical report) and a failure's
# printed reproduce command running exactly that case again.
#
# usage: test_tools.sh <path-to-clattn-binary>
# The forced failure uses the tool's hidden test hook CLATTN_CHECK_FORCE_FAIL=K,
# which puts a NaN in case K's device result after it is read back.

. "$(dirname "$0")/cli_lib.sh" tools "$@"
if ! command -v python3 >/dev/null; then
    echo "$0: python3 is needed to parse the outputs" >&2
    exit 2
fi

FIELDS='variant,device,B,H,Hkv,Nq,Nk,D,causal,dtype,ms_median,ms_min,ms_max,gflops,gbps,verified,max_err,params'

# ---------------------------------------------------------------- help
run --help
grep -q "prof" out.txt && grep -q "check" out.txt && pass "--help lists prof and check" ||
    fail "--help lists prof and check" out.txt
for cmd in prof check; do
    run "$cmd" --help
    [ "$rc" -eq 0 ] && grep -q "usage: clattn $cmd" out.txt && pass "$cmd --help" || fail "$cmd --help" out.txt err.txt
    run help "$cmd"
    [ "$rc" -eq 0 ] && grep -q "usage: clattn $cmd" out.txt && pass "help $cmd" || fail "help $cmd" out.txt err.txt
done

# ---------------------------------------------------------------- prof: JSON, CSV, SVG
TINY=(--sizes 32,64 --heads 2 --dim 16 --repeat 2 --min-time 0)
run prof "${TINY[@]}" --json p.json --csv p.csv --plot p.svg
if [ "$rc" -eq 0 ] && [ -s p.json ] && [ -s p.csv ] && [ -s p.svg ]; then
    pass "prof --json --csv --plot: exit 0, three files"
else
    echo "       (exit $rc)"
    fail "prof --json --csv --plot: exit 0, three files" out.txt err.txt
fi
grep -q "ceilings (probe kernels): f32 FMA" out.txt && grep -q "%FMA" out.txt && pass "prof: table with the probe ceilings" ||
    fail "prof: table with the probe ceilings" out.txt
ls ./*.tmp.* >/dev/null 2>&1 && fail "prof: no temporary files left" || pass "prof: no temporary files left"

cat >check_outputs.py <<'EOF'
import csv, json, sys
import xml.etree.ElementTree as ET

fields = sys.argv[1].split(",")
recs = json.load(open("p.json"))
assert isinstance(recs, list) and recs, "JSON is not a non-empty array"
for r in recs:
    assert list(r.keys()) == fields, "record fields %s" % list(r.keys())
    assert r["verified"] is True, "not verified: %s" % r
    assert isinstance(r["params"], dict) and r["params"].get("variant"), "params %r" % r["params"]
    assert r["Nq"] == r["Nk"] and r["Nq"] in (32, 64) and r["H"] == 2 and r["Hkv"] == 2 and r["D"] == 16
    assert r["causal"] is False and r["dtype"] == "f32" and r["B"] == 1
    assert 0 < r["ms_min"] <= r["ms_median"] <= r["ms_max"], "times %s" % r
    assert r["gflops"] > 0 and r["gbps"] > 0 and r["max_err"] >= 0
variants = sorted({r["variant"] for r in recs})
for v in variants:
    assert sorted(r["Nq"] for r in recs if r["variant"] == v) == [32, 64], "variant %s lacks a size" % v
assert "naive" in variants, "naive did not run"

rows = list(csv.reader(open("p.csv", newline="")))
assert rows[0] == fields, "CSV header %s" % rows[0]
assert len(rows) == len(recs) + 1, "CSV has %d rows for %d records" % (len(rows) - 1, len(recs))
for row, r in zip(rows[1:], recs):
    assert len(row) == len(fields), "CSV row of %d columns" % len(row)
    assert row[0] == r["variant"] and int(row[5]) == r["Nq"], "CSV row %s" % row
    assert json.loads(row[-1]) == r["params"], "CSV params %s" % row[-1]

ns = "{http://www.w3.org/2000/svg}"
root = ET.parse("p.svg").getroot()
assert root.tag == ns + "svg", "root %s" % root.tag
lines = [p.get("data-variant") for p in root.iter(ns + "polyline")]
legend = [t.text for t in root.iter(ns + "text") if t.get("class") == "legend"]
assert sorted(lines) == variants, "polylines %s, variants %s" % (lines, variants)
assert sorted(legend) == variants, "legend %s, variants %s" % (legend, variants)
for p in root.iter(ns + "polyline"):
    assert len(p.get("points").split()) == 2, "polyline of %s has not 2 points" % p.get("data-variant")
texts = " ".join(t.text or "" for t in root.iter(ns + "text"))
assert "GFLOP/s" in texts and "sequence length N" in texts and "B=1 H=2 Hkv=2 D=16" in texts, texts
print("records %d, variants %s" % (len(recs), ",".join(variants)))
EOF
if python3 check_outputs.py "$FIELDS" >py.txt 2>&1; then
    pass "prof outputs: JSON fields, CSV columns, SVG polyline and legend per variant ($(cat py.txt))"
else
    fail "prof outputs: JSON fields, CSV columns, SVG polyline and legend per variant" py.txt
fi

# Skipped variants are reported in the table, with their reason, and not recorded.
if python3 -c '
import json, re
recs = {(r["variant"], r["Nq"]) for r in json.load(open("p.json"))}
skips = [(m.group(1), int(m.group(2))) for m in (re.match(r"(\w+) +(\d+) +skipped: \S", l) for l in open("out.txt")) if m]
assert not recs & set(skips), "skipped and recorded: %s" % (recs & set(skips))
ran = {v for v, n in recs} | {v for v, n in skips}
assert ran >= {"naive", "tiled", "flash"}, "default variants %s" % ran
' 2>py.txt; then
    pass "prof: default variants all reported (run or skipped with a reason)"
else
    fail "prof: default variants all reported (run or skipped with a reason)" out.txt py.txt
fi

run prof --sizes 48 --heads 4 --kv-heads 2 --dim 24 --causal --dtype f16 --variants naive,flash --repeat 2 \
    --min-time 0 --lse --json -
if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(open("out.txt"))
assert len(r) == 2 and all(x["verified"] is True and x["causal"] is True and x["dtype"] == "f16" and x["Hkv"] == 2 for x in r), r
' 2>py.txt && grep -q "^variant" err.txt; then
    pass "prof --json - (f16, causal, GQA, LSE): JSON on stdout, table on stderr"
else
    fail "prof --json - (f16, causal, GQA, LSE): JSON on stdout, table on stderr" out.txt err.txt py.txt
fi
run prof --sizes 40 --heads 2 --dim 8 --dtype bf16 --variants naive --repeat 2 --min-time 0 --json -
python3 -c 'import json; r = json.load(open("out.txt")); assert len(r) == 1 and r[0]["verified"] is True and r[0]["dtype"] == "bf16"' 2>py.txt &&
    [ "$rc" -eq 0 ] && pass "prof --dtype bf16" || fail "prof --dtype bf16" out.txt err.txt py.txt
run prof --sizes 40 --heads 2 --dim 8 --variants naive --repeat 3 --min-time 0 --no-verify --json -
python3 -c 'import json; r = json.load(open("out.txt")); assert r[0]["verified"] is None and r[0]["max_err"] is None' 2>py.txt &&
    [ "$rc" -eq 0 ] && pass "prof --no-verify: verified null" || fail "prof --no-verify: verified null" out.txt err.txt py.txt

# Bad usage: exit 2, an error naming the flag, and no file at all.
mkdir -p bad
bad_prof() { # NAME ARG FLAGS...
    local name=$1 arg=$2
    shift 2
    rm -rf bad/*
    "$CLATTN" prof "$@" --json bad/p.json --csv bad/p.csv --plot bad/p.svg >out.txt 2>err.txt
    rc=$?
    local why=""
    [ "$rc" -eq 2 ] || why="exit $rc, expected 2"
    grep -q -F -e "clattn: error: $arg" err.txt || why="$why; stderr does not name $arg"
    [ -z "$(ls -A bad)" ] || why="$why; files written: $(ls -A bad | tr '\n' ' ')"
    if [ -z "$why" ]; then
        pass "prof bad usage: $name"
    else
        echo "       ($why)"
        fail "prof bad usage: $name" err.txt
    fi
}
bad_prof "unknown flag" --frobnicate --frobnicate
bad_prof "--sizes 32,x" --sizes --sizes 32,x
bad_prof "--sizes 0" --sizes --sizes 0
bad_prof "--variants bogus" --variants --variants naive,bogus
bad_prof "--dtype f64" --dtype --dtype f64
bad_prof "--dim 0" --dim --dim 0
bad_prof "--dim 257" --dim --dim 257
bad_prof "--kv-heads 3 for 8 heads" --kv-heads --kv-heads 3
bad_prof "--repeat 0" --repeat --repeat 0
bad_prof "--min-time -1" --min-time --min-time -1
bad_prof "--causal twice" --causal --causal --causal
bad_prof "--device 9:9" --device --device 9:9 --sizes 16
rm -rf bad/*
run prof --sizes 16 --json bad/nodir/p.json --plot bad/p.svg
[ "$rc" -eq 2 ] && [ -z "$(ls -A bad)" ] && grep -q -- "--json" err.txt && pass "prof: --json in a missing directory, exit 2, nothing written" ||
    fail "prof: --json in a missing directory, exit 2, nothing written" err.txt

# ---------------------------------------------------------------- check: seed reproducibility
run check --count 30 --seed 7
cp out.txt check1.txt
rc1=$rc
run check --count 30 --seed 7
if [ "$rc1" -eq 0 ] && [ "$rc" -eq 0 ] && grep -q "seed 7" check1.txt &&
    grep -q "^summary: 30 cases, [0-9]* passed, 0 failed" check1.txt && cmp -s check1.txt out.txt; then
    pass "check --count 30 --seed 7 passes twice with an identical report"
else
    echo "       (exit $rc1 then $rc)"
    fail "check --count 30 --seed 7 passes twice with an identical report" check1.txt out.txt err.txt
fi
# At least 20 of the 30 must really run (skips are counted, never passed).
n_passed=$(sed -n 's/^summary: 30 cases, \([0-9]*\) passed.*/\1/p' check1.txt)
[ "${n_passed:-0}" -ge 20 ] && pass "check: $n_passed of 30 cases compared" || fail "check: ${n_passed:-0} of 30 cases compared" check1.txt

run check --count 5 --seed 7 --json ck.json
python3 -c '
import json
j = json.load(open("ck.json"))
assert j["seed"] == 7 and j["count"] == 5 and j["failed"] == 0 and j["passed"] + j["skipped"] == 5, j
assert set(j) >= {"seed", "device", "passed", "failed", "skipped", "skip_reasons", "worst", "failures"}, j
' 2>py.txt && [ "$rc" -eq 0 ] && pass "check --json FILE" || fail "check --json FILE" out.txt err.txt py.txt

run check --count 3
if [ "$rc" -eq 0 ] && seed=$(sed -n 's/^clattn check: seed \([0-9]*\),.*/\1/p' out.txt) && [ -n "$seed" ]; then
    pass "check without --seed prints the seed it drew ($seed)"
else
    fail "check without --seed prints the seed it drew" out.txt err.txt
fi

# ---------------------------------------------------------------- check: a failure and its reproduce command
CLATTN_CHECK_FORCE_FAIL=4 "$CLATTN" check --count 8 --seed 7 >out.txt 2>err.txt
rc=$?
repro=$(sed -n 's/^     reproduce: //p' out.txt | head -1)
failline=$(grep '^FAIL case ' out.txt | head -1)
if [ "$rc" -eq 1 ] && [ "$repro" = "clattn check --seed 7 --case 4" ] && grep -q "^summary: 8 cases, .* 1 failed" out.txt &&
    [ "${failline#FAIL case 4: }" != "$failline" ]; then
    pass "check: a forced failure exits 1 and prints 'clattn check --seed 7 --case 4'"
else
    echo "       (exit $rc, reproduce '$repro')"
    fail "check: a forced failure exits 1 and prints its reproduce command" out.txt err.txt
fi
# The printed command, run as printed (with the hook still set), fails on exactly that case.
read -r -a words <<<"$repro"
if [ "${words[0]:-}" = clattn ]; then
    CLATTN_CHECK_FORCE_FAIL=4 "$CLATTN" "${words[@]:1}" >out2.txt 2>err.txt
    rc=$?
    if [ "$rc" -eq 1 ] && grep -q -x -F -e "$failline" out2.txt && grep -q "^summary: 1 cases, 0 passed, 1 failed" out2.txt; then
        pass "check: the reproduce command re-runs exactly case 4 (same description, same failure)"
    else
        echo "       (exit $rc)"
        fail "check: the reproduce command re-runs exactly case 4" out2.txt err.txt
    fi
    "$CLATTN" "${words[@]:1}" >out3.txt 2>err.txt
    rc=$?
    desc=${failline#FAIL case 4: }
    [ "$rc" -eq 0 ] && grep -q "^summary: 1 cases, 1 passed" out3.txt && pass "check: case 4 itself passes without the hook" ||
        fail "check: case 4 itself passes without the hook" out3.txt err.txt
    [ -n "$desc" ] && pass "check: failure description printed ($desc)" || fail "check: failure description printed" out.txt
else
    fail "check: no reproduce command to run" out.txt
fi

# Bad usage of check: exit 2.
for args in "--count 0" "--count x" "--seed -1" "--variants bogus" "--case x" "--frobnicate"; do
    # shellcheck disable=SC2086
    run check $args
    [ "$rc" -eq 2 ] && grep -q "clattn: error:" err.txt && pass "check bad usage: $args" || fail "check bad usage: $args (exit $rc)" err.txt
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
