#!/bin/bash
# Makes (once) a Python venv with Parsl from PyPI, outside the repository,
# and prints its directory on stdout.
#
# Usage: bench/scripts/parsl-venv.sh [VENV_DIR]
# Default VENV_DIR: $RHTEX_BENCH_PARSL_VENV, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/rhtex-bench/parsl-venv.
# Parsl's HTEX starts `interchange.py` and `process_worker_pool.py` by name,
# so callers put VENV_DIR/bin first on PATH.
set -euo pipefail
venv=${1:-${RHTEX_BENCH_PARSL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rhtex-bench/parsl-venv}}
if ! "$venv/bin/python" -c 'import parsl' >/dev/null 2>&1; then
    echo "parsl-venv: installing Parsl from PyPI into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip >&2
    "$venv/bin/pip" install --quiet parsl >&2
fi
"$venv/bin/python" -c 'import parsl, sys; print("parsl", parsl.__version__, file=sys.stderr)'
echo "$venv"
