#!/usr/bin/env bash
# The main job: an MPI ensemble run by rhtex on this machine. Checks (and as
# root installs) the system packages, builds rhtex, then runs the ensemble of
# examples/ensemble.toml with `rhtex run`, which starts its own interchange
# and one pool-manager on this host, submits the tasks, waits for every
# result and stops both. Extra arguments go to `rhtex run` (e.g. --launcher).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

task_file=examples/ensemble.toml

echo "==> checking system packages (scripts/deps.sh)"
scripts/deps.sh

echo "==> building rhtex (cargo build --workspace --bins)"
cargo build --workspace --bins

if [[ ! -f "$task_file" ]]; then
    echo "==> $task_file is missing: this checkout has no example ensemble" >&2
    exit 1
fi

if [[ -n "${RHTEX_INTERCHANGE:-}" ]]; then
    echo "==> RHTEX_INTERCHANGE is set: submitting to the interchange at $RHTEX_INTERCHANGE"
    echo "    (unset it to run with an interchange and pool-manager started just for this run)"
fi

echo "==> running the ensemble (target/debug/rhtex run $task_file $*)"
exec target/debug/rhtex run "$task_file" "$@"
