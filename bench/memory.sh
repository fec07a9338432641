#!/bin/bash
# Benchmark 3: resident memory of a pool-manager running 64 `sleep` tasks
# (rhtex-bench memory) against Parsl's worker pool with 64 workers running
# 64 `sleep` bash apps (bench/parsl_driver.py memory), on this machine, one
# after the other. Prints a table and writes JSON (memory-rhtex.json,
# memory.json).
#
# Usage: bench/memory.sh [--tasks N]   (64)
# Environment: RHTEX_BENCH_BIN_DIR (default target/release, which must hold
# rhtex-bench, interchange, pool-manager), RHTEX_BENCH_OUT (bench/results).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${RHTEX_BENCH_BIN_DIR:-$repo/target/release}
out=${RHTEX_BENCH_OUT:-$repo/bench/results}
bench=${RHTEX_BENCH_EXE:-$repo/target/release/rhtex-bench}
tasks=64
while [ $# -gt 0 ]; do
    case "$1" in
        --tasks) tasks=$2; shift 2 ;;
        *) echo "memory.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
venv=$("$repo/bench/scripts/parsl-venv.sh")
work=$(mktemp -d /tmp/rhtex-bench-memory-XXXXXX)
trap 'rm -rf "$work"' EXIT

"$bench" memory --bin-dir "$bin_dir" --out "$out" --tasks "$tasks"
echo "memory.sh: Parsl with $tasks workers" >&2
(cd "$work" && PATH=$venv/bin:$PATH "$venv/bin/python" "$repo/bench/parsl_driver.py" memory \
    --workers "$tasks" 2> "$work/parsl.log" | tail -n 1 > "$work/parsl.json") \
    || { echo "memory.sh: the Parsl run failed; its log:" >&2; tail -n 30 "$work/parsl.log" >&2; exit 1; }

"$venv/bin/python" - "$out/memory-rhtex.json" "$work/parsl.json" "$out/memory.json" <<'PY'
import json, sys
rhtex_path, parsl_path, out = sys.argv[1:]
rhtex, parsl = json.load(open(rhtex_path)), json.load(open(parsl_path))
m, p = rhtex["manager"], parsl["pool"]
summary = {
    "benchmark": "memory", "machine": rhtex["machine"], "tasks": rhtex["tasks"],
    "rhtex": rhtex, "parsl": parsl,
    "rhtex_manager_rss_mib": m["rss_mib"], "parsl_pool_rss_mib": p["rss_mib"],
    "ratio_rss": round(p["rss_mib"] / m["rss_mib"], 1),
    "ratio_pss": round(p["pss_mib"] / m["pss_mib"], 1),
    "target_mib": rhtex["target_mib"],
}
json.dump(summary, open(out, "w"), indent=2)
print(f"\nBenchmark 3: {rhtex['tasks']} `sleep` tasks running at once")
print(f"{'':>34}  {'processes':>9}  {'RSS MiB':>8}  {'PSS MiB':>8}")
print(f"{'rhtex pool-manager':>34}  {1:>9}  {m['rss_mib']:>8.1f}  {m['pss_mib']:>8.1f}")
print(f"{'Parsl pool + workers':>34}  {p['n_processes']:>9}  {p['rss_mib']:>8.1f}  {p['pss_mib']:>8.1f}")
print(f"{'(Parsl process_worker_pool alone)':>34}  {1:>9}  {parsl['pool_process_only']['rss_mib']:>8.1f}  {parsl['pool_process_only']['pss_mib']:>8.1f}")
print(f"rhtex manager: {m['rss_mib']} MiB of a {rhtex['target_mib']:.0f} MiB target; "
      f"Parsl / rhtex: {summary['ratio_rss']}x by RSS, {summary['ratio_pss']}x by PSS")
print("task processes (bash/sleep) are counted in neither")
print(f"memory.sh: results written to {out}", file=sys.stderr)
PY
