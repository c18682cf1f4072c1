#!/usr/bin/env bash
# bench-class.sh - benchmark `grade class` on a synthetic class built from the fixtures.
#
#   scripts/bench-class.sh [WORKDIR]          (default WORKDIR: a fresh mktemp -d)
#
# Builds the release grader and the fixtures, makes a class of 45 server executables
# (correct, buggy and hostile mixed, each under a student name), and prints:
#   1. the class graded at --jobs 1 and at --jobs 4: wall time of each, their ratio, and the
#      number of (submission, check) verdicts that differ between the two (must be 0);
#   2. the class graded as --shard 1/2 and 2/2 (at the default --jobs) and merged: the number
#      of submissions whose score differs from the --jobs 1 run;
#   3. the noise floor: a second --jobs 1 run and a --jobs 2 run, each compared with the
#      first --jobs 1 run (a buggy server whose bug is a race may show it in one run and not
#      in the next at any --jobs; a verdict that differs only where it also differs between
#      two --jobs 1 runs is not caused by the parallelism);
#   4. the grader's peak RSS (of the `grade class` parent, GNU time) and the time to build the
#      class outputs (class.csv, class.json, index.html and 500 pages) for 500 reports.
# BENCH_ONLY=noise reruns only part 3 in an existing WORKDIR.
# The whole run takes minutes: every grading is real. Extra arguments for every grading can be
# given in GRADE_ARGS (e.g. GRADE_ARGS="--only model,echo.basic").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
chmod 755 "$work"   # as root, the servers run as an unprivileged user who must reach them
read -r -a extra <<<"${GRADE_ARGS:-}"

reuse=${BENCH_ONLY:+yes}   # part 3 alone: the grader and the class of the earlier run
if [ -z "$reuse" ]; then
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
# A copy: rebuilding the grader during the benchmark must not change it under the runs.
grade="$work/grade"
cp "$root/target/release/grade" "$grade"
fx="$work/fixtures"
make -s -C "$root/fixtures" OUT="$fx" >/dev/null
hostile=(accept_never_answer close_listen_after_one daemon exit_at_once fork_bomb
         ignores_sigterm never_listens segv_midway slow_echo stdout_flood wrong_port)
for h in "${hostile[@]}"; do
  gcc -O2 -g -Wall -Wextra -pthread -I "$root/fixtures" "$root/fixtures/hostile/$h.c" \
      -o "$fx/hostile_$h"
done

# 45 students: the correct servers several times over, the buggy and odd ones, the hostile.
correct=(ok_process ok_select ok_thread backlog_fork backlog_thread backlog_select pool_idle
         slow_process slow_thread)
buggy=(iterative proc_leak_connfd proc_keep_listenfd proc_no_reap proc_reap_one
       proc_printf_handler proc_handler_deadlock proc_child_loops thread_connfd_race
       thread_joinable_leak thread_no_close thread_sigpipe thread_exit_on_epipe event_starve
       select_maxfd poll_nfds echo_extra_byte echo_cut_line reply_ok exit_after_first
       select_exit_epipe thread_double_free)
class="$work/class"
rm -rf "$class"; mkdir -p "$class"; chmod 755 "$class"
n=0
add() { n=$((n + 1)); cp "$fx/$1" "$class/$(printf 's%02d' "$n")-$1"; }
for f in "${correct[@]}" "${correct[@]:0:3}"; do add "$f"; done
for f in "${buggy[@]}"; do add "$f"; done
for f in "${hostile[@]}"; do add "hostile_$f"; done
fi
grade="$work/grade"
class="$work/class"
n=$(ls "$class" | wc -l)
echo "class: $n submissions in $class ($(nproc) cores; load average now: $(cut -d' ' -f1-3 /proc/loadavg))"

run() { # run OUT JOBS ARGS... -> prints the wall time in seconds
  local out=$1 jobs=$2; shift 2
  rm -rf "$out"
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$out.rss" "$grade" class "$class"/* --out "$out" --jobs "$jobs" \
    --seed 42 "${extra[@]}" "$@" 2>"$out.log" || true
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

compare() { # compare A B -> differing verdicts, listed
  python3 - "$1/class.json" "$2/class.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
va = {(r["name"], c): v["status"] for r in a["submissions"] for c, v in r["checks"].items()}
vb = {(r["name"], c): v["status"] for r in b["submissions"] for c, v in r["checks"].items()}
sa = {r["name"]: r["score"] for r in a["submissions"]}
sb = {r["name"]: r["score"] for r in b["submissions"]}
diff = sorted(k for k in va.keys() | vb.keys() if va.get(k) != vb.get(k))
print(f"  submissions {len(sa)} vs {len(sb)}; verdicts compared {len(va)}; differing verdicts: {len(diff)}; differing scores: {sum(sa.get(k) != sb.get(k) for k in sa.keys() | sb.keys())}")
for k in diff:
    print(f"    {k[0]} {k[1]}: {va.get(k)} vs {vb.get(k)}")
PY
}

noise() {
  local tb t2
  tb=$(run "$work/jobs1b" 1)
  echo "jobs 1 again: ${tb} s wall"
  echo "jobs 1 vs jobs 1 again:"; compare "$work/jobs1" "$work/jobs1b"
  t2=$(run "$work/jobs2" 2)
  echo "jobs 2: ${t2} s wall"
  echo "jobs 1 vs jobs 2:"; compare "$work/jobs1" "$work/jobs2"
  echo "jobs 1 again vs jobs 2:"; compare "$work/jobs1b" "$work/jobs2"
}

if [ "${BENCH_ONLY:-}" = noise ]; then noise; exit 0; fi

t1=$(run "$work/jobs1" 1)
echo "jobs 1: ${t1} s wall, parent peak RSS $(cat "$work/jobs1.rss") KiB"
t4=$(run "$work/jobs4" 4)
echo "jobs 4: ${t4} s wall, parent peak RSS $(cat "$work/jobs4.rss") KiB"
echo "ratio jobs1/jobs4: $(echo "scale=2; $t1 / $t4" | bc)"

echo "jobs 1 vs jobs 4:"; compare "$work/jobs1" "$work/jobs4"

ts1=$(run "$work/shard1" 2 --shard 1/2)
ts2=$(run "$work/shard2" 2 --shard 2/2)
echo "shards at --jobs 2: 1/2 ${ts1} s, 2/2 ${ts2} s"
"$grade" class --merge "$work/shard1" "$work/shard2" --out "$work/merged" 2>/dev/null
echo "jobs 1 vs shards 1/2 + 2/2 merged (graded again, so the noise floor applies):"
compare "$work/jobs1" "$work/merged"
echo "the shards' own class.json vs merged (the merge itself):"
python3 - "$work/shard1/class.json" "$work/shard2/class.json" "$work/merged/class.json" <<'PY'
import json, sys
parts = [{r["name"]: (r["score"], r["checks"]) for r in json.load(open(p))["submissions"]} for p in sys.argv[1:4]]
union = {**parts[0], **parts[1]}
merged = parts[2]
print(f"  shards {len(parts[0])} + {len(parts[1])}, merged {len(merged)}; differing scores: "
      f"{sum(union.get(n, (None,))[0] != merged[n][0] for n in merged)}; differing verdicts: "
      f"{sum(union.get(n, (None, None))[1] != merged[n][1] for n in merged)}")
PY

noise

# 500 reports: the --jobs 1 records, copied under 500 names, merged (re-rendering every page).
big="$work/big"
rm -rf "$big" "$work/big-out"; mkdir -p "$big/students"
python3 - "$work/jobs1/students" "$big/students" <<'PY'
import json, os, sys
src, dst = sys.argv[1:3]
recs = [json.load(open(os.path.join(src, f))) for f in sorted(os.listdir(src)) if f.endswith(".record.json")]
for i in range(500):
    r = dict(recs[i % len(recs)])
    r["name"] = f"student{i:03d}"; r["stem"] = r["name"]; r["key"] = f"k{i}"
    json.dump(r, open(os.path.join(dst, r["stem"] + ".record.json"), "w"))
    for ext in ("yaml", "html"):
        open(os.path.join(dst, f"{r['stem']}.{ext}"), "w").close()
PY
t0=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/big.rss" "$grade" class --merge "$big" --out "$work/big-out" 2>/dev/null
t1=$(date +%s.%N)
echo "500 reports: merge (500 YAML + 500 pages + class.csv/json + index.html) $(echo "$t1 - $t0" | bc) s, peak RSS $(cat "$work/big.rss") KiB, index.html $(stat -c %s "$work/big-out/index.html") bytes"
