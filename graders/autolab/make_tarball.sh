#!/usr/bin/env bash
# Build autograde.tar, the file an Autolab assessment's autograder runs with (next to
# autograde-Makefile, uploaded as the assessment's "Makefile").
#
#   graders/autolab/make_tarball.sh                  # -> target/autolab/autograde.tar + autograde-Makefile
#   graders/autolab/make_tarball.sh --rubric graders/autolab/echo-autolab.yaml --out-dir DIR
#
# autograde.tar holds one folder, echograde/, so it never clobbers the handin: grade (a
# prebuilt release binary, glibc 2.34 or newer: build it on a machine no newer than the
# grading image), driver.sh, graders/ (the rubric and every .yaml beside it), base/ (the
# handout's files, under each handin) and echograde.env (RUBRIC, GRADE_FLAGS, GRADE_TIMEOUT).
#
# Options:
#   --out-dir DIR       where autograde.tar and autograde-Makefile go (default target/autolab)
#   --grade BIN         the grade binary to ship (default: cargo build --release)
#   --rubric FILE       default graders/autolab/handout.yaml (fits Tango's 100 processes)
#   --server NAME       with an ordinary rubric (e.g. echo-autolab.yaml): the program to
#                       grade; the Autolab problems are then the rubric's check ids
#   --flags "FLAGS"     GRADE_FLAGS (default "--time-scale 2": Tango's VMs are often small)
#   --timeout SECONDS   GRADE_TIMEOUT (default 240; keep it under the assessment's
#                       autograding timeout)
#   --handin NAME       the assessment's handin filename (default handin.tar), written into
#                       the Makefile
#   --base DIR          the files under each handin (default handout/); --no-base: none
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$REPO/graders/autolab"
OUT_DIR="$REPO/target/autolab"
GRADE_BIN=""
RUBRIC="$HERE/handout.yaml"
FLAGS="--time-scale 2"
TIMEOUT=240
HANDIN="handin.tar"
SERVER=""
BASE="$REPO/handout"

while [ $# -gt 0 ]; do
    case "$1" in
        --out-dir) OUT_DIR="$2"; shift 2 ;;
        --grade) GRADE_BIN="$2"; shift 2 ;;
        --rubric) RUBRIC="$2"; shift 2 ;;
        --server) SERVER="$2"; shift 2 ;;
        --flags) FLAGS="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --handin) HANDIN="$2"; shift 2 ;;
        --base) BASE="$2"; shift 2 ;;
        --no-base) BASE=""; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "make_tarball.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

[ -f "$RUBRIC" ] || { echo "make_tarball.sh: no rubric $RUBRIC" >&2; exit 2; }
if [ -z "$GRADE_BIN" ]; then
    (cd "$REPO" && cargo build --release --locked --bin grade)
    GRADE_BIN="$REPO/target/release/grade"
fi
"$GRADE_BIN" --version >/dev/null || { echo "make_tarball.sh: $GRADE_BIN does not run" >&2; exit 2; }

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
E="$STAGE/echograde"
mkdir -p "$E/graders"
cp "$GRADE_BIN" "$E/grade"
cp "$HERE/driver.sh" "$E/driver.sh"
chmod 755 "$E/grade" "$E/driver.sh"
cp "$(dirname "$RUBRIC")"/*.yaml "$E/graders/"
if [ -n "$BASE" ]; then
    mkdir -p "$E/base"
    for f in "$BASE"/*.c "$BASE"/*.h "$BASE"/Makefile; do
        [ -f "$f" ] && cp "$f" "$E/base/"
    done
fi
{
    echo "# driver.sh's settings (the environment overrides them)."
    printf 'RUBRIC=%q\n' "graders/$(basename "$RUBRIC")"
    printf 'SERVER=%q\n' "$SERVER"
    printf 'GRADE_FLAGS=%q\n' "$FLAGS"
    printf 'GRADE_TIMEOUT=%q\n' "$TIMEOUT"
} > "$E/echograde.env"

mkdir -p "$OUT_DIR"
tar cf "$OUT_DIR/autograde.tar" -C "$STAGE" echograde
sed "s/^HANDIN ?= .*/HANDIN ?= $HANDIN/" "$HERE/autograde-Makefile" > "$OUT_DIR/autograde-Makefile"
echo "make_tarball.sh: wrote $OUT_DIR/autograde.tar and $OUT_DIR/autograde-Makefile (handin: $HANDIN)"
