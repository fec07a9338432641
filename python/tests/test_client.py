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

from rhtex import protocol, spec
from rhtex.client import (
    Client,
    CommandFailed,
    ConnectError,
    InputTooLarge,
    InterchangeBusy,
    PermissionDenied,
)
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
    assert status["protocol_version"] == 4
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


def test_tasks_lists_submitted_tasks_by_state(client):
    future = client.submit("exit 4")
    assert future.result(timeout=30).state == "failed"
    listed = {task["task_id"]: task for task in client.tasks()}
    mine = listed[future.task_id]
    assert (mine["state"], mine["exit_code"], mine["error_kind"]) == ("failed", 4, "exit_code")
    assert mine["submitted_at"] <= mine["start_time"] <= mine["end_time"]
    failed = client.tasks(state="failed")
    assert future.task_id in {task["task_id"] for task in failed}
    assert all(task["state"] == "failed" for task in failed)


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


def test_task_input_and_output_travel_inline(client):
    """Protocol 3: the input reaches the command as $RHTEX_TASK_INPUT, what
    it writes to $RHTEX_TASK_OUTPUT comes back, even from a failed task."""
    data = bytes(range(256)) * 4096  # 1 MiB, not UTF-8
    result = client.submit(
        'cat "$RHTEX_TASK_INPUT" "$RHTEX_TASK_INPUT" > "$RHTEX_TASK_OUTPUT"; '
        'wc -c < "$RHTEX_TASK_INPUT"',
        input=data,
    ).result(timeout=60)
    assert result.ok, result.stderr_tail
    assert int(result.stdout_tail) == len(data)
    assert result.output == data + data
    failed = client.submit('printf oops > "$RHTEX_TASK_OUTPUT"; exit 4').result(timeout=30)
    assert (failed.state, failed.exit_code, failed.output) == ("failed", 4, b"oops")
    quiet = client.submit('test -z "${RHTEX_TASK_INPUT:-}" && echo none').result(timeout=30)
    assert quiet.ok and quiet.stdout_tail == b"none\n" and quiet.output is None


def test_limits_come_from_welcome(client):
    assert client.max_task_input_bytes == client.max_task_output_bytes == 16 * 1024 * 1024


def test_input_too_large_is_refused_before_sending(tmp_path):
    args = ["--max-task-input-bytes", "1000", "--max-task-output-bytes", "100"]
    with (
        LocalDeployment(tmp_path / "run", interchange_args=args) as local,
        local.client() as client,
    ):
        assert (client.max_task_input_bytes, client.max_task_output_bytes) == (1000, 100)
        with pytest.raises(InputTooLarge, match=r"1001 bytes, more than .*\(1000\)"):
            client.submit("true", input=b"x" * 1001)
        assert client.n_outstanding == 0
        local.wait_for_managers(client)
        fits = client.submit('cat "$RHTEX_TASK_INPUT" > "$RHTEX_TASK_OUTPUT"', input=b"y" * 100)
        assert fits.result(timeout=30).output == b"y" * 100
        # past the client's check (an interchange that lowered its limit):
        # the interchange refuses the task itself
        client.max_task_input_bytes = 10_000
        refused = client.submit("true", input=b"x" * 1001).result(timeout=30)
        assert (refused.state, refused.error_kind) == ("failed", "input_too_large")
        assert "1000" in refused.error_message
        too_much = client.submit('head -c 101 /dev/zero > "$RHTEX_TASK_OUTPUT"')
        result = too_much.result(timeout=30)
        assert (result.state, result.error_kind, result.exit_code) == (
            "failed",
            "output_too_large",
            0,
        )
        assert result.output is None


def test_a_busy_submit_fails_as_a_whole(tmp_path):
    """Past --max-queued-input-mib the interchange refuses a whole submit."""
    args = ["--max-queued-input-mib", "1", "--max-task-input-bytes", "700000"]
    with (
        LocalDeployment(tmp_path / "run", interchange_args=args) as local,
        local.client() as client,
    ):
        local.wait_for_managers(client)
        (manager,) = client.status()["managers"]
        client.hold(manager["manager_id"])  # tasks stay queued, holding their input
        first = client.submit("true", input=b"a" * 600_000)
        (info,) = client.task_status([first.task_id])
        assert info["state"] == "queued"
        second = client.submit_many(
            [
                {"task_id": protocol.new_task_id(), "command": "true", "input": b"b" * 300_000},
                {"task_id": protocol.new_task_id(), "command": "true", "input": b"c" * 300_000},
            ]
        )
        for future in second:
            with pytest.raises(
                InterchangeBusy,
                match=r"refused a submit of 2 task\(s\) as a whole, none accepted: busy: ",
            ):
                future.result(timeout=30)
        statuses = client.task_status([future.task_id for future in second])
        assert [status["state"] for status in statuses] == ["unknown", "unknown"]
        client.release(manager["manager_id"])
        assert first.result(timeout=30).ok
        again = client.submit("true", input=b"b" * 600_000)
        assert again.result(timeout=30).ok


def test_unknown_curve_key_is_named(deployment, tmp_path):
    from rhtex.keys import keygen

    other_keys = keygen(tmp_path / "other")
    # the server's public key is right, our client key is not admitted
    (other_keys / "server.key").write_text((deployment.keys_dir / "server.key").read_text())
    with pytest.raises(ConnectError, match="refused our CURVE key"):
        Client(deployment.client_url, keys_dir=other_keys, timeout=5)


def test_a_client_identity_reaches_only_its_own_tasks(deployment, client):
    """An identity added while the interchange runs is admitted after
    SIGHUP; it may not watch, cancel or steer what is not its own."""
    subprocess.run(
        [str(bin_dir() / "rhtex"), "keygen", "--client", "alice", str(deployment.keys_dir)],
        check=True,
        capture_output=True,
    )
    os.kill(deployment.interchange.pid, signal.SIGHUP)
    alice = None
    for _ in range(100):
        try:
            alice = Client(
                deployment.client_url, keys_dir=deployment.keys_dir, client_key="alice", timeout=2
            )
            break
        except ConnectError:
            continue
    assert alice is not None, "alice was not admitted after SIGHUP"
    with alice:
        theirs = client.submit("sleep 30")
        mine = alice.submit("echo mine")
        assert mine.result(timeout=30).ok
        with pytest.raises(PermissionDenied, match="denied: .*may cancel it"):
            alice.cancel(theirs.task_id)
        with pytest.raises(PermissionDenied):
            alice.watch([theirs.task_id])[0].result(timeout=30)
        manager = client.status()["managers"][0]["manager_id"]
        with pytest.raises(PermissionDenied, match="hold needs an admin"):
            alice.hold(manager)
        client.cancel(theirs.task_id)
        assert theirs.result(timeout=30).state == "cancelled"


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


def test_a_silent_interchange_fails_the_outstanding_futures(tmp_path):
    """With tasks outstanding and nothing heard, the client asks for status;
    no answer within its timeout fails every outstanding future."""
    from rhtex.client import ConnectionLost

    with LocalDeployment(tmp_path / "run", nodes=["localhost"]) as local:
        with local.client(timeout=2, liveness_period=0.5) as client:
            local.wait_for_managers(client)
            future = client.submit("exec sleep 60")
            os.kill(local.interchange.pid, signal.SIGSTOP)
            try:
                with pytest.raises(ConnectionLost, match="did not answer status"):
                    future.result(timeout=30)
            finally:
                os.kill(local.interchange.pid, signal.SIGCONT)


def test_watching_a_task_the_interchange_does_not_know_fails_naming_it(client):
    from rhtex.client import UnknownTasks

    unknown = protocol.new_task_id()
    (future,) = client.watch([unknown])
    with pytest.raises(UnknownTasks, match=unknown):
        future.result(timeout=30)


def _start_interchange(tmp_path, name, client_url):
    """A bare interchange (no manager, --insecure) bound to ``client_url``;
    returns the process once its ready line is out."""
    with open(tmp_path / f"{name}.log", "wb") as log:
        process = subprocess.Popen(
            [
                str(find_program("interchange")),
                "--insecure",
                "--run-dir",
                str(tmp_path / name),
                "--client-listen",
                client_url,
                "--manager-listen",
                "tcp://127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    ready = process.stdout.readline()
    assert b"client_url" in ready, ready
    return process


def test_waiting_goes_on_across_an_interchange_restart(tmp_path):
    """SIGTERM stops the interchange; the one started next on the same
    address is told hello and watch again; not knowing the task (no
    journal), it fails the future naming the task."""
    from rhtex.client import UnknownTasks

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    first = _start_interchange(tmp_path, "first", url)
    second = None
    try:
        with Client(url, insecure=True, timeout=10, liveness_period=0.3) as client:
            future = client.submit("true")  # queued: no manager
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=30) == 0
            second = _start_interchange(tmp_path, "second", url)
            with pytest.raises(UnknownTasks, match=future.task_id):
                future.result(timeout=30)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
