#!/usr/bin/env bash
# The whole test suite: checks (and as root installs) the system packages,
# builds every binary (the end-to-end tests run them from target/debug), then
# runs every test of the workspace. Extra arguments go to `cargo test`.
# Exits with the status of `cargo test`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> checking system packages (scripts/deps.sh --tests)"
scripts/deps.sh --tests

echo "==> building the binaries (cargo build --workspace --bins)"
cargo build --workspace --bins

echo "==> running the tests (cargo test --workspace $*)"
status=0
cargo test --workspace "$@" || status=$?

if [[ $status -eq 0 ]]; then
    echo "==> all tests passed"
else
    echo "==> tests FAILED (cargo test exited with $status); see the output above" >&2
fi
exit "$status"
