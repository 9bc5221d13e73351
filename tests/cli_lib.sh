# cli_lib.sh - what the tool's shell tests share. Sourced first thing:
#   . "$(dirname "$0")/cli_lib.sh" NAME "$@"
# checks the one argument (the clattn binary) into $CLATTN, moves into a fresh
# temporary directory clattn-NAME.XXXXXX (removed on exit), and defines
#   pass NAME, fail NAME [FILE...] (shows what the tool printed), skip NAME:
#     one line per check, counted in $passed, $failed, $skipped;
#   run ARGS...: the tool with stdout in out.txt, stderr in err.txt, exit code in $rc;
#   expect_error NAME CODE ARG CMD...: a run that must fail (see below);
#   mk FILE SHAPE SEED [OPTIONS]: an input made with `clattn random`.
# shellcheck shell=bash

set -u

_cli_name=$1
shift
if [ $# -ne 1 ]; then
    echo "usage: $0 <path-to-clattn-binary>" >&2
    exit 2
fi
case $1 in
/*) CLATTN=$1 ;;
*) CLATTN=$PWD/$1 ;;
esac
if [ ! -x "$CLATTN" ]; then
    echo "$0: $CLATTN is not an executable" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/clattn-$_cli_name.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 2

passed=0
failed=0
skipped=0

pass() {
    passed=$((passed + 1))
    echo "ok   $1"
}

fail() {
    local name=$1
    shift
    failed=$((failed + 1))
    echo "FAIL $name"
    local f
    for f in "$@"; do
        [ -s "$f" ] && sed 's/^/       | /' "$f" | head -30
    done
}

skip() {
    skipped=$((skipped + 1))
    echo "skip $1"
}

run() {
    "$CLATTN" "$@" >out.txt 2>err.txt
    rc=$?
}

# expect_error NAME CODE ARG CMD...: exit CODE, "clattn: error:" and ARG on
# stderr, and no file named fail_* (the failing cases' outputs, or a temporary
# file of one) left in the test directory.
expect_error() {
    local name=$1 code=$2 arg=$3
    shift 3
    rm -f "$tmp"/fail_*
    run "$@"
    local why=""
    [ "$rc" -eq "$code" ] || why="exit $rc, expected $code"
    grep -q -F "clattn: error:" err.txt || why="$why; no 'clattn: error:' on stderr"
    grep -q -F -e "$arg" err.txt || why="$why; stderr does not name $arg"
    if compgen -G "$tmp/fail_*" >/dev/null; then
        why="$why; output files exist: $(cd "$tmp" && echo fail_*)"
    fi
    if [ -z "$why" ]; then
        pass "$name"
    else
        echo "       (${why#; })"
        fail "$name" err.txt
    fi
    rm -f "$tmp"/fail_*
}

# mk FILE SHAPE SEED [OPTIONS]: `clattn random` into FILE; stops the script if it fails.
mk() {
    local f=$1 shape=$2 seed=$3
    shift 3
    "$CLATTN" random --shape "$shape" --seed "$seed" --out "$f" "$@" || {
        echo "FAIL could not make $f with clattn random" >&2
        exit 1
    }
}
