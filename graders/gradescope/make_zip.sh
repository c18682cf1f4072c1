#!/usr/bin/env bash
# Build the zip a course uploads to Gradescope ("Configure Autograder", zip upload).
#
#   graders/gradescope/make_zip.sh                          # -> target/gradescope-autograder.zip
#   graders/gradescope/make_zip.sh --out echo.zip --rubric graders/echo-process.yaml
#
# The zip holds, at its root: setup.sh, run_autograder, grade (a prebuilt release binary),
# graders/ (the rubric and the rubrics it names), base/ (the handout's files, copied under each
# submission so students may hand in only the files they changed), and echograde.env (the
# settings run_autograder reads: RUBRIC, GRADE_FLAGS, GRADE_TIMEOUT).
#
# Options:
#   --out FILE          the zip to write (default target/gradescope-autograder.zip)
#   --dir DIR           lay the zip's contents out in DIR instead of zipping them
#   --grade BIN         the grade binary to ship (default: cargo build --release, then
#                       target/release/grade)
#   --rubric FILE       the rubric or submission rubric (default graders/handout.yaml); every
#                       .yaml beside it is shipped too
#   --server NAME       with an ordinary rubric (e.g. graders/echo-process.yaml): the program
#                       to grade (e.g. echoserverp)
#   --flags "FLAGS"     GRADE_FLAGS for run_autograder (default "--time-scale 2")
#   --timeout SECONDS   GRADE_TIMEOUT (default 540; keep it under the assignment's limit)
#   --base DIR          the files under each submission (default handout/: *.c *.h Makefile);
#                       --no-base ships none
#   --with-source       also ship the grader's source, for setup.sh to build if the binary
#                       does not run on the image
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$REPO/graders/gradescope"
OUT="$REPO/target/gradescope-autograder.zip"
DIR=""
GRADE_BIN=""
RUBRIC="$REPO/graders/handout.yaml"
FLAGS="--time-scale 2"
TIMEOUT=540
BASE="$REPO/handout"
WITH_SOURCE=0
SERVER=""

while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --grade) GRADE_BIN="$2"; shift 2 ;;
        --rubric) RUBRIC="$2"; shift 2 ;;
        --server) SERVER="$2"; shift 2 ;;
        --flags) FLAGS="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --base) BASE="$2"; shift 2 ;;
        --no-base) BASE=""; shift ;;
        --with-source) WITH_SOURCE=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "make_zip.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

[ -f "$RUBRIC" ] || { echo "make_zip.sh: no rubric $RUBRIC" >&2; exit 2; }
if [ -z "$GRADE_BIN" ]; then
    (cd "$REPO" && cargo build --release --locked --bin grade)
    GRADE_BIN="$REPO/target/release/grade"
fi
"$GRADE_BIN" --version >/dev/null || { echo "make_zip.sh: $GRADE_BIN does not run" >&2; exit 2; }

if [ -n "$DIR" ]; then
    STAGE="$DIR"
    mkdir -p "$STAGE"
else
    STAGE="$(mktemp -d)"
    trap 'rm -rf "$STAGE"' EXIT
fi

cp "$HERE/setup.sh" "$HERE/run_autograder" "$STAGE/"
cp "$GRADE_BIN" "$STAGE/grade"
chmod 755 "$STAGE/setup.sh" "$STAGE/run_autograder" "$STAGE/grade"
mkdir -p "$STAGE/graders"
cp "$(dirname "$RUBRIC")"/*.yaml "$STAGE/graders/"
if [ -n "$BASE" ]; then
    mkdir -p "$STAGE/base"
    for f in "$BASE"/*.c "$BASE"/*.h "$BASE"/Makefile; do
        [ -f "$f" ] && cp "$f" "$STAGE/base/"
    done
fi
if [ "$WITH_SOURCE" = 1 ]; then
    mkdir -p "$STAGE/echograde-src"
    (cd "$REPO" && tar cf - --exclude=./target --exclude=./.git .) | tar xf - -C "$STAGE/echograde-src"
fi
{
    echo "# run_autograder's settings (the environment overrides them)."
    printf 'RUBRIC=%q\n' "graders/$(basename "$RUBRIC")"
    printf 'SERVER=%q\n' "$SERVER"
    printf 'GRADE_FLAGS=%q\n' "$FLAGS"
    printf 'GRADE_TIMEOUT=%q\n' "$TIMEOUT"
} > "$STAGE/echograde.env"

if [ -n "$DIR" ]; then
    echo "make_zip.sh: laid out in $DIR"
    exit 0
fi
mkdir -p "$(dirname "$OUT")"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
rm -f "$OUT"
# The files at the zip's root, not in a folder: Gradescope looks for setup.sh there.
entries=(setup.sh run_autograder grade graders echograde.env)
[ -d "$STAGE/base" ] && entries+=(base)
[ -d "$STAGE/echograde-src" ] && entries+=(echograde-src)
if command -v zip >/dev/null 2>&1; then
    (cd "$STAGE" && zip -qr "$OUT" "${entries[@]}")
else
    (cd "$STAGE" && python3 -m zipfile -c "$OUT" "${entries[@]}")
fi
echo "make_zip.sh: wrote $OUT"
