#!/usr/bin/env bash
# Checks the system packages rhtex needs to build and run, and installs the
# missing ones when run as root on Debian or Ubuntu:
#   - pkg-config, and libzmq with CURVE (Debian: libzmq3-dev, built with
#     libsodium); rhtex links the system libzmq (see .cargo/config.toml);
#   - MPICH's mpiexec and mpicc (Debian: mpich, libmpich-dev): the default
#     MPI launcher of the example, and the compiler of the MPI program the
#     end-to-end tests run;
#   - with --tests: Slurm's scontrol (Debian: slurm-client), against which a
#     unit test checks our Slurm host-list parser; and the Slurm cluster of
#     the cluster tests (tests/cluster/cluster.sh): slurmctld, slurmd, munge,
#     and ip and nsenter (iproute2, util-linux) for its network namespaces;
#     and promtool (Debian: prometheus), which checks the interchange's
#     Prometheus metrics text; and chromium (Debian: chromium), in which a
#     test renders `rhtex report`'s page headless; and Python 3 with venv (Debian: python3,
#     python3-venv), for the venv of the Python tests (scripts/test-python.sh);
#   - cargo (Rust), which this script does not install.
# Not root: prints the command to run and exits 1.
set -euo pipefail

say() { printf 'deps: %s\n' "$*" >&2; }

for_tests=0
for argument in "$@"; do
    case "$argument" in
        --tests) for_tests=1 ;;
        *) say "unknown argument $argument (usage: deps.sh [--tests])"; exit 2 ;;
    esac
done

# Sets the array `missing` to the Debian packages that are not installed.
find_missing() {
    missing=()
    if ! command -v pkg-config >/dev/null 2>&1; then
        missing+=(pkg-config)
    fi
    if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists libzmq; then
        missing+=(libzmq3-dev)
    fi
    if ! command -v mpiexec >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
        missing+=(mpich)
    fi
    # MPI headers and mpicc's libraries, for the MPI test programs.
    if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists mpich; then
        missing+=(libmpich-dev)
    fi
    if [[ $for_tests -eq 1 ]]; then
        if ! command -v scontrol >/dev/null 2>&1 || ! command -v sbatch >/dev/null 2>&1; then
            missing+=(slurm-client)
        fi
        if ! command -v python3 >/dev/null 2>&1; then
            missing+=(python3)
        elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
            missing+=(python3-venv)
        fi
        local program package
        for program in slurmctld:slurmctld slurmd:slurmd munged:munge ip:iproute2 nsenter:util-linux promtool:prometheus chromium:chromium; do
            package=${program#*:}
            program=${program%%:*}
            if ! command -v "$program" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$program" ]]; then
                missing+=("$package")
            fi
        done
    fi
}

# Does the system libzmq have CURVE? Asks libzmq itself when a C compiler is
# at hand; otherwise trusts pkg-config's record of a libsodium build.
libzmq_has_curve() {
    local compiler
    compiler="$(command -v cc || command -v gcc || true)"
    if [[ -n "$compiler" ]]; then
        local work
        work="$(mktemp -d)"
        printf '#include <zmq.h>\nint main(void) { return zmq_has("curve") ? 0 : 1; }\n' >"$work/has_curve.c"
        local cflags libs
        cflags="$(pkg-config --cflags libzmq)"
        libs="$(pkg-config --libs libzmq)"
        # shellcheck disable=SC2086 # pkg-config output is a list of words
        if "$compiler" $cflags -o "$work/has_curve" "$work/has_curve.c" $libs 2>/dev/null; then
            local status=0
            "$work/has_curve" || status=$?
            rm -rf "$work"
            return "$status"
        fi
        rm -rf "$work"
    fi
    pkg-config --print-requires-private libzmq 2>/dev/null | grep -q '^libsodium'
}

find_missing
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ "$(id -u)" -eq 0 ]]; then
        if ! command -v apt-get >/dev/null 2>&1; then
            say "missing: ${missing[*]}; this is not a Debian/Ubuntu system (no apt-get):"
            say "install libzmq (with CURVE), pkg-config and MPICH (with headers) with your package manager"
            exit 1
        fi
        say "installing missing packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
        find_missing
        if [[ ${#missing[@]} -gt 0 ]]; then
            say "still missing after installing: ${missing[*]}"
            exit 1
        fi
    else
        say "missing packages: ${missing[*]}"
        say "install them as root, then run this script again:"
        printf '\n    sudo sh -c "apt-get update && apt-get install -y %s"\n\n' "${missing[*]}" >&2
        exit 1
    fi
fi

if ! libzmq_has_curve; then
    say "the system libzmq ($(pkg-config --modversion libzmq)) has no CURVE support,"
    say "so rhtex cannot encrypt; install a libzmq built with libsodium"
    say "(Debian/Ubuntu: apt-get install libzmq3-dev) or run rhtex with --insecure"
    exit 1
fi

if ! command -v cargo >/dev/null 2>&1; then
    say "cargo not found: install Rust (https://rustup.rs), then run this script again"
    exit 1
fi

say "ok: libzmq $(pkg-config --modversion libzmq) with CURVE, $(command -v mpiexec), $(cargo --version)"
