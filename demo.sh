#!/usr/bin/env bash
# The main job, end to end on a fresh machine: build the grader and the reference servers,
# grade each reference server (full marks), then grade a server with a classic bug (the
# pthread_create(&connfd) race) and print its whole YAML report.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cc >/dev/null 2>&1; then
    echo "demo: installing a C compiler (gcc) for the shim and the example server" >&2
    apt-get update -qq && apt-get install -y -qq gcc make >/dev/null
fi

cargo build --release --workspace --locked
grade=target/release/grade

for server in echo-process echo-event echo-thread echo-pool; do
    echo "== grade target/release/$server"
    "$grade" --format human "target/release/$server"
done

mkdir -p target/fixtures
cc -O2 -g -Wall -Wextra -pthread -I fixtures fixtures/thread_connfd_race.c fixtures/common.c \
    -o target/fixtures/thread_connfd_race
echo "== grade target/fixtures/thread_connfd_race   (the &connfd race; full YAML report)"
"$grade" --seed 1 target/fixtures/thread_connfd_race
