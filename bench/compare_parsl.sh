#!/bin/bash
# Benchmark 2: `rhtex run` of N `true` tasks through one pool-manager with 64
# synthetic nodes (embedded interchange, CURVE on) against Parsl's HTEX
# running N `true` bash apps (LocalProvider, one block, CURVE on), on this
# machine, one after the other, RUNS times each (interleaved). Prints a
# table and writes JSON.
#
# Usage: bench/compare_parsl.sh [--tasks N] [--runs R] [--workers W] [--nodes K]
#   --tasks    tasks per run (10000)
#   --runs     runs of each system (3); medians are reported
#   --workers  Parsl workers (8: faster than 2, the core count, on this 2-core machine)
#   --nodes    synthetic nodes of the rhtex pool-manager (64)
# Environment: RHTEX_BENCH_BIN_DIR (where rhtex, interchange, pool-manager
# are; default target/release), RHTEX_BENCH_OUT (bench/results),
# RHTEX_BENCH_PARSL_VENV (see bench/scripts/parsl-venv.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${RHTEX_BENCH_BIN_DIR:-$repo/target/release}
out=${RHTEX_BENCH_OUT:-$repo/bench/results}
tasks=10000 runs=3 workers=8 nodes=64
while [ $# -gt 0 ]; do
    case "$1" in
        --tasks) tasks=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --nodes) nodes=$2; shift 2 ;;
        *) echo "compare_parsl.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
for binary in rhtex interchange pool-manager; do
    [ -x "$bin_dir/$binary" ] || { echo "compare_parsl.sh: $bin_dir/$binary missing; run bench/run.sh e2e" >&2; exit 2; }
done
venv=$("$repo/bench/scripts/parsl-venv.sh")
python=$venv/bin/python
work=$(mktemp -d /tmp/rhtex-bench-e2e-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The task file: N lines of {"command": "true"}.
"$python" -c "import sys; sys.stdout.write('{\"command\": \"true\"}\n' * $tasks)" > "$work/tasks.jsonl"
node_list=$("$python" -c "print(','.join(f'node{i}' for i in range($nodes)))")

results=$work/results.jsonl
# The floor: the same number of `/bin/bash -c true`, 64 at a time, with no
# scheduler at all (each system runs every task through bash).
echo "compare_parsl.sh: floor: $tasks x /bin/bash -c true, $nodes at a time" >&2
start=$(date +%s.%N)
seq "$tasks" | xargs -P "$nodes" -n 100 sh -c 'for i in "$@"; do /bin/bash -c true; done' _
end=$(date +%s.%N)
"$python" -c "import json, sys; t = float(sys.argv[2]) - float(sys.argv[1]); print(json.dumps({'system': 'floor', 'total_s': round(t, 3)}))" \
    "$start" "$end" >> "$results"

for run in $(seq 1 "$runs"); do
    echo "compare_parsl.sh: run $run/$runs: rhtex" >&2
    rundir=$work/rhtex-$run
    mkdir -p "$rundir"
    start=$(date +%s.%N)
    set +e
    (cd "$rundir" && "$bin_dir/rhtex" --json run "$work/tasks.jsonl" --nodes "$node_list" \
        > "$rundir/summary.json" 2> "$rundir/stderr.log")
    code=$?
    set -e
    end=$(date +%s.%N)
    "$python" - "$rundir/summary.json" "$start" "$end" "$code" "$tasks" "$nodes" >> "$results" <<'PY'
import json, sys
path, start, end, code, tasks, nodes = sys.argv[1:]
counts = {}
try:
    counts = json.load(open(path)).get("counts", {})
except Exception as error:
    print(f"compare_parsl.sh: cannot read the rhtex summary: {error}", file=sys.stderr)
total = float(end) - float(start)
print(json.dumps({"system": "rhtex", "tasks": int(tasks), "nodes": int(nodes), "exit_code": int(code),
                  "completed": counts.get("completed", 0), "total_s": round(total, 3),
                  "tasks_per_s": round(int(tasks) / total, 1)}))
PY
    rm -rf "$rundir"
    echo "compare_parsl.sh: run $run/$runs: parsl ($workers workers)" >&2
    (cd "$work" && PATH=$venv/bin:$PATH "$python" "$repo/bench/parsl_driver.py" throughput \
        --tasks "$tasks" --workers "$workers" 2> "$work/parsl-$run.log" | tail -n 1 >> "$results") \
        || { echo "compare_parsl.sh: the Parsl run failed; its log:" >&2; tail -n 30 "$work/parsl-$run.log" >&2; exit 1; }
done

"$python" - "$results" "$out/e2e.json" "$tasks" "$runs" "$workers" "$nodes" <<'PY'
import json, os, platform, statistics, subprocess, sys
path, out, tasks, runs, workers, nodes = sys.argv[1:]
rows = [json.loads(line) for line in open(path) if line.strip()]
rhtex = [r for r in rows if r["system"] == "rhtex"]
parsl = [r for r in rows if r["system"] == "parsl"]
med = lambda rs, key: statistics.median(r[key] for r in rs)
r_total = med(rhtex, "total_s")
floor = next((r["total_s"] for r in rows if r["system"] == "floor"), None)
p_total, p_run, p_start = med(parsl, "total_s"), med(parsl, "run_s"), med(parsl, "startup_s")
ok = all(r["exit_code"] == 0 and r["completed"] == int(tasks) for r in rhtex) and all(p["failed"] == 0 for p in parsl)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
summary = {
    "benchmark": "e2e",
    "machine": {"n_cpus": os.cpu_count(), "cpu_model": cpu, "kernel": platform.release(),
                "loadavg_at_end": open("/proc/loadavg").read().strip(),
                "git_commit": os.environ.get("RHTEX_BENCH_COMMIT", "")},
    "tasks": int(tasks), "runs": int(runs), "parsl_workers": int(workers), "rhtex_nodes": int(nodes),
    "all_tasks_succeeded": ok,
    "rhtex_total_s": r_total,
    "floor_bash_s": floor,
    "parsl_total_s": p_total, "parsl_startup_s": p_start, "parsl_run_s": p_run,
    "ratio_total": round(p_total / r_total, 2),
    "ratio_parsl_run_only": round(p_run / r_total, 2),
    "target_ratio": 3.0,
    "runs_detail": rows,
}
json.dump(summary, open(out, "w"), indent=2)
print(f"Benchmark 2: {tasks} `true` tasks, median of {runs} runs each")
print(f"{'system':>8}  {'total s':>8}  {'tasks/s':>8}  notes")
print(f"{'rhtex':>8}  {r_total:8.2f}  {int(tasks)/r_total:8.0f}  whole `rhtex run` command (daemons started and stopped), {nodes} synthetic nodes")
print(f"{'parsl':>8}  {p_total:8.2f}  {int(tasks)/p_total:8.0f}  parsl.load to cleanup; of which startup {p_start:.2f} s, tasks {p_run:.2f} s ({int(tasks)/p_run:.0f}/s), {workers} workers")
if floor:
    print(f"{'floor':>8}  {floor:8.2f}  {int(tasks)/floor:8.0f}  {tasks} x /bin/bash -c true, {nodes} at a time, no scheduler")
print(f"ratio (Parsl total / rhtex total): {summary['ratio_total']}x; Parsl task time alone / rhtex total: {summary['ratio_parsl_run_only']}x (target 3x)")
print(f"all tasks succeeded: {ok}")
print(f"compare_parsl.sh: results written to {out}", file=sys.stderr)
PY
