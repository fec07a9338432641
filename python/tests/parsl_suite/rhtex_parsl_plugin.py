"""A pytest plugin that runs Parsl's own MPI-mode tests against RhtexExecutor.

Loaded with ``-p rhtex_parsl_plugin`` next to Parsl's harness
(``--config local``), as Parsl runs third-party executors:

- every collected Parsl test module that names ``MPIExecutor`` gets that
  name rebound to :func:`MPIExecutor` below, a factory that builds a
  :class:`~rhtex.parsl.RhtexExecutor` with the label, launcher and nodes
  the test asked for (the nodes of the PBS node file its provider's
  ``worker_init`` exports);
- the node files those tests read (``test_htex/mpi/mocks/``), which the
  PyPI wheel does not ship, are written at start: 4 and 8 synthetic names
  of our own.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, List, Optional

import parsl.tests

from rhtex.parsl import RhtexExecutor

MOCKS = Path(parsl.tests.__file__).parent / "test_htex" / "mpi" / "mocks"


def write_node_files() -> None:
    MOCKS.mkdir(exist_ok=True)
    (MOCKS / "pbs_nodefile").write_text("".join(f"rhtex-node-{i}\n" for i in range(1, 5)))
    (MOCKS / "pbs_nodefile.8").write_text("".join(f"rhtex-node-{i}\n" for i in range(1, 9)))


def nodes_of(provider: Any) -> Optional[List[str]]:
    """The nodes of the PBS node file a provider's worker_init exports."""
    worker_init = getattr(provider, "worker_init", "") or ""
    match = re.search(r"PBS_NODEFILE=(\S+)", worker_init)
    if not match:
        return None
    return [line.strip() for line in Path(match.group(1)).read_text().splitlines() if line.strip()]


def MPIExecutor(  # noqa: N802 - it stands in for Parsl's class
    label: str = "MPIExecutor",
    mpi_launcher: str = "mpiexec",
    provider: Any = None,
    max_workers_per_block: int = 1,
    **_ignored: Any,
) -> RhtexExecutor:
    """Parsl's MPIExecutor(...) as a RhtexExecutor with the same nodes."""
    return RhtexExecutor(
        label=label,
        mpi_launcher=mpi_launcher,
        nodes=nodes_of(provider) or [f"rhtex-node-{i}" for i in range(1, 5)],
    )


def pytest_configure(config) -> None:
    write_node_files()


def pytest_collection_modifyitems(session, config, items) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "MPIExecutor"):
            module.MPIExecutor = MPIExecutor
