#!/usr/bin/env bash
# Runs in Autolab's grading VM (started by autograde-Makefile, from the unpacked autograde.tar):
# unpack the handin into a fresh folder over the handout's files, build and grade it with
# `grade --format autolab`, and make sure the last line of standard output is Autolab's JSON
# whatever happens. Always exits 0.
#
# Settings (environment, or echograde.env beside this script written by make_tarball.sh):
#   RUBRIC         the rubric or submission rubric (default: graders/handout.yaml here)
#   SERVER         with an ordinary rubric: the program to grade (e.g. echoserverp); the
#                  Autolab problems are then the rubric's check ids
#   GRADE_FLAGS    more flags for grade
#   GRADE_TIMEOUT  seconds before grade is stopped (default 240; keep it under the
#                  assessment's autograding timeout so the score line still gets printed)
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
HANDIN="${1:-handin.tar}"

if [ -f "$HERE/echograde.env" ]; then
    saved=()
    for v in RUBRIC SERVER GRADE_FLAGS GRADE_TIMEOUT; do
        if [ -n "${!v+x}" ]; then saved+=("$v=${!v}"); fi
    done
    # shellcheck source=/dev/null
    . "$HERE/echograde.env"
    for kv in ${saved[@]+"${saved[@]}"}; do printf -v "${kv%%=*}" '%s' "${kv#*=}"; done
fi
RUBRIC="${RUBRIC:-graders/handout.yaml}"
case "$RUBRIC" in /*) ;; *) RUBRIC="$HERE/$RUBRIC" ;; esac
GRADE_FLAGS="${GRADE_FLAGS-}"
SERVER="${SERVER-}"
GRADE_TIMEOUT="${GRADE_TIMEOUT:-240}"

fallback() {
    echo "echograde: the autograder could not grade this submission: $1"
    echo "This is a failure of the grading setup, not a verdict on your code: tell your course staff."
    echo '{"scores": {}, "scoreboard": []}'
    exit 0
}

# The handout's files first, the student's over them.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/echograde-handin.XXXXXX")" || fallback "cannot make a temporary folder"
[ -d "$HERE/base" ] && cp -R "$HERE/base/." "$WORK/"
UNPACK="$(mktemp -d "${TMPDIR:-/tmp}/echograde-unpack.XXXXXX")" || fallback "cannot make a temporary folder"
if [ ! -f "$HANDIN" ]; then
    echo "echograde: no handin file $HANDIN: grading the handout's files alone"
else
    case "$HANDIN" in
        *.tar|*.tar.gz|*.tgz) tar xf "$HANDIN" -C "$UNPACK" 2>&1 | tail -n 5 ;;
        *.zip) unzip -qo "$HANDIN" -d "$UNPACK" 2>&1 | tail -n 5 ;;
        *) cp "$HANDIN" "$UNPACK/" ;;
    esac
fi
rm -rf "$UNPACK/__MACOSX"
# A tar of one folder: use the folder.
SUB="$UNPACK"
if [ -z "$(find "$UNPACK" -mindepth 1 -maxdepth 1 -type f -print -quit)" ]; then
    only_dir=$(find "$UNPACK" -mindepth 1 -maxdepth 1 -type d ! -name '.*')
    if [ -n "$only_dir" ] && [ "$(printf '%s\n' "$only_dir" | wc -l)" -eq 1 ]; then SUB="$only_dir"; fi
fi
cp -R "$SUB/." "$WORK/"
# Built files that came with the handin would make `make` skip the build.
find "$WORK" -type f -name '*.o' -delete
while IFS= read -r -d '' f; do
    case "$(od -An -tx1 -N4 "$f" 2>/dev/null | tr -d ' \n')" in
        7f454c46|cffaedfe|cefaedfe|feedfacf|feedface|cafebabe) rm -f "$f" ;;
    esac
done < <(find "$WORK" -type f -print0)

OUTF="$(mktemp)"; ERRF="$(mktemp)"
# shellcheck disable=SC2086
timeout -k 5 "$GRADE_TIMEOUT" "$HERE/grade" --build "$WORK" --rubric "$RUBRIC" \
    --format autolab $GRADE_FLAGS ${SERVER:+"$SERVER"} > "$OUTF" 2> "$ERRF"
rc=$?
rm -rf "$WORK" "$UNPACK"
# The grader's own messages first (bounded, control characters dropped), then its output,
# whose last line is the score line.
if [ -s "$ERRF" ]; then
    tail -c 4000 "$ERRF" | LC_ALL=C tr -d '\000-\010\013-\037' | sed 's/^[[:space:]]*[{[]/| &/'
fi
case $rc in
    124|137) fallback "the grader did not finish within $GRADE_TIMEOUT seconds" ;;
esac
last="$(tail -n 1 "$OUTF")"
case "$last" in
    '{'*'"scores"'*'}') cat "$OUTF" ;;
    *) head -c 100000 "$OUTF" | sed 's/^[[:space:]]*[{[]/| &/'
       fallback "the grader failed (exit status $rc) without a score line" ;;
esac
rm -f "$OUTF" "$ERRF"
exit 0
