"""The warm runner's reused workers (``app_isolation="reuse"``, the default)
against fresh forks (``"fork"``), end to end: real daemons, real Parsl."""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path

import pytest
from parsl.app.errors import AppTimeout

import rhtex.parsl
from rhtex.parsl import RhtexExecutor, RhtexTaskError

from conftest import (
    daemon_pids,
    load_parsl,
    process_gone,
    rhtex_executor,
    unload_parsl,
    wait_gone,
    warm_servers,
)

NODES = ["w1", "w2", "w3", "w4"]


@pytest.fixture(scope="module")
def executors(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("parsl")
    reuse = rhtex_executor(run_dir, "reuse", nodes=NODES)
    fork = rhtex_executor(run_dir, "fork", nodes=NODES, app_isolation="fork")
    # The same in a pool-manager without cgroups: tasks are killed by their
    # process group only.
    groups = rhtex_executor(run_dir, "groups", nodes=NODES)
    everything = (reuse, fork, groups)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            rhtex.parsl,
            "LocalDeployment",
            functools.partial(no_cgroups_for, "groups", rhtex.parsl.LocalDeployment),
        )
        loaded = load_parsl(everything, run_dir)
    yield {"reuse": reuse, "fork": fork, "groups": groups}
    servers = warm_servers(daemon_pids(everything))
    workers = [pid for server in servers for pid in children_of(server)]
    unload_parsl(loaded, everything)
    assert wait_gone(workers, 10) == [], "a reused worker outlived its pool-manager"


def no_cgroups_for(label, deployment, *args, **kwargs):
    if kwargs.get("block_id") == label:
        kwargs["manager_args"] = ["--no-cgroups"]
    return deployment(*args, **kwargs)


def children_of(pid: int) -> list:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def wait_for_file(path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout} s")


def where_and_what(x):
    return x + 1, os.getpid(), os.getppid(), int(os.environ["PARSL_NUM_NODES"])


def test_reused_workers_run_many_apps_each_in_its_task(executors):
    executor = executors["reuse"]
    futures = [executor.submit(where_and_what, {"num_nodes": 1 + i % 2}, i) for i in range(200)]
    results = [future.result(timeout=120) for future in futures]
    assert [value for value, _pid, _parent, _nodes in results] == list(range(1, 201))
    assert [nodes for *_, nodes in results] == [1 + i % 2 for i in range(200)]
    pids = {pid for _value, pid, _parent, _nodes in results}
    assert len(pids) < 50, f"200 apps on 4 nodes ran in {len(pids)} processes: no reuse"
    assert len(warm_parents(executor, results)) == 1, "one warm server"


def warm_parents(executor, results):
    """The parents of the apps' processes, but for the pool-manager (the
    parent of the apps that ran cold, before the warm server listened)."""
    manager = executor._deployment.managers[0].pid
    return {parent for _value, _pid, parent, _nodes in results} - {manager}


def remember(value):
    """Returns what an earlier app left in this interpreter and environment."""
    import builtins

    previous = getattr(builtins, "_rhtex_test_state", None)
    builtins._rhtex_test_state = value
    leaked = os.environ.get("RHTEX_TEST_LEAK")
    os.environ["RHTEX_TEST_LEAK"] = str(value)
    return os.getpid(), previous, leaked


@pytest.mark.parametrize("isolation", ["reuse", "fork"])
def test_state_passes_between_apps_only_when_reused(executors, isolation):
    executor = executors[isolation]
    last_value = {}
    repeats = 0
    for value in range(12):  # one at a time; at most 4 workers wait
        pid, previous, leaked = executor.submit(remember, {"num_nodes": 1}, value).result(60)
        assert leaked is None, "each app gets its own task's environment only"
        if isolation == "fork":
            assert previous is None, "a fresh fork keeps nothing from the previous app"
        elif pid in last_value:
            assert previous == last_value[pid]
            repeats += 1
        last_value[pid] = value
    if isolation == "reuse":
        assert repeats > 0, "12 apps in a row never found a worker that ran one before"


def sleeps_with_a_child(pid_file):
    import subprocess
    import time

    child = subprocess.Popen(["sleep", "600"])
    with open(pid_file + ".tmp", "w") as out:
        out.write(f"{os.getpid()} {child.pid}")
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(600)


def start_sleeper(executor, resource_specification, tmp_path: Path):
    """Submits :func:`sleeps_with_a_child`; returns its future and, once it
    runs, the pids of the worker running it and of its child."""
    pid_file = tmp_path / "app.pid"
    future = executor.submit(sleeps_with_a_child, resource_specification, str(pid_file))
    return future, [int(pid) for pid in wait_for_file(pid_file, 60).split()]


def assert_later_apps_run(executor):
    futures = [executor.submit(where_and_what, {"num_nodes": 1}, i) for i in range(20)]
    assert [future.result(timeout=60)[0] for future in futures] == list(range(1, 21))


def assert_ends_with_its_processes(executor, future, pids, error, message, match=None):
    """The app's ``future`` raises ``error`` (matching ``match``), the
    processes ``pids`` are gone (else fails with ``message``), and later
    apps still run."""
    with pytest.raises(error, match=match):
        future.result(timeout=60)
    assert wait_gone(pids, 10) == [], message
    assert_later_apps_run(executor)


@pytest.mark.parametrize("label", ["reuse", "groups"])
def test_walltime_kills_an_app_in_a_reused_worker_and_what_it_started(executors, label, tmp_path):
    executor = executors[label]
    assert_later_apps_run(executor)  # workers exist that ran apps before
    future, pids = start_sleeper(executor, {"num_nodes": 1, "walltime": 3}, tmp_path)
    assert_ends_with_its_processes(
        executor, future, pids, AppTimeout, "the worker and its app's child outlived the walltime"
    )


@pytest.mark.parametrize("label", ["reuse", "groups"])
def test_cancel_kills_an_app_in_a_reused_worker_and_what_it_started(executors, label, tmp_path):
    executor = executors[label]
    future, pids = start_sleeper(executor, {"num_nodes": 1}, tmp_path)
    executor._client.cancel(future.parsl_executor_task_id)
    assert_ends_with_its_processes(
        executor,
        future,
        pids,
        RhtexTaskError,
        "the worker and its app's child outlived the cancel",
        match="cancelled",
    )


@pytest.mark.parametrize("label", ["reuse", "groups"])
def test_a_worker_killed_mid_app_fails_only_its_app(executors, label, tmp_path):
    executor = executors[label]
    future, (worker, child) = start_sleeper(executor, {"num_nodes": 1}, tmp_path)
    os.kill(worker, signal.SIGKILL)
    assert_ends_with_its_processes(
        executor, future, [worker, child], RhtexTaskError, "the task's end took its app's child too"
    )


def test_idle_workers_exit_and_the_server_starts_new_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("RHTEX_WARM_WORKER_IDLE", "1")
    executor = RhtexExecutor(label="idle", nodes=NODES, working_dir=tmp_path / "idle")
    executor.run_dir = str(tmp_path)
    executor.start()
    try:
        futures = [executor.submit(where_and_what, {"num_nodes": 1}, i) for i in range(40)]
        results = [future.result(timeout=120) for future in futures]
        (server,) = warm_parents(executor, results)
        workers = {pid for _v, pid, _parent, _n in results}
        assert wait_gone(workers, 30) == [], "idle workers did not exit"
        assert not process_gone(server), "the server outlives its idle workers"
        value, _pid, parent, _nodes = executor.submit(where_and_what, {"num_nodes": 1}, 1).result(
            60
        )
        assert (value, parent) == (2, server)
    finally:
        pids = executor._deployment.pids()
        executor.shutdown()
    assert wait_gone(pids, 10) == []
    assert wait_gone(warm_servers(pids), 10) == []
