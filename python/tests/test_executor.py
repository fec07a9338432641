"""RhtexExecutor end to end: Parsl apps through real daemons and MPICH's mpiexec."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import parsl
import pytest
from parsl import File, bash_app, python_app
from parsl.app.errors import AppTimeout
from parsl.executors.errors import InvalidResourceSpecification
from parsl.executors.high_throughput.errors import ManagerLost

from rhtex.client import TaskResult
from rhtex.parsl import RhtexExecutor, RhtexTaskError, _failure

from conftest import load_parsl, rhtex_executor, unload_parsl, wait_gone

NODES = ["localhost", "vm"]  # both resolve here, so MPICH runs ranks on "both"

# MPICH's mpiexec (hydra 4.0.2, Debian 12) forwards its stdin to rank 0. With
# stdin at EOF (/dev/null, which Parsl and rhtex give every task) it tells the
# first host's proxy so; when the ranks there have already exited, that write
# hits a closed socket and mpiexec dies of SIGPIPE (exit -13). With two hosts
# and an instant rank program such as `hostname` that happened in 2 runs of 300
# of plain `mpiexec -n 4 -ppn 2 -hosts localhost,vm hostname </dev/null`, and
# in 0 of 600 with its stdin closed (`<&-`), which stops the forwarding. Real MPI
# programs take longer to finish than mpiexec takes to read its stdin; these
# test programs close it. README.md, "When something goes wrong", says the same.
NO_STDIN = "<&-"


@pytest.fixture(scope="module")
def dfk(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("parsl")
    mpi = rhtex_executor(run_dir, "mpi", nodes=NODES)
    # "mpi" runs apps in a warm server per pool-manager's reused workers
    # (the default), "fork" in a fresh fork of it per app, "serial" in a
    # fresh interpreter per app: all three paths are tested.
    fork = rhtex_executor(run_dir, "fork", nodes=NODES, app_isolation="fork")
    serial = RhtexExecutor(
        label="serial", require_resource_spec=False, slots_per_node=4, warm_runner=False
    )
    loaded = load_parsl([mpi, fork, serial], run_dir)
    yield loaded
    unload_parsl(loaded, [mpi, fork, serial])


@bash_app(executors=["mpi"])
def mpi_hostname(
    parsl_resource_specification, stdout=parsl.AUTO_LOGNAME, stderr=parsl.AUTO_LOGNAME
):
    return f"$PARSL_MPI_PREFIX hostname {NO_STDIN}"


def test_mpi_prefix_hostname_two_nodes_two_ranks(dfk):
    future = mpi_hostname(parsl_resource_specification={"num_nodes": 2, "ranks_per_node": 2})
    assert future.result(timeout=120) == 0
    lines = Path(future.stdout).read_text().split()
    assert lines == [os.uname().nodename] * 4


@bash_app(executors=["mpi"])
def lammps_mpi_application(
    infile: File, parsl_resource_specification: dict, stdout=None, lmp_mpi="lmp_mpi"
):
    return f"$PARSL_MPI_PREFIX {lmp_mpi} -in {infile.filepath} {NO_STDIN}"


def test_lammps_style_bash_app(dfk, tmp_path):
    program = tmp_path / "lmp_mpi"
    program.write_text(
        "#!/bin/bash\n"
        'echo "rank $PMI_RANK of $PMI_SIZE read $(cat "$2") on $PARSL_NUM_NODES nodes"\n'
    )
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    infile = tmp_path / "in.file"
    infile.write_text("units lj")
    out = tmp_path / "lammps.out"
    future = lammps_mpi_application(
        File(str(infile)),
        parsl_resource_specification={"num_nodes": 2, "ranks_per_node": 2, "num_ranks": 4},
        stdout=str(out),
        lmp_mpi=str(program),
    )
    assert future.result(timeout=120) == 0
    assert sorted(out.read_text().splitlines()) == [
        f"rank {rank} of 4 read units lj on 2 nodes" for rank in range(4)
    ]


@python_app(executors=["mpi"])
def ranks_from_environment(parsl_resource_specification):
    import os

    return int(os.environ["PARSL_NUM_RANKS"]), os.environ["PARSL_MPI_NODELIST"].split(",")


def test_app_reads_parsl_num_ranks_in_its_body(dfk):
    spec = {"num_nodes": 2, "num_ranks": 3}
    ranks, nodes = ranks_from_environment(parsl_resource_specification=spec).result(timeout=60)
    assert ranks == 3 and sorted(nodes) == sorted(NODES)
    assert spec == {"num_nodes": 2, "num_ranks": 3}, "the caller's dict was changed"


@python_app(executors=["serial"])
def returns_a_value(x):
    return {"squared": x * x, "pid": __import__("os").getpid()}


@python_app(executors=["serial"])
def raises(message):
    raise ValueError(message)


def test_python_app_returns_a_value(dfk):
    value = returns_a_value(7).result(timeout=60)
    assert value["squared"] == 49 and value["pid"] != os.getpid()


def test_python_app_raises_its_own_exception(dfk):
    with pytest.raises(ValueError, match="from the lead node"):
        raises("from the lead node").result(timeout=60)


@python_app(executors=["mpi"])
def sleeps(seconds, parsl_resource_specification):
    import time

    time.sleep(seconds)


@python_app(executors=["mpi"])
def sleeps_and_says_where(pid_file, parsl_resource_specification):
    import os
    import time

    with open(pid_file, "w") as out:
        out.write(str(os.getpid()))
    time.sleep(60)


def test_rhtex_walltime_is_app_timeout_and_kills_the_warm_child(dfk, tmp_path):
    pid_file = tmp_path / "app.pid"
    future = sleeps_and_says_where(str(pid_file), parsl_resource_specification={"walltime": 2})
    with pytest.raises(AppTimeout):
        future.result(timeout=60)
    assert wait_gone([int(pid_file.read_text())], 10) == []


def test_cold_runner_walltime(dfk):
    future = dfk.executors["serial"].submit(time_sleep, {"walltime": 1}, 60)
    with pytest.raises(AppTimeout):
        future.result(timeout=60)


def time_sleep(seconds):
    import time

    time.sleep(seconds)


def until_warm(executor):
    """Runs apps until one runs in the warm server (the first ones run cold,
    children of the pool-manager, until the server they start listens)."""
    import time

    manager = executor._deployment.managers[0].pid
    deadline = time.monotonic() + 60
    while executor.submit(num_nodes_and_pid, {"num_nodes": 1}).result(60)[2] == manager:
        assert time.monotonic() < deadline, "no warm server within 60 s"


def test_warm_children_are_fresh_forks(dfk):
    until_warm(dfk.executors["fork"])
    first, second = (
        dfk.executors["fork"].submit(num_nodes_and_pid, {"num_nodes": n}) for n in (1, 2)
    )
    (nodes_1, pid_1, parent_1), (nodes_2, pid_2, parent_2) = first.result(60), second.result(60)
    assert (nodes_1, nodes_2) == (1, 2), "each child has its own task's environment"
    assert pid_1 != pid_2 and parent_1 == parent_2, "forked by one warm server"


def num_nodes_and_pid():
    return int(os.environ["PARSL_NUM_NODES"]), os.getpid(), os.getppid()


def test_missing_spec_is_refused_like_mpiexecutor(dfk):
    with pytest.raises(InvalidResourceSpecification, match="MPI mode requires"):
        ranks_from_environment(parsl_resource_specification={}).result(timeout=10)


def test_uneven_ranks_are_refused(dfk):
    """rhtex differs from Parsl on purpose: 4 ranks over 3 nodes cannot be even."""
    spec = {"num_nodes": 3, "num_ranks": 4}
    with pytest.raises(InvalidResourceSpecification, match="cannot be spread over num_nodes = 3"):
        ranks_from_environment(parsl_resource_specification=spec).result(timeout=10)
    assert spec == {"num_nodes": 3, "num_ranks": 4}


def num_nodes_from_environment():
    return int(os.environ["PARSL_NUM_NODES"])


@bash_app(executors=["mpi"])
def echo_launch_cmd(parsl_resource_specification, stdout=parsl.AUTO_LOGNAME):
    return 'echo "$PARSL_MPI_PREFIX hostname"'


def test_bash_multiple_set_rhtex_behaviour(dfk):
    """Parsl's test_bash_multiple_set asks for 4 ranks on 1, 2, 3 and 4 nodes:
    rhtex rejects 3 (ranks cannot be spread evenly) and runs the others
    (1 and 2 here, on a 2-node block; Parsl's own test runs 4 on 4 nodes)."""
    futures = {
        n: echo_launch_cmd(parsl_resource_specification={"num_nodes": n, "num_ranks": 4})
        for n in (1, 2, 3)
    }
    with pytest.raises(InvalidResourceSpecification, match="ceil\\(4 / 3\\) = 2"):
        futures[3].result(timeout=10)
    with pytest.raises(RhtexTaskError, match="unschedulable"):
        echo_launch_cmd(parsl_resource_specification={"num_nodes": 4}).result(timeout=60)
    for n in (1, 2):
        assert futures[n].result(timeout=120) == 0
        line = Path(futures[n].stdout).read_text()
        assert line.startswith(f"mpiexec -n 4 -ppn {4 // n} -hosts "), line


def test_the_spec_is_a_snapshot_at_submit(dfk):
    spec = {"num_nodes": 1}
    future = dfk.executors["mpi"].submit(num_nodes_from_environment, spec)
    spec["num_nodes"] = 2
    assert future.result(timeout=60) == 1
    assert future.parsl_executor_task_id


def test_version_mismatch_is_a_clear_exception(dfk, tmp_path):
    wrapper = tmp_path / "python-with-other-parsl"
    wrapper.write_text(f'#!/bin/sh\nRHTEX_PARSL_VERSION=1999.1.1 exec {os.sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    executor = dfk.executors["serial"]
    executor.python = str(wrapper)
    try:
        future = executor.submit(num_nodes_from_environment, {})
    finally:
        executor.python = None
    with pytest.raises(RhtexTaskError, match="submit side runs Parsl 1999.1.1"):
        future.result(timeout=60)


def test_failures_map_to_parsl_exceptions():
    lost = _failure(
        TaskResult(
            "t",
            "failed",
            error_kind="manager_lost",
            manager_id="0b1d5c3a-7e4f-4a21-8c6d-9e0f1a2b3c4d",
            nodes=["nid001"],
        )
    )
    assert isinstance(lost, ManagerLost) and "nid001" in str(lost)
    assert isinstance(
        _failure(TaskResult("t", "failed", error_kind="walltime_exceeded")), AppTimeout
    )
    other = _failure(TaskResult("t", "failed", error_kind="launch_failed", stderr_tail=b"no cwd"))
    assert isinstance(other, RhtexTaskError) and "no cwd" in str(other)


def test_arguments_are_stored_under_their_names_and_nothing_starts(tmp_path):
    executor = RhtexExecutor(
        label="x",
        interchange="tcp://127.0.0.1:1",
        keys_dir=tmp_path / "keys",
        nodes=["a", "b"],
        mpi_launcher="srun",
        slots_per_node=8,
        python="/usr/bin/python3",
        working_dir=tmp_path / "work",
        require_resource_spec=False,
    )
    text = repr(executor)
    assert "RhtexExecutor(" in text and "mpi_launcher='srun'" in text
    assert not (tmp_path / "work").exists() and executor._client is None


def test_bad_launcher_is_a_value_error():
    with pytest.raises(ValueError, match="mpi_launcher must be one of mpiexec, srun, aprun"):
        RhtexExecutor(mpi_launcher="bad_launcher")


@pytest.mark.parametrize(
    "spec, valid",
    [
        ({"num_nodes": 2, "ranks_per_node": 1}, True),
        ({"launcher_options": "--debug_foo"}, True),
        ({"priority": 1, "walltime": 10, "retries": 2, "exclusive": False}, True),
        ({"num_nodes": 2, "BAD_OPT": 1}, False),
        ({}, False),
    ],
)
def test_validate_resource_spec(spec, valid):
    executor = RhtexExecutor()
    before = dict(spec)
    if valid:
        assert executor.validate_resource_spec(spec) is None
    else:
        with pytest.raises(InvalidResourceSpecification):
            executor.validate_resource_spec(spec)
    assert spec == before
    assert RhtexExecutor(require_resource_spec=False).validate_resource_spec({}) is None


def node_list():
    return os.environ["PARSL_MPI_NODELIST"].split(","), os.environ["PARSL_WORKER_BLOCK_ID"]


def test_interchange_config_with_a_local_provider(tmp_path):
    """interchange_config's [provider] submits the block (here kind = "local")."""
    config = tmp_path / "interchange.toml"
    config.write_text(
        '[provider]\nkind = "local"\nnodes_per_block = 2\nmax_blocks = 1\nmax_idle = 60\n'
    )
    executor = RhtexExecutor(
        label="provided", interchange_config=config, working_dir=tmp_path / "work"
    )
    executor.run_dir = str(tmp_path)
    executor.start()
    try:
        assert executor._deployment.managers == [], "the provider starts the blocks"
        nodes, block_id = executor.submit(node_list, {"num_nodes": 2}).result(timeout=120)
        assert len(nodes) == 2 and block_id
    finally:
        pids = executor._deployment.pids()
        executor.shutdown()
    assert wait_gone(pids, 10) == []


def test_warm_server_refuses_a_wrong_token(dfk):
    import socket
    import time

    from rhtex import warm

    executor = dfk.executors["mpi"]
    assert executor.submit(num_nodes_from_environment, {"num_nodes": 1}).result(60) == 1
    ((_python, env),) = executor._warm.items()
    manager_id = executor._client.status()["managers"][0]["manager_id"]
    path = Path(warm.port_file(manager_id, env[warm.KEY_ENV]))
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    port = int(path.read_text())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"not-the-token {os.getpid()}\n".encode())
        assert connection.recv(16) == b"", "the server must hang up without running anything"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
