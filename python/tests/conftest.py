"""Shared fixtures: the repository root, the daemon binaries, key directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    from rhtex.keys import keygen

    return keygen(tmp_path / "keys")


def bin_dir() -> Path:
    """Where the daemons are: $RHTEX_BIN_DIR (scripts/test-python.sh sets
    target/debug), else the repository's target/debug."""
    return Path(os.environ.get("RHTEX_BIN_DIR") or REPO / "target" / "debug")


def process_gone(pid: int) -> bool:
    """True when ``pid`` is no process, or a zombie (exited, not reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before or while read
        return True


def wait_gone(pids, timeout: float) -> list:
    """Waits until every pid is gone; returns those still alive after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if not process_gone(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if not process_gone(pid)]
    return alive


def warm_servers(manager_pids):
    """Pids of the warm servers (rhtex.runner --serve NAME PID) of these managers."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        manager = argv[-2] if len(argv) >= 2 else b""
        if b"--serve" in argv and manager.isdigit() and int(manager) in manager_pids:
            found.append(int(entry.name))
    return found


def daemon_pids(executors) -> list:
    """The pids of the daemons these RhtexExecutors started."""
    return [pid for executor in executors for pid in executor._deployment.pids()]


def rhtex_executor(run_dir: Path, label: str, **options):
    """A RhtexExecutor labelled ``label``, working in ``run_dir / label``."""
    from rhtex.parsl import RhtexExecutor

    return RhtexExecutor(label=label, working_dir=run_dir / label, **options)


def load_parsl(executors, run_dir: Path):
    """Parsl loaded with these executors, its run information in ``run_dir``."""
    import parsl

    return parsl.load(parsl.Config(executors=list(executors), run_dir=str(run_dir / "runinfo")))


def unload_parsl(loaded, executors) -> None:
    """Cleans ``loaded`` up, then checks that none of the executors' daemons
    and warm servers outlived it."""
    import parsl

    pids = daemon_pids(executors)
    loaded.cleanup()
    parsl.clear()
    assert wait_gone(pids, 10) == [], "shutdown() left a daemon behind"
    assert wait_gone(warm_servers(pids), 10) == [], "a warm server outlived its pool-manager"


@pytest.fixture(autouse=True)
def _binaries_on_rhtex_bin_dir(monkeypatch):
    monkeypatch.setenv("RHTEX_BIN_DIR", str(bin_dir()))


@pytest.fixture(scope="session", autouse=True)
def _test_modules_importable_on_the_lead_node():
    """Apps defined in these test modules are pickled by reference, as Parsl
    does for any importable module: the lead node (whose environment the
    daemons inherit from here) must import the modules too."""
    os.environ["RHTEX_BIN_DIR"] = str(bin_dir())
    before = os.environ.get("PYTHONPATH")
    here = str(Path(__file__).parent)
    os.environ["PYTHONPATH"] = os.pathsep.join([here] + ([before] if before else []))
    yield
    if before is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = before
