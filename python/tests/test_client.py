"""The client and the local deployment against the real daemons (CURVE on)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import threading
from concurrent.futures import as_completed, wait

import pytest

from rhtex import spec
from rhtex.client import Client, CommandFailed, ConnectError
from rhtex.local import LocalDeployment, LocalError, find_program

from conftest import bin_dir, wait_gone


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    os.environ["RHTEX_BIN_DIR"] = str(bin_dir())
    run_dir = tmp_path_factory.mktemp("deployment")
    local = LocalDeployment(run_dir, nodes=["localhost", "vm"], slots_per_node=4)
    local.start()
    yield local
    pids = local.pids()
    local.stop()
    assert wait_gone(pids, 10) == []


@pytest.fixture
def client(deployment):
    with deployment.client() as connected:
        deployment.wait_for_managers(connected)
        yield connected


def test_submit_and_wait(client):
    future = client.submit("echo hello from $PARSL_NUM_NODES node", {"num_nodes": 1})
    result = future.result(timeout=30)
    assert result.ok, result
    assert result.stdout_tail == b"hello from 1 node\n"
    assert result.nodes in (["localhost"], ["vm"])


def test_mpi_task_gets_its_prefix(client):
    result = client.submit(
        "$PARSL_MPI_PREFIX hostname", {"num_nodes": 2, "ranks_per_node": 2}
    ).result(timeout=60)
    assert result.ok, result.stderr_tail
    assert len(result.stdout_tail.splitlines()) == 4
    assert sorted(result.nodes) == ["localhost", "vm"]


def test_failed_task_is_a_result(client):
    result = client.submit("exit 3").result(timeout=30)
    assert (result.state, result.exit_code, result.error_kind) == ("failed", 3, "exit_code")


def test_bad_spec_is_refused_before_sending(client):
    with pytest.raises(spec.SpecError, match="num_ranks = 4 cannot be spread over num_nodes = 3"):
        client.submit("true", {"num_nodes": 3, "num_ranks": 4})
    assert client.n_outstanding == 0


def test_many_tasks_as_completed(client):
    futures = [client.submit(f"echo {i}", {"exclusive": False}) for i in range(40)]
    outputs = sorted(int(f.result().stdout_tail) for f in as_completed(futures, timeout=120))
    assert outputs == list(range(40))


def test_many_threads_share_one_client(client):
    futures = []
    lock = threading.Lock()

    def worker(offset):
        mine = [client.submit(f"echo {offset + i}", {"exclusive": False}) for i in range(10)]
        with lock:
            futures.extend(mine)

    threads = [threading.Thread(target=worker, args=(100 * n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done, not_done = wait(futures, timeout=120)
    assert not not_done
    assert len({f.result().stdout_tail for f in done}) == 40


def test_status_task_status_and_manager_commands(client):
    status = client.status()
    assert status["protocol_version"] == 2
    (manager,) = status["managers"]
    assert manager["n_nodes"] == 2 and manager["slots_per_node"] == 4
    manager_id = manager["manager_id"]
    assert "held" in client.hold(manager_id)
    future = client.submit("echo held back")
    (info,) = client.task_status([future.task_id])
    assert info["state"] == "queued"
    client.release(manager_id)
    assert future.result(timeout=30).ok
    (info,) = client.task_status([future.task_id])
    assert info["state"] == "completed" and info["result"]["stdout_tail"] == b"held back\n"
    with pytest.raises(CommandFailed):
        client.hold("0b1d5c3a-7e4f-4a21-8c6d-9e0f1a2b3c4d")


def test_cancel_a_running_task(client):
    future = client.submit("echo started; exec sleep 60")
    deadline_state = None
    for _ in range(600):
        (info,) = client.task_status([future.task_id])
        deadline_state = info["state"]
        if deadline_state == "running":
            break
        threading.Event().wait(0.05)
    assert deadline_state == "running"
    client.cancel(future.task_id)
    result = future.result(timeout=30)
    assert (result.state, result.error_kind) == ("cancelled", "cancelled")


def test_watch_from_a_second_client(deployment, client):
    future = client.submit("echo watched")
    with deployment.client() as other:
        (watched,) = other.watch([future.task_id])
        assert watched.result(timeout=30).stdout_tail == b"watched\n"


def test_walltime_exceeded(client):
    result = client.submit("exec sleep 30", {"walltime": 0.5}).result(timeout=30)
    assert result.error_kind == "walltime_exceeded"


def test_unknown_curve_key_is_named(deployment, tmp_path):
    from rhtex.keys import keygen

    other_keys = keygen(tmp_path / "other")
    # the server's public key is right, our client key is not admitted
    (other_keys / "server.key").write_text((deployment.keys_dir / "server.key").read_text())
    with pytest.raises(ConnectError, match="refused our CURVE key"):
        Client(deployment.client_url, keys_dir=other_keys, timeout=5)


def test_insecure_client_of_a_curve_interchange_is_named(deployment):
    with pytest.raises(ConnectError, match="--insecure on both sides"):
        Client(deployment.client_url, insecure=True, timeout=2)


def test_missing_interchange_is_named():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectError, match=f"no interchange answers at tcp://127.0.0.1:{port}"):
        Client(f"tcp://127.0.0.1:{port}", insecure=True, timeout=1)


def test_open_key_directory_is_refused(deployment, tmp_path):
    from rhtex.keys import KeyFileError, keygen

    keys = keygen(tmp_path / "open")
    os.chmod(keys, 0o750)
    with pytest.raises(KeyFileError, match="chmod 700"):
        Client(deployment.client_url, keys_dir=keys)


def test_missing_program_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("RHTEX_BIN_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    with pytest.raises(LocalError, match="cannot find the interchange program"):
        find_program("interchange")


def test_shutdown_stops_everything(tmp_path):
    local = LocalDeployment(tmp_path / "run", nodes=["localhost"]).start()
    pids = local.pids()
    with local.client() as client:
        local.wait_for_managers(client)
        running = client.submit("exec sleep 60")
        client.shutdown()
        result = running.result(timeout=30)
        assert result.state in ("failed", "cancelled")
    local.stop()
    assert wait_gone(pids, 10) == []


def test_drain_lets_the_manager_leave(tmp_path):
    with LocalDeployment(tmp_path / "run", nodes=["localhost"]) as local, local.client() as client:
        local.wait_for_managers(client)
        (manager,) = client.status()["managers"]
        client.drain(manager["manager_id"])
        assert local.managers[0].wait(30) == 0
        assert client.status()["managers"] == []


SCRIPT = textwrap.dedent(
    """
    import sys, time
    from rhtex.local import LocalDeployment
    local = LocalDeployment(sys.argv[1], nodes=["localhost"]).start()
    with local.client() as client:
        local.wait_for_managers(client)
        future = client.submit("echo $$ > " + sys.argv[2] + "; exec sleep 300")
        while True:
            (info,) = client.task_status([future.task_id])
            if info["state"] == "running":
                break
            time.sleep(0.05)
        print(*local.pids(), flush=True)
        time.sleep(300)
    """
)


def test_daemons_exit_with_a_killed_parent(tmp_path):
    """SIGKILL of the Python process: both daemons and the task go within 10 s."""
    task_pid_file = tmp_path / "task.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "run"), str(task_pid_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = parent.stdout.readline()
        pids = [int(pid) for pid in line.split()]
        assert len(pids) == 2, line
        for _ in range(200):
            if task_pid_file.exists() and task_pid_file.read_text().strip():
                break
            threading.Event().wait(0.05)
        task_pid = int(task_pid_file.read_text())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert wait_gone(pids + [task_pid], 10) == []
