#!/usr/bin/env bash
# Grade in a real container, as the platforms do (issue 24). Opt-in: minutes, needs root.
#
#   scripts/container.sh                 # all three flows
#   scripts/container.sh gradescope autolab reference   # some of them
#
# Builds once (cached in $ECHOGRADE_CONTAINER_CACHE, default target/container/):
#   localhost/echograde-deb:min   debootstrap --variant=minbase bookworm, imported
#   localhost/echograde-deb:gcc   that, after Gradescope's setup.sh ran in it (gcc, make, gdb)
# then runs, each in a fresh container of the second image with Docker's defaults (runc,
# its default capabilities and seccomp profile, --ulimit nofile=1024:1024 nproc=4096:4096,
# network: loopback only):
#   gradescope  run_autograder as root on fixtures/submission (make_zip.sh's layout under
#               /autograder); prints results.json's score
#   autolab     Tango's job as uid 65534: `make` in a folder with handin.tar, autograde.tar
#               and autograde-Makefile (make_tarball.sh); prints the last line's scores
#   reference   grade --format human on each reference server, as root and as uid 65534
# Each flow ends with one line `container.sh: RESULT <flow> <who> <what> <score>/<max>`
# (tests/container_default.rs reads them). Exit 0 when every flow ran (whatever the
# scores), 1 when one could not run.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${ECHOGRADE_CONTAINER_CACHE:-${CARGO_TARGET_DIR:-$REPO/target}/container}"
IMAGE_MIN=localhost/echograde-deb:min
IMAGE=localhost/echograde-deb:gcc
USER_ID=65534
# crun refuses hybrid cgroup hosts; systemd is not there to manage cgroups.
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
# Explicit limits: podman would otherwise raise nofile past a hard limit it cannot raise
# without CAP_SYS_RESOURCE ("error setting rlimit type 7").
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
RUN=("${PODMAN[@]}" run --rm --network none "${LIMITS[@]}")

flows=("$@")
[ ${#flows[@]} -gt 0 ] || flows=(gradescope autolab reference)
for f in "${flows[@]}"; do
    case "$f" in gradescope | autolab | reference) ;; *)
        echo "container.sh: unknown flow $f (gradescope, autolab, reference)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "container.sh: needs root (podman as root, debootstrap)" >&2; exit 1; }

say() { echo "container.sh: $*" >&2; }

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
mkdir -p "$CACHE"

# --- the images -------------------------------------------------------------------------
if ! "${PODMAN[@]}" image exists "$IMAGE_MIN"; then
    if [ ! -f "$CACHE/rootfs/.complete" ]; then
        say "debootstrap --variant=minbase bookworm (a few minutes)"
        rm -rf "$CACHE/rootfs.tmp" "$CACHE/rootfs"
        debootstrap --variant=minbase bookworm "$CACHE/rootfs.tmp" http://deb.debian.org/debian >&2
        mv "$CACHE/rootfs.tmp" "$CACHE/rootfs"
        touch "$CACHE/rootfs/.complete"
    fi
    say "importing $IMAGE_MIN"
    tar -C "$CACHE/rootfs" --exclude=./.complete -c . | "${PODMAN[@]}" import - "$IMAGE_MIN" >&2
fi

# What the flows run: the release grader and reference servers, the Gradescope layout, the
# Autolab files. Built every time (cargo does nothing when nothing changed).
say "building the grader, the reference servers, the zip's layout and the Autolab tarball"
(cd "$REPO" && cargo build --release --locked -p echograde --bin grade >&2 \
    && cargo build --release --locked -p echograde-reference --bins >&2)
BIN="$CACHE/bin"
rm -rf "$BIN" "$CACHE/ag" "$CACHE/autolab"
mkdir -p "$BIN"
cp "$REPO/target/release/grade" "$REPO"/target/release/echo-{process,event,thread,pool} "$BIN/"
"$REPO/graders/gradescope/make_zip.sh" --grade "$REPO/target/release/grade" --dir "$CACHE/ag/source" >&2
"$REPO/graders/autolab/make_tarball.sh" --grade "$REPO/target/release/grade" --out-dir "$CACHE/autolab" >&2
# Ordinary users in the container must reach them (the clone itself may be 0700).
chmod -R a+rX "$CACHE/bin" "$CACHE/ag" "$CACHE/autolab"

if ! "${PODMAN[@]}" image exists "$IMAGE"; then
    say "running Gradescope's setup.sh in $IMAGE_MIN (apt-get: the host's network)"
    "${PODMAN[@]}" rm -f echograde-setup >/dev/null 2>&1 || true
    "${PODMAN[@]}" run --name echograde-setup --network host "${LIMITS[@]}" \
        -v "$CACHE/ag/source:/autograder/source:ro" "$IMAGE_MIN" \
        bash /autograder/source/setup.sh >&2
    "${PODMAN[@]}" commit echograde-setup "$IMAGE" >&2
    "${PODMAN[@]}" rm echograde-setup >/dev/null
fi

failed=0
result() { echo "container.sh: RESULT $*"; }

# --- Gradescope: run_autograder as root ---------------------------------------------------
gradescope() {
    local ag="$CACHE/ag" out
    rm -rf "$ag/submission" "$ag/results"
    mkdir -p "$ag/submission" "$ag/results"
    cp "$REPO"/fixtures/submission/echoserver?.c "$ag/submission/"
    say "gradescope: run_autograder as root on fixtures/submission"
    "${RUN[@]}" -v "$ag/source:/autograder/source:ro" -v "$ag/submission:/autograder/submission" \
        -v "$ag/results:/autograder/results" "$IMAGE" bash /autograder/source/run_autograder >&2 \
        || { say "gradescope: podman run failed"; return 1; }
    out=$(python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
mx = sum(t.get("max_score", 0) for t in r.get("tests", []))
print("%g/%g" % (r["score"], mx))
for t in r.get("tests", []):
    if t.get("status") != "passed":
        print("  not passed: %s: %s" % (t["name"], t.get("output", "")[:300].replace("\n", " ")), file=sys.stderr)
if r.get("extra_data", {}).get("fallback"):
    print("  fallback: " + r.get("output", "")[:500], file=sys.stderr)' "$ag/results/results.json") \
        || { say "gradescope: no readable results.json"; return 1; }
    result gradescope root results.json "$out"
}

# --- Autolab: Tango's make as an ordinary user ------------------------------------------
autolab() {
    local job="$CACHE/autolab-job" last
    rm -rf "$job"
    mkdir -p "$job"
    cp "$CACHE/autolab/autograde.tar" "$job/"
    cp "$CACHE/autolab/autograde-Makefile" "$job/Makefile"
    tar -C "$REPO/fixtures/submission" -cf "$job/handin.tar" echoserverp.c echoservers.c echoservert.c
    chown -R "$USER_ID:$USER_ID" "$job"
    say "autolab: make as uid $USER_ID on fixtures/submission"
    "${RUN[@]}" --user "$USER_ID:$USER_ID" -v "$job:/job" -w /job "$IMAGE" make >"$job.out" 2>&1 \
        || { say "autolab: podman run failed"; cat "$job.out" >&2; return 1; }
    tail -n 25 "$job.out" >&2
    last=$(tail -n 1 "$job.out")
    out=$(printf '%s' "$last" | python3 -c 'import json,sys
s = json.load(sys.stdin)["scores"]
print("%g/%g" % (sum(s.values()), 100 * len(s) if s else 300))') \
        || { say "autolab: the last line is not Autolab's JSON: $last"; return 1; }
    result autolab "$USER_ID" scores "$out"
}

# --- the reference servers, as root and as an ordinary user ------------------------------
reference() {
    local server who opts total
    for server in echo-process echo-event echo-thread echo-pool; do
        for who in root "$USER_ID"; do
            opts=()
            [ "$who" = root ] || opts=(--user "$USER_ID:$USER_ID")
            say "reference: grade --format human $server as $who"
            "${RUN[@]}" ${opts[@]+"${opts[@]}"} -v "$BIN:/echograde:ro" -w / "$IMAGE" \
                /echograde/grade --format human "/echograde/$server" >"$CACHE/ref.out" 2>&1 || true
            grep -E '^  (FAIL|ERROR|SKIP) ' -A2 "$CACHE/ref.out" | head -n 12 >&2 || true
            total=$(sed -nE 's/^  total ([0-9.]+) \/ ([0-9.]+).*/\1\/\2/p' "$CACHE/ref.out" | tail -n 1)
            if [ -z "$total" ]; then
                say "reference: $server as $who: no total:"; tail -n 5 "$CACHE/ref.out" >&2
                return 1
            fi
            result reference "$who" "$server" "$total"
        done
    done
}

for f in "${flows[@]}"; do
    "$f" || failed=1
done
exit "$failed"
