"""Runs one Parsl task on a block's lead node: ``python -m rhtex.runner``.

The pool-manager starts it as the task's command, with the Parsl MPI
environment already set (``PARSL_MPI_PREFIX``, ``PARSL_NUM_RANKS``, ...),
so the app runs exactly as in a worker of Parsl's MPIExecutor: through
Parsl's own ``execute_task``, a bash app builds its command here and
``$PARSL_MPI_PREFIX`` expands here, and ``stdout=``/``stderr=`` are opened
here.

It reads the serialized app from the task's input (``$RHTEX_TASK_INPUT``,
:mod:`rhtex.payload`), and writes one msgpack map to the task's output
(``$RHTEX_TASK_OUTPUT``), which returns in the task's result:

- ``{"kind": "result", "data": <parsl-serialized return value>}``;
- ``{"kind": "exception", "data": <parsl-serialized RemoteExceptionWrapper>}``;
- ``{"kind": "error", "message": str}``: the task could not be run here,
  for instance because this Python or Parsl version differs from the
  submit side's (``RHTEX_PYTHON_VERSION``, ``RHTEX_PARSL_VERSION``),
  checked before Parsl is imported, or because the task has no input.

It exits 0 whenever it wrote its output. With ``RHTEX_WARM=1`` it also
starts the warm server of its pool-manager, which later tasks use
(:mod:`rhtex.warm`).
"""

from __future__ import annotations

import os
import sys

# This module starts every task: its imports are kept light (no typing,
# msgpack or Parsl at import time).
from . import payload

PYTHON_VERSION_ENV = "RHTEX_PYTHON_VERSION"
PARSL_VERSION_ENV = "RHTEX_PARSL_VERSION"
#: The submit side's working directory: apps run there when the lead node
#: has it (a shared file system), else in the pool-manager's run directory.
SUBMIT_CWD_ENV = "RHTEX_SUBMIT_CWD"


def python_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def parsl_version() -> str | None:
    """The installed Parsl's version, without importing Parsl (which takes
    about 0.5 s) or scanning distributions (about 25 ms): its version.py."""
    from importlib.util import find_spec

    spec = find_spec("parsl")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        try:
            with open(os.path.join(location, "version.py")) as handle:
                text = handle.read()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("VERSION") and "=" in line:
                return line.split("=", 1)[1].strip().strip("'\"")
    try:
        from importlib.metadata import version

        return version("parsl")
    except Exception:
        return None


def version_problem(environ) -> str | None:
    """Why this interpreter cannot run the submit side's tasks, or None."""
    wanted_python = environ.get(PYTHON_VERSION_ENV)
    if wanted_python and wanted_python != python_version():
        return (
            f"the lead node runs Python {python_version()} ({sys.executable}) but the "
            f"submit side runs Python {wanted_python}: serialized apps cannot cross "
            "Python versions; set RhtexExecutor(python=...) to a matching interpreter"
        )
    wanted_parsl = environ.get(PARSL_VERSION_ENV)
    found = parsl_version()
    if wanted_parsl and found != wanted_parsl:
        have = f"Parsl {found}" if found else "no Parsl"
        return (
            f"the lead node's Python ({sys.executable}) has {have} but the submit side "
            f"runs Parsl {wanted_parsl}: install the same version on both sides"
        )
    return None


def run_task(data: bytes) -> bytes:
    """Runs a serialized Parsl task; returns the output map, packed."""
    import msgpack
    from parsl.app.errors import RemoteExceptionWrapper
    from parsl.executors.execute_task import execute_task
    from parsl.serialize import serialize

    try:
        result = execute_task(data)
        return msgpack.packb({"kind": "result", "data": serialize(result)}, use_bin_type=True)
    except Exception:
        wrapped = RemoteExceptionWrapper(*sys.exc_info())
        return msgpack.packb({"kind": "exception", "data": serialize(wrapped)}, use_bin_type=True)


def error_output(message: str) -> bytes:
    import msgpack

    return msgpack.packb({"kind": "error", "message": message}, use_bin_type=True)


def run_here() -> int:
    """Runs the task in this process (cold, or in a warm server's child)."""
    directory = os.environ.get(SUBMIT_CWD_ENV)
    if directory and os.path.isdir(directory):
        os.chdir(directory)
    try:
        data = payload.read_input()
    except (payload.PayloadError, OSError) as error:
        payload.write_output(error_output(f"the runner cannot read its task: {error}"))
        return 0
    payload.write_output(run_task(data))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"] and len(argv) == 2:
        from .warm import serve

        return serve(int(argv[1]), run_here)
    problem = version_problem(os.environ)
    if problem is not None:
        payload.write_output(error_output(problem))
        return 0
    if os.environ.get("RHTEX_WARM") == "1":
        # No warm server answered the task's command: start one for the
        # next tasks, and run this one here.
        from .warm import ensure_server

        ensure_server(dict(os.environ))
    return run_here()


if __name__ == "__main__":
    sys.exit(main())
