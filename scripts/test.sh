#!/usr/bin/env bash
# The whole test suite: checks (and as root installs) the system packages,
# builds every binary (the end-to-end tests run them from target/debug), then
# runs every test of the workspace. Extra arguments go to `cargo test`.
# Exits with the status of `cargo test`.
#
# The cluster tests need root: they start a real Slurm cluster of network
# namespaces (README.md, "Tests on a real Slurm cluster"), which this script takes down at the
# end unless it was already up.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> checking system packages (scripts/deps.sh --tests)"
scripts/deps.sh --tests

echo "==> building the binaries (cargo build --workspace --bins)"
cargo build --workspace --bins

# The cluster tests (tests/tests/cluster.rs) bring up a 4-node Slurm cluster
# of network namespaces (tests/cluster/cluster.sh) if it is not up; unless it
# was up before this run, take it down at the end, whatever happened.
cluster_script=tests/cluster/cluster.sh
cluster_was_up=0
if [[ "$(id -u)" -eq 0 ]] && "$cluster_script" status >/dev/null 2>&1; then
    cluster_was_up=1
fi
# shellcheck disable=SC2317 # called by the EXIT trap
take_cluster_down() {
    if [[ "$(id -u)" -eq 0 && $cluster_was_up -eq 0 ]]; then
        echo "==> taking the test cluster down ($cluster_script down)"
        "$cluster_script" down || echo "==> warning: $cluster_script down failed" >&2
    fi
}
trap take_cluster_down EXIT

echo "==> running the tests (cargo test --workspace $*)"
status=0
cargo test --workspace "$@" || status=$?
scripts/test-python.sh || status=$?

if [[ $status -eq 0 ]]; then
    echo "==> all tests passed"
else
    echo "==> tests FAILED (cargo test exited with $status); see the output above" >&2
fi
exit "$status"
