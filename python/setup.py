"""Builds the rhtex programs into the wheel, as Rust tools ship on PyPI.

``pip install ./python`` (from the repository root) compiles
``interchange``, ``pool-manager`` and ``rhtex`` from ``../crates`` with
cargo (release profile) through setuptools-rust and installs them into the
environment's ``bin/``. It needs Rust (cargo) and libzmq with CURVE
(``libzmq3-dev``, ``pkg-config``); a release build of the workspace takes
minutes on 2 cores.

Environment:

- ``RHTEX_SKIP_RUST_BUILD=1``: install the Python package only (for
  development and the test suite, which uses ``RHTEX_BIN_DIR=target/debug``);
- ``RHTEX_RUST_DEBUG=1``: build the programs with the debug profile.

At run time ``RHTEX_BIN_DIR`` and ``PATH`` come before the installed
programs (:func:`rhtex.local.find_program`).
"""

import os

from setuptools import setup

rust_extensions = []
if os.environ.get("RHTEX_SKIP_RUST_BUILD", "") not in ("1", "true", "yes"):
    from setuptools_rust import RustBin

    debug = os.environ.get("RHTEX_RUST_DEBUG", "") in ("1", "true", "yes")
    for program, crate in (
        ("interchange", "interchange"),
        ("pool-manager", "pool-manager"),
        ("rhtex", "client"),
    ):
        rust_extensions.append(RustBin(program, path=f"../crates/{crate}/Cargo.toml", debug=debug))

setup(rust_extensions=rust_extensions)
