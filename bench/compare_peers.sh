#!/bin/bash
# rhtex side by side with its peers, in one run on this machine: the floor
# (no scheduler), rhtex, HyperQueue and, with --parsl, Parsl HTEX. End to
# end throughput and CPU per task, `submit --wait` latency, 4-node tasks,
# and the memory of 100,000 queued tasks. The work is done by
# bench/peers.py (Python 3, standard library only); see its --help.
#
# Usage: bench/compare_peers.sh [--hq PATH] [--parsl] [peers.py flags]
#   --hq PATH   the HyperQueue binary (default $RHTEX_BENCH_HQ); without it
#               HyperQueue is not measured, and the script says so
#   --parsl     also Parsl HTEX, end to end (venv: bench/scripts/parsl-venv.sh)
#   --tasks N --slots K --rounds R --latency-runs L --multinode-tasks M
#   --multinode-nodes K --queued Q --only e2e,latency,multinode,memory
# Environment: RHTEX_BENCH_BIN_DIR (rhtex, interchange, pool-manager,
# rhtex-bench; default target/release), RHTEX_BENCH_OUT (bench/results),
# RHTEX_BENCH_HQ, RHTEX_BENCH_PARSL_VENV.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${RHTEX_BENCH_BIN_DIR:-$repo/target/release}
args=()
parsl=0
while [ $# -gt 0 ]; do
    case "$1" in
        --parsl) parsl=1; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ "$parsl" = 1 ]; then
    venv=$("$repo/bench/scripts/parsl-venv.sh")
    args+=(--parsl-python "$venv/bin/python")
fi
exec python3 "$repo/bench/peers.py" --bin-dir "$bin_dir" \
    --bench-exe "${RHTEX_BENCH_EXE:-$bin_dir/rhtex-bench}" "${args[@]}"
