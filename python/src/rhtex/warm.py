"""A warm runner: one Python process per pool-manager with Parsl imported,
that forks per task.

Starting Python and importing Parsl costs about 0.7 s per task; Parsl's own
workers stay warm. With ``RHTEX_WARM=1`` in a task's environment (the
executor's default), ``python -m rhtex.runner`` does not import Parsl: it
connects to the warm server of its pool-manager (a Unix socket in the
abstract namespace, named after the manager id, the uid and the
interpreter; peers of another uid are refused) and hands over its
environment, working directory and standard streams (as file
descriptors). The server forks; the child joins the runner's process group
(so the pool-manager's SIGTERM/SIGKILL of the task, for cancel or
walltime, reaches it), takes the runner's streams, environment and
directory, runs the task like the cold runner and exits. The runner waits
for the child (a pipe whose write end only the child holds) and exits 0
when the output was written.

The first runner that finds no server starts one (``python -m
rhtex.runner --serve NAME MANAGER_PID``) in its own process group of the
pool-manager's session. The server exits when it has been idle for
``RHTEX_WARM_IDLE`` seconds (default 300) or when the pool-manager is gone.
Anything that goes wrong on the way to a warm run falls back to the cold
run in the runner itself.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Callable, Dict, Optional

import msgpack

WARM_ENV = "RHTEX_WARM"
IDLE_ENV = "RHTEX_WARM_IDLE"
MANAGER_ID_ENV = "PARSL_WORKER_POOL_ID"
CONNECT_TIMEOUT = 30.0


def socket_name(manager_id: str) -> str:
    """The server's abstract socket name for this manager, uid and interpreter."""
    interpreter = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    return f"\0rhtex-warm-{os.getuid()}-{manager_id}-{interpreter}"


def _connect(name: str) -> Optional[socket.socket]:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(name)
    except OSError:
        client.close()
        return None
    return client


def _start_server(name: str) -> None:
    # stdin/stdout/stderr to /dev/null: the server must not hold this task's
    # output files open. Its own process group, in the pool-manager's session.
    subprocess.Popen(
        [sys.executable, "-m", "rhtex.runner", "--serve", name.lstrip("\0"), str(os.getppid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=os.setpgrp,
        close_fds=True,
    )


def run_warm(environ: Dict[str, str]) -> Optional[int]:
    """Runs this task in the warm server; returns the exit code, or None to
    fall back to a cold run."""
    manager_id = environ.get(MANAGER_ID_ENV)
    if not manager_id or not hasattr(socket, "send_fds"):
        return None
    name = socket_name(manager_id)
    client = _connect(name)
    if client is None:
        _start_server(name)
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while client is None and time.monotonic() < deadline:
            time.sleep(0.01)
            client = _connect(name)
        if client is None:
            return None
    with client:
        request = msgpack.packb(
            {"cwd": os.getcwd(), "env": dict(environ), "pgid": os.getpgid(0)},
            use_bin_type=True,
        )
        try:
            socket.send_fds(client, [struct.pack("!I", len(request)) + request], [0, 1, 2])
            reply, fds, _flags, _address = socket.recv_fds(client, 16, 1)
        except OSError:
            return None
        if not fds:
            return None
        (done,) = fds
    # Wait for the child: its end of the pipe closes when it exits.
    with os.fdopen(done, "rb") as pipe:
        status = pipe.read()
    return 0 if status == b"0" else 1


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


def _recv_exact(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the runner went away")
        data += chunk
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serve(name: str, manager_pid: int, run_task: Callable[[], int]) -> int:
    """The warm server's loop; ``run_task`` runs one task in a forked child
    (streams, environment and directory already switched) and returns its
    exit code."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind("\0" + name)  # abstract: the name given without its NUL
    except OSError:
        return 0  # another server won the race
    listener.listen(64)
    idle_limit = float(os.environ.get(IDLE_ENV) or 300)
    # Import what tasks need once, before forking (the point of being warm).
    import parsl.app.errors  # noqa: F401
    import parsl.executors.execute_task  # noqa: F401
    import parsl.serialize  # noqa: F401

    uid = os.getuid()
    last_task = time.monotonic()
    while True:
        while True:  # reap finished children
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not _alive(manager_pid):
            return 0
        if time.monotonic() - last_task > idle_limit:
            return 0
        readable, _, _ = select.select([listener], [], [], 1.0)
        if not readable:
            continue
        connection, _ = listener.accept()
        with connection:
            try:
                credentials = connection.getsockopt(
                    socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
                )
                if struct.unpack("3i", credentials)[1] != uid:
                    continue
                header, fds, _flags, _address = socket.recv_fds(connection, 4, 3)
                (size,) = struct.unpack("!I", header + _recv_exact(connection, 4 - len(header)))
                request = msgpack.unpackb(_recv_exact(connection, size), raw=False)
            except (OSError, ValueError, ConnectionError, struct.error):
                continue
            if len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                continue
            last_task = time.monotonic()
            read_end, write_end = os.pipe()
            child = os.fork()
            if child == 0:  # the task
                os.close(read_end)
                listener.close()
                connection.close()
                _become_task(request, fds)
                code = 1
                try:
                    code = run_task()
                finally:
                    try:
                        sys.stdout.flush()
                        sys.stderr.flush()
                        os.write(write_end, b"0" if code == 0 else b"1")
                    finally:
                        os._exit(code)
            os.close(write_end)
            for fd in fds:
                os.close(fd)
            try:
                socket.send_fds(connection, [b"k"], [read_end])
            except OSError:
                pass
            os.close(read_end)


def _become_task(request: Dict, fds) -> None:
    """In the forked child: the runner's process group, streams, environment
    and directory."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.setpgid(0, int(request["pgid"]))
    except OSError:
        os._exit(1)  # the runner's group is gone: the task was killed already
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    sys.stderr = os.fdopen(2, "w", closefd=False)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
