#!/usr/bin/env bash
# PNG screenshots of a page, made with the headless Chromium the browser tests use
# (Debian's `chromium`, or $ECHOGRADE_CHROMIUM).
#
#   scripts/screenshots.sh PAGE.html OUT.png [WIDTHxHEIGHT]
#       one screenshot of the top of the page in a window of that size (default 1100x1400).
#   scripts/screenshots.sh --readme
#       grades fixtures/iterative.c (seed 42) and writes the README's pictures:
#       docs/timeline-overlap.png (its page with concurrency.overlap alone: B waits until A
#       leaves) and docs/student-page.png (the top of its page for four checks); then grades
#       a small class of fixtures with `grade class` and writes docs/class-index.png (the
#       TA's class page).
set -euo pipefail
cd "$(dirname "$0")/.."

browser=${ECHOGRADE_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$browser" ]; then
    echo "screenshots: no Chromium (apt-get install chromium, or set ECHOGRADE_CHROMIUM)" >&2
    exit 2
fi

shot() { # PAGE OUT SIZE
    local page out size profile
    page=$(realpath "$1")
    out=$(realpath -m "$2")
    size=${3:-1100x1400}
    profile=$(mktemp -d)
    # --no-sandbox: Chromium will not start its sandbox as root; the page is a local file.
    (cd "$profile" && "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --no-first-run --disable-extensions --force-device-scale-factor=1 \
        --user-data-dir="$profile" --window-size="${size/x/,}" \
        --screenshot="$out" "file://$page" >/dev/null 2>&1)
    rm -rf "$profile"
    [ -s "$out" ] || { echo "screenshots: no picture made of $page" >&2; exit 1; }
    echo "$out"
}

if [ "${1:-}" = "--readme" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cargo build --release --quiet
    cc -O2 -Wall -pthread -I fixtures fixtures/iterative.c fixtures/common.c -o "$work/iterative"
    target/release/grade --seed 42 --only concurrency.overlap \
        --output "$work/overlap.html" "$work/iterative"
    target/release/grade --seed 42 --only echo.basic,concurrency.overlap,concurrency.many,zombies \
        --output "$work/page.html" "$work/iterative"
    mkdir -p docs
    shot "$work/overlap.html" docs/timeline-overlap.png 1000x700
    shot "$work/page.html" docs/student-page.png 1000x1250
    # A small class: correct servers of each model and a few classic bugs.
    mkdir -p "$work/bin"
    for f in ok_process ok_select ok_thread iterative proc_no_reap proc_leak_connfd \
             thread_connfd_race upcase_fork; do
        cc -O2 -Wall -pthread -I fixtures "fixtures/$f.c" fixtures/common.c -o "$work/bin/$f"
    done
    target/release/grade class --seed 42 --jobs 2 \
        --only echo.basic,concurrency.overlap,zombies,leak.fd,race.connfd \
        --out "$work/class" "$work"/bin/*
    shot "$work/class/index.html" docs/class-index.png 1100x1300
    exit 0
fi

[ $# -ge 2 ] || { sed -n '4,10p' "$0" >&2; exit 2; }
shot "$@"
