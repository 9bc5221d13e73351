#!/usr/bin/env bash
#
# test_tune.sh - `clattn tune` end to end on a tiny problem: the tuning file
# it writes is valid JSON with one entry per (variant, head dim) for this
# device and driver, the library accepts it (--check-file), the scheduler uses
# its entries (`clattn run --json` reports them, results verified), a second
# run keeps the entries it does not replace (other devices, other dims), a
# malformed existing file is replaced, and bad usage exits 2 writing nothing.
#
# usage: test_tune.sh <path-to-clattn-binary>
# The search is the real one (--quick), on N = 96 with 2 heads, so that the
# candidates build and run in about a minute on two CPU cores.

. "$(dirname "$0")/cli_lib.sh" tune "$@"
if ! command -v python3 >/dev/null; then
    echo "$0: python3 is needed to parse the outputs" >&2
    exit 2
fi
unset CLATTN_PARAMS CLATTN_VARIANT

TINY=(--quick --size 96 --heads 2 --seed 7)

# ---------------------------------------------------------------- help
run tune --help
[ "$rc" -eq 0 ] && grep -q "usage: clattn tune" out.txt && pass "tune --help" || fail "tune --help" out.txt err.txt
run help tune
[ "$rc" -eq 0 ] && grep -q "usage: clattn tune" out.txt && pass "help tune" || fail "help tune" out.txt err.txt
run --help
grep -q "^  tune " out.txt && pass "--help lists tune" || fail "--help lists tune" out.txt

# ---------------------------------------------------------------- a search and its file
start=$(date +%s)
run tune "${TINY[@]}" --variants flash,naive --dim 16,40 --out t.json
secs=$(($(date +%s) - start))
if [ "$rc" -eq 0 ] && [ -s t.json ] && grep -q "default_GF/s" out.txt && grep -q "^clattn tune \[" err.txt; then
    pass "tune --quick --variants flash,naive --dim 16,40: exit 0, table, progress on stderr (${secs} s)"
else
    echo "       (exit $rc)"
    fail "tune --quick: exit 0, table, progress on stderr" out.txt err.txt
fi
ls ./*.tmp.* >/dev/null 2>&1 && fail "tune: no temporary files left" || pass "tune: no temporary files left"
cp out.txt table.txt

# the device and driver the file must name: from the tool's own JSON
"$CLATTN" random --shape 2,50,16 --seed 1 --out q16.npy && "$CLATTN" random --shape 2,50,16 --seed 2 --out k16.npy &&
    "$CLATTN" random --shape 2,50,16 --seed 3 --out v16.npy && "$CLATTN" random --shape 2,33,40 --seed 4 --out q40.npy &&
    "$CLATTN" random --shape 2,33,40 --seed 5 --out k40.npy && "$CLATTN" random --shape 2,33,40 --seed 6 --out v40.npy ||
    fail "random inputs"

cat >check_file.py <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
device = sys.argv[2]
assert doc["format"] == 1, doc.get("format")
mine = [e for e in doc["entries"] if e["device"] == device]
keys = sorted((e["variant"], e["d_max"]) for e in mine)
assert keys == [("flash", 16), ("flash", 40), ("naive", 16), ("naive", 40)], keys
for e in mine:
    assert isinstance(e["driver"], str) and e["driver"], e
    if e["variant"] == "flash":
        for f in ("block_m", "block_n", "rows", "tpr", "vec"):
            assert isinstance(e[f], int) and e[f] >= 1, (f, e)
        assert e["block_m"] % e["rows"] == 0 and e["vec"] in (1, 4), e
    else:
        assert isinstance(e["wg"], int) and e["wg"] >= 1, e
    assert e["source"] in ("tuned", "default"), e
    assert e["gflops"] > 0 and e["default_gflops"] > 0, e
    # never slower than the built-in default in the final head-to-head
    assert e["source"] == "default" or e["gflops"] >= e["default_gflops"], e
print(len(mine))
EOF
run run --q q16.npy --k k16.npy --v v16.npy --variant flash --json
device=$(python3 -c 'import json; print(json.load(open("out.txt"))["device"])' 2>/dev/null)
if python3 check_file.py t.json "$device" >py.txt 2>&1; then
    pass "tuning file: format 1, one entry per (variant, dim) for '$device', fields in range, none slower than the default"
else
    fail "tuning file: entries and fields" py.txt t.json
fi

# the library loads it
run tune --check-file t.json
[ "$rc" -eq 0 ] && grep -q "4 entries apply" out.txt && pass "tune --check-file: valid, 4 entries apply" ||
    fail "tune --check-file: valid, 4 entries apply" out.txt err.txt

# the scheduler uses it: `run --json` reports the entry's parameters, verified
cat >uses_entry.py <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
variant, d_max, source = sys.argv[3], int(sys.argv[4]), sys.argv[5]
p = run["params"]
assert run["verified"] is True, run
if source == "file":
    e = [e for e in doc["entries"] if e["device"] == run["device"] and e["variant"] == variant and e["d_max"] == d_max][0]
    assert p["tuning"] == "tuning-file", p
    fields = ("block_m", "block_n", "rows", "tpr", "vec") if variant != "naive" else ("wg",)
    for f in fields:
        assert p[f] == e[f], (f, p, e)
else:
    assert p.get("tuning") != "tuning-file", p
EOF
for spec in "flash 16 q16 k16 v16" "flash 40 q40 k40 v40" "naive 16 q16 k16 v16" "naive 40 q40 k40 v40"; do
    read -r var dm q k v <<<"$spec"
    CLATTN_TUNING_FILE=$PWD/t.json "$CLATTN" run --q "$q.npy" --k "$k.npy" --v "$v.npy" --variant "$var" --verify --json \
        >run.json 2>err.txt
    rc=$?
    [ "$rc" -eq 0 ] && python3 uses_entry.py run.json t.json "$var" "$dm" file 2>py.txt &&
        pass "run with CLATTN_TUNING_FILE: $var D=$dm uses the file's entry, verified" ||
        fail "run with CLATTN_TUNING_FILE: $var D=$dm uses the file's entry, verified" run.json err.txt py.txt
done
CLATTN_TUNING_FILE=off "$CLATTN" run --q q16.npy --k k16.npy --v v16.npy --variant flash --verify --json >run.json 2>err.txt
rc=$?
[ "$rc" -eq 0 ] && python3 uses_entry.py run.json t.json flash 16 table 2>py.txt &&
    pass "run with CLATTN_TUNING_FILE=off: the built-in table" ||
    fail "run with CLATTN_TUNING_FILE=off: the built-in table" run.json err.txt py.txt

# the before/after of the file, in one process: both sides verified and timed
run tune --compare t.json --variants flash,naive --dim 16,40 --sizes 64,96 --heads 2 --seed 3
cat >compare.py <<'EOF'
import json, re, sys
rows = [l.split() for l in open(sys.argv[1]) if re.match(r"(flash|naive) +\d+ +\d+ +[\d.]+ +[\d.]+ +[\d.]+ ", l)]
assert len(rows) == 8, "%d rows" % len(rows)
doc = json.load(open(sys.argv[2]))
for r in rows:
    v, d = r[0], int(r[1])
    e = [e for e in doc["entries"] if e["device"] == sys.argv[3] and e["variant"] == v and e["d_max"] == d][0]
    line = " ".join(r)
    assert "no entry" not in line, line
    want = "wg=%d" % e["wg"] if v == "naive" else "block_m=%d block_n=%d rows=%d tpr=%d vec=%d" % (
        e["block_m"], e["block_n"], e["rows"], e["tpr"], e["vec"])
    assert want in line, (want, line)
    base, tuned, ratio = float(r[3]), float(r[4]), float(r[5])
    assert base > 0 and tuned > 0 and abs(ratio - tuned / base) <= 0.05 * ratio + 0.01, line
EOF
if [ "$rc" -eq 0 ] && python3 compare.py out.txt t.json "$device" 2>py.txt; then
    pass "tune --compare: built-in against the file's entries, 8 rows, ratios consistent"
else
    fail "tune --compare" out.txt err.txt py.txt
fi
run tune --compare garbage-does-not-exist.json --dim 16 --sizes 32
[ "$rc" -eq 2 ] && grep -q -F "clattn: error: --compare" err.txt && pass "tune --compare of a missing file: exit 2" ||
    fail "tune --compare of a missing file (exit $rc)" err.txt

# ---------------------------------------------------------------- merging into an existing file
python3 - t.json <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["entries"].append({"device": "Some Other GPU", "driver": "9.9", "variant": "flash", "d_max": 64, "block_m": 64,
                       "block_n": 32, "rows": 2, "tpr": 4, "vec": 4})
json.dump(doc, open(sys.argv[1], "w"), indent=1)
EOF
run tune "${TINY[@]}" --variants flash --dim 16 --out t.json
if [ "$rc" -eq 0 ] && python3 check_file.py t.json "$device" >py.txt 2>&1 &&
    python3 -c '
import json
doc = json.load(open("t.json"))
other = [e for e in doc["entries"] if e["device"] == "Some Other GPU"]
assert len(other) == 1 and other[0]["block_m"] == 64, other
assert len(doc["entries"]) == 5, len(doc["entries"])
' 2>>py.txt; then
    pass "tune again (flash, D=16): replaces that entry, keeps the other dims, variants and devices"
else
    fail "tune again: merge" out.txt err.txt py.txt
fi

echo "not json" >bad.json
run tune "${TINY[@]}" --variants naive --dim 16 --out bad.json
[ "$rc" -eq 0 ] && grep -q "not a valid tuning file, replacing it" err.txt &&
    python3 -c 'import json; d = json.load(open("bad.json")); assert len(d["entries"]) == 1' 2>py.txt &&
    pass "tune over a malformed file: warns and replaces it" || fail "tune over a malformed file" out.txt err.txt py.txt

run tune "${TINY[@]}" --variants naive --dim 16 --out -
[ "$rc" -eq 0 ] && python3 -c 'import json; d = json.load(open("out.txt")); assert d["entries"][0]["variant"] == "naive"' 2>py.txt &&
    grep -q "default_GF/s" err.txt && pass "tune --out -: the file on stdout, the table on stderr" ||
    fail "tune --out -" out.txt err.txt py.txt

# the default output is the file the scheduler reads (here: in the cache directory, created)
mkdir -p cachehome
CLATTN_CACHE_DIR=$PWD/cachehome/sub/clattn "$CLATTN" tune "${TINY[@]}" --variants naive --dim 16 >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 0 ] && [ -s cachehome/sub/clattn/tuning.json ] &&
    CLATTN_CACHE_DIR=$PWD/cachehome/sub/clattn "$CLATTN" run --q q16.npy --k k16.npy --v v16.npy --variant naive --json \
        >run.json 2>>err.txt && grep -q '"tuning":"tuning-file"' run.json &&
    pass "tune without --out: writes <cache dir>/tuning.json, which run picks up" ||
    fail "tune without --out: default path" out.txt err.txt run.json

# ---------------------------------------------------------------- --check-file on bad files
printf '{"format": 1, "entries": [{"device": "x", "driver": "y", "variant": "naive", "d_max": 64}]}' >nowg.json
echo "garbage" >garbage.json
for f in garbage.json nowg.json missing.json; do
    run tune --check-file "$f"
    [ "$rc" -eq 2 ] && grep -q -F "clattn: error: --check-file" err.txt && grep -q -F "$f" err.txt &&
        pass "tune --check-file $f: exit 2, message names the file" || fail "tune --check-file $f (exit $rc)" err.txt
done

# ---------------------------------------------------------------- bad usage: exit 2, nothing written
mkdir -p bad
bad_tune() { # NAME ARG FLAGS...
    local name=$1 arg=$2
    shift 2
    rm -rf bad/*
    "$CLATTN" tune "$@" >out.txt 2>err.txt
    rc=$?
    local why=""
    [ "$rc" -eq 2 ] || why="exit $rc, expected 2"
    grep -q -F -e "clattn: error: $arg" err.txt || why="$why; stderr does not name $arg"
    [ -z "$(ls -A bad)" ] || why="$why; files written: $(ls -A bad | tr '\n' ' ')"
    if [ -z "$why" ]; then
        pass "tune bad usage: $name"
    else
        echo "       ($why)"
        fail "tune bad usage: $name" err.txt
    fi
}
bad_tune "unknown flag" --frobnicate --frobnicate --out bad/t.json
bad_tune "--dim 0" --dim --dim 0 --out bad/t.json
bad_tune "--dim 257" --dim --dim 257 --out bad/t.json
bad_tune "--dim 16,16" --dim --dim 16,16 --out bad/t.json
bad_tune "--dim x" --dim --dim x --out bad/t.json
bad_tune "--variants bogus" --variants --variants flash,bogus --out bad/t.json
bad_tune "--variants gemm" --variants --variants gemm --out bad/t.json
bad_tune "--variants decode" --variants --variants decode --out bad/t.json
bad_tune "--variants auto" --variants --variants auto --out bad/t.json
bad_tune "--size 0" --size --size 0 --out bad/t.json
bad_tune "--heads 0" --heads --heads 0 --out bad/t.json
bad_tune "--seed x" --seed --seed x --out bad/t.json
bad_tune "--quick=1" --quick --quick=1 --out bad/t.json
bad_tune "--out in a missing directory" --out --out bad/nodir/t.json
bad_tune "--check-file with --dim" --dim --check-file t.json --dim 16
bad_tune "--compare with --out" --out --compare t.json --out bad/t.json
bad_tune "--sizes without --compare" --sizes --sizes 64 --out bad/t.json
bad_tune "--compare --sizes 0" --sizes --compare t.json --sizes 0
rm -rf bad/*
CLATTN_TUNING_FILE=off "$CLATTN" tune --variants naive --dim 16 >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--out" err.txt && pass "tune with CLATTN_TUNING_FILE=off and no --out: exit 2" ||
    fail "tune with CLATTN_TUNING_FILE=off and no --out (exit $rc)" err.txt

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
