#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image from the zip
# (unpacked in /autograder/source). It installs what grading needs and checks that the grader
# runs, so a broken setup fails at upload time, not at the deadline.
#
#   gcc, make, libc6-dev   to build the students' C servers (`make all`)
#   gdb                    optional: liveness.churn names where a stuck server waits
#   grade                  the prebuilt release binary the zip carries (source/grade). It needs
#                          glibc 2.34 or newer (Ubuntu 22.04 and later). Without it, or if it
#                          does not run, the grader is built from source/echograde-src (zip
#                          built with --with-source) with Ubuntu's own cargo package, which
#                          must be new enough for the crate's rust-version (1.85). setup.sh
#                          does not fetch a toolchain with rustup: the prebuilt binary is the
#                          supported way, the packaged cargo the fallback.
#
# AUTOGRADER_ROOT (default /autograder) moves the whole layout, as for run_autograder.
set -euo pipefail

ROOT="${AUTOGRADER_ROOT:-/autograder}"
SRC="$ROOT/source"

need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v make >/dev/null 2>&1 || need+=(make)
command -v gdb >/dev/null 2>&1 || need+=(gdb)
command -v timeout >/dev/null 2>&1 || need+=(coreutils)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup.sh: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

runs() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

if ! runs "$SRC/grade"; then
    if [ -f "$SRC/echograde-src/Cargo.toml" ]; then
        echo "setup.sh: source/grade is missing or does not run here; building it from source"
        if ! command -v cargo >/dev/null 2>&1; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cargo rustc
        fi
        (cd "$SRC/echograde-src" && cargo build --release --locked --bin grade)
        cp "$SRC/echograde-src/target/release/grade" "$SRC/grade"
    fi
fi
if ! runs "$SRC/grade"; then
    echo "setup.sh: $SRC/grade does not run on this image:" >&2
    "$SRC/grade" --version >&2 || true
    echo "setup.sh: build the zip on a machine with an older or equal glibc, or with --with-source" >&2
    exit 1
fi
chmod +x "$ROOT/run_autograder" 2>/dev/null || true
echo "setup.sh: $("$SRC/grade" --version) is ready"
