"""RhtexExecutor's payloads inline (protocol 3): the serialized app goes as
the task's input, its result comes back as the task's output; nothing is
left in files on either side, and the interchange's limits give clear
exceptions."""

from __future__ import annotations

import os
from pathlib import Path

import parsl
import pytest
from parsl import Config, python_app

from rhtex.client import TaskResult
from rhtex.parsl import RhtexExecutor, TaskInputTooLarge, TaskOutputTooLarge, _failure

from conftest import wait_gone

SMALL_LIMIT = 65536
MEGABYTE = 1024 * 1024


@pytest.fixture(scope="module")
def executors(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("payloads")
    limits = run_dir / "limits.toml"
    limits.write_text(
        f"max_task_input_bytes = {SMALL_LIMIT}\nmax_task_output_bytes = {SMALL_LIMIT}\n"
    )
    budget = run_dir / "budget.toml"
    budget.write_text("max_queued_input_mib = 1\nmax_task_input_bytes = 400000\n")
    options = {
        "warm": {},
        "cold": {"warm_runner": False},
        "small": {"interchange_config": limits},
        "budget": {"interchange_config": budget},
    }
    started = {
        label: RhtexExecutor(
            label=label, require_resource_spec=False, working_dir=run_dir / label, **extra
        )
        for label, extra in options.items()
    }
    loaded = parsl.load(Config(executors=list(started.values()), run_dir=str(run_dir / "runinfo")))
    yield started
    pids = [pid for executor in started.values() for pid in executor._deployment.pids()]
    loaded.cleanup()
    parsl.clear()
    assert wait_gone(pids, 10) == [], "shutdown() left a daemon behind"


@python_app(executors=["warm", "cold"])
def reversed_bytes(data):
    return data[::-1]


@python_app(executors=["small"])
def returns_bytes(n_bytes):
    return b"r" * n_bytes


@python_app(executors=["small"])
def length_of(data):
    return len(data)


def payload_files(executor: RhtexExecutor) -> list:
    """Task input/output files left in the pool-manager's tasks folder, and
    anything the executor wrote beside its daemons' files."""
    working_dir = Path(executor.working_dir)
    left = sorted(
        path.name
        for path in working_dir.glob("rhtex/manager-*/tasks/*")
        if path.suffix in (".input", ".output", ".partial")
    )
    return left + sorted(path.name for path in working_dir.iterdir() if path.name != "rhtex")


@pytest.mark.parametrize("label", ["warm", "cold"])
def test_a_megabyte_argument_and_result_travel_inline(executors, label):
    data = os.urandom(MEGABYTE)
    futures = [executors[label].submit(reversed_bytes.func, {}, data) for _ in range(3)]
    for future in futures:
        assert future.result(timeout=120) == data[::-1]
    assert list(Path(executors[label].working_dir).glob("rhtex/manager-*/tasks/*.stdout"))
    assert payload_files(executors[label]) == [], "payload files were left behind"


def test_through_the_dataflow_kernel(executors):
    data = os.urandom(MEGABYTE)
    assert reversed_bytes(data).result(timeout=120) == data[::-1]


def test_a_result_past_max_task_output_bytes_is_a_clear_exception(executors):
    assert returns_bytes(100).result(timeout=120) == b"r" * 100
    with pytest.raises(TaskOutputTooLarge, match=f"max_task_output_bytes is {SMALL_LIMIT}"):
        returns_bytes(2 * SMALL_LIMIT).result(timeout=120)
    assert payload_files(executors["small"]) == []


def test_an_argument_past_max_task_input_bytes_is_a_clear_exception(executors):
    executor = executors["small"]
    with pytest.raises(TaskInputTooLarge, match=f"max_task_input_bytes \\({SMALL_LIMIT}\\)"):
        executor.submit(length_of.func, {}, b"a" * (2 * SMALL_LIMIT))
    assert executor.outstanding == 0
    with pytest.raises(TaskInputTooLarge, match="length_of: its serialized function"):
        length_of(b"a" * (2 * SMALL_LIMIT)).result(timeout=60)
    assert length_of(b"a" * 1000).result(timeout=120) == 1000


def test_limit_failures_map_to_their_exceptions():
    too_large_output = _failure(
        TaskResult(
            "t",
            "failed",
            exit_code=0,
            error_kind="output_too_large",
            error_message="the task's output file has 20000000 bytes; "
            "max_task_output_bytes is 16777216",
        )
    )
    assert isinstance(too_large_output, TaskOutputTooLarge)
    assert "20000000 bytes" in str(too_large_output)
    too_large_input = _failure(TaskResult("t", "failed", error_kind="input_too_large"))
    assert isinstance(too_large_input, TaskInputTooLarge)


def working_directory():
    return os.getcwd()


def test_apps_run_in_the_submit_cwd_when_the_lead_node_has_it(executors, tmp_path):
    """No shared file system needed: without the submit side's directory on
    the lead node, the app runs in the pool-manager's run directory."""
    executor = executors["warm"]
    assert executor.submit(working_directory, {}).result(timeout=120) == os.getcwd()
    missing = str(tmp_path / "not-on-the-lead-node")
    executor._task_env["RHTEX_SUBMIT_CWD"] = missing
    try:
        future = executor.submit(working_directory, {})
    finally:
        executor._task_env["RHTEX_SUBMIT_CWD"] = os.getcwd()
    where = Path(future.result(timeout=120))
    assert where.parent == Path(executor.working_dir) / "rhtex" and where.name.startswith(
        "manager-"
    )


@python_app(executors=["budget"])
def sleeps_with(data, seconds):
    import time

    time.sleep(seconds)
    return len(data)


def test_a_busy_interchange_slows_apps_down_and_does_not_fail_them(executors, caplog):
    """8 apps of 300 kB on an interchange that holds at most 1 MiB of task
    input (one node, so they queue): submits are refused as busy and sent
    again until every app has run."""
    caplog.set_level("INFO", logger="rhtex.parsl")
    futures = [sleeps_with(os.urandom(300_000), 0.2) for _ in range(8)]
    assert [future.result(timeout=120) for future in futures] == [300_000] * 8
    assert any("the interchange is busy" in record.message for record in caplog.records)
    assert executors["budget"].outstanding == 0
