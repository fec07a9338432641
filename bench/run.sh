#!/bin/bash
# One command per benchmark; each prints a table and writes JSON to
# bench/results/ (override with RHTEX_BENCH_OUT).
#
#   bench/run.sh interchange [FLAGS]   1. the interchange alone, K = 1, 100, 1000, and light load
#   bench/run.sh e2e [FLAGS]           2. rhtex run vs Parsl HTEX, 10,000 `true` tasks
#   bench/run.sh memory [FLAGS]        3. pool-manager vs Parsl worker pool, 64 `sleep` tasks
#   bench/run.sh scale [FLAGS]         4. 1,000,000 queued tasks, then 2,000 managers
#   bench/run.sh durability [FLAGS]    6. the journal: throughput on/off, recovery of 1,000,000 tasks
#   bench/run.sh peers [FLAGS]         7. the floor, rhtex, HyperQueue (--hq PATH), Parsl (--parsl)
#   bench/run.sh all                   1 to 4, in that order
#
# FLAGS go to `rhtex-bench SUBCOMMAND` (see `--help`) or to the comparison
# script. The daemons are built in release mode from the working tree, or,
# with RHTEX_BENCH_REV=<commit>, from a clean export of that commit (built in
# a cache directory, so that uncommitted work in the tree is not measured).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/rhtex-bench
out=${RHTEX_BENCH_OUT:-$repo/bench/results}
what=${1:-}
[ $# -gt 0 ] && shift

build() {
    (cd "$repo" && cargo build --release --quiet -p bench) >&2
    if [ -n "${RHTEX_BENCH_REV:-}" ]; then
        local rev src
        rev=$(git -C "$repo" rev-parse --short "$RHTEX_BENCH_REV")
        src=$cache/src-$rev
        if [ ! -f "$src/Cargo.toml" ]; then
            mkdir -p "$src"
            git -C "$repo" archive "$rev" | tar -x -C "$src"
        fi
        echo "rhtex-bench: daemons from commit $rev ($src)" >&2
        (cd "$src" && CARGO_TARGET_DIR=$cache/target cargo build --release --quiet \
            -p interchange -p pool-manager -p client) >&2
        bin_dir=$cache/target/release
        export RHTEX_BENCH_COMMIT=$rev
    else
        (cd "$repo" && cargo build --release --quiet -p interchange -p pool-manager -p client) >&2
        bin_dir=$repo/target/release
        local dirty=""
        git -C "$repo" diff --quiet HEAD -- crates || dirty="+uncommitted"
        export RHTEX_BENCH_COMMIT=$(git -C "$repo" rev-parse --short HEAD)$dirty
    fi
    bench=$repo/target/release/rhtex-bench
}

case "$what" in
    interchange|scale|durability)
        build
        "$bench" "$what" --bin-dir "$bin_dir" --out "$out" "$@"
        ;;
    memory)
        build
        RHTEX_BENCH_BIN_DIR=$bin_dir RHTEX_BENCH_OUT=$out "$repo/bench/memory.sh" "$@"
        ;;
    e2e)
        build
        RHTEX_BENCH_BIN_DIR=$bin_dir RHTEX_BENCH_OUT=$out "$repo/bench/compare_parsl.sh" "$@"
        ;;
    peers)
        build
        RHTEX_BENCH_BIN_DIR=$bin_dir RHTEX_BENCH_EXE=$bench RHTEX_BENCH_OUT=$out \
            "$repo/bench/compare_peers.sh" "$@"
        ;;
    all)
        "$0" interchange
        "$0" e2e
        "$0" memory
        "$0" scale
        ;;
    *)
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
