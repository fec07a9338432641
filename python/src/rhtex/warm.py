"""A warm runner: one Python process per pool-manager with Parsl imported,
whose forked workers run the apps.

Starting Python and importing Parsl costs about 0.7 s per task, and even a
bare interpreter about 25 ms; Parsl's own workers stay warm. With the
warm runner the task's command (:func:`task_command`, run by the
pool-manager with ``/bin/bash -c``) does not start Python at all when the
warm server of its pool-manager listens: bash connects to it through
``/dev/tcp/127.0.0.1/PORT`` (the port is in a file of a 0700 directory of
this user, named after the manager id and a key of the executor), sends
the executor's secret token and its own pid, and waits for one line, the
exit code. Whoever accepts the connection checks the token and that the
pid is this user's, and takes the task's environment, working directory
and output files from ``/proc/PID`` (``environ``, ``cwd``, and ``fd/4``,
``fd/5``: bash's copies of its stdout and stderr). The app's process joins
bash's process group and cgroup (so the pool-manager's kill of the task,
for cancel or walltime, reaches it), switches to the task's streams,
environment and directory, runs the app like the cold runner, and writes
its exit code to the connection. With ``RHTEX_APP_ISOLATION=reuse`` (the
executor's ``app_isolation``, by default) that process is a reused worker
(:func:`_worker`), which accepts connections itself and, after each app,
leaves the task's streams, group and cgroup before it answers, then takes
the next app; with ``fork`` the server accepts and forks a fresh child per
app, which exits after it, so nothing passes from one app to the next.

When no server listens, the command runs ``python -m rhtex.runner``, which
starts the server (``python -m rhtex.runner --serve MANAGER_PID``, in its
own process group of the pool-manager's session, one per manager and key
thanks to a lock file) and runs its own task cold. The server exits when
it has been idle for ``RHTEX_WARM_IDLE`` seconds (default 300) or when the
pool-manager is gone, and removes its port file.
"""

from __future__ import annotations

# The runner imports this module for every task that finds no server: its
# imports are kept light; the server imports the rest when it starts.
import os
import shlex
import sys

WARM_ENV = "RHTEX_WARM"
TOKEN_ENV = "RHTEX_WARM_TOKEN"
KEY_ENV = "RHTEX_WARM_KEY"
IDLE_ENV = "RHTEX_WARM_IDLE"
#: Seconds a reused worker waits for its next app before it exits.
WORKER_IDLE_ENV = "RHTEX_WARM_WORKER_IDLE"
#: ``reuse`` (workers run app after app) or ``fork`` (a fresh fork per app).
ISOLATION_ENV = "RHTEX_APP_ISOLATION"
REUSE, FORK = "reuse", "fork"
#: A file for the server's complaints (refused connections, failures).
LOG_ENV = "RHTEX_WARM_LOG"
MANAGER_ID_ENV = "PARSL_WORKER_POOL_ID"


def new_token_and_key(python: str) -> tuple[str, str]:
    """A secret token for an executor and the key of its servers' port files."""
    import secrets
    import zlib

    token = secrets.token_hex(16)
    return token, f"{zlib.crc32((python + token).encode()):08x}"


def state_dir() -> str:
    """This user's directory for port and lock files on this node."""
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", f"rhtex-warm-{os.getuid()}")


def port_file(manager_id: str, key: str) -> str:
    return os.path.join(state_dir(), f"{manager_id}-{key}.port")


def task_command(python: str) -> str:
    """The bash command of a task: the warm server when one listens, else
    ``python -m rhtex.runner`` (cold, and it starts the server)."""
    # fds 4 and 5 keep the task's stdout and stderr while bash's builtins
    # redirect 1 and 2 for a moment (printf >&3): the server opens those.
    return (
        'if read -r port < "${TMPDIR:-/tmp}/rhtex-warm-$UID/'
        '$PARSL_WORKER_POOL_ID-$RHTEX_WARM_KEY.port" 2>/dev/null'
        ' && { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then'
        ' exec 4>&1 5>&2; printf "%s %s\\n" "$RHTEX_WARM_TOKEN" "$$" >&3;'
        ' read -r status <&3; exit "${status:-1}"; fi;'
        f" exec {shlex.quote(python)} -m rhtex.runner"
    )


def ensure_server(environ: dict[str, str]) -> None:
    """Starts this manager's warm server unless one runs (its lock decides)."""
    manager_id = environ.get(MANAGER_ID_ENV)
    if not manager_id or not environ.get(TOKEN_ENV) or not environ.get(KEY_ENV):
        return
    import subprocess

    # stdin/stdout/stderr to /dev/null: the server must not hold this task's
    # output files open. Its own process group, in the pool-manager's session.
    log = environ.get(LOG_ENV)
    # The server belongs to the block, not to the task that starts it: when
    # the pool-manager gives each task a cgroup of its own (and kills what
    # is left in it when the task ends), the server moves, before it runs,
    # to the cgroup above, the pool-manager's `rhtex-<pid>`, which still
    # ends with the pool-manager.
    own = _cgroup_dir("self")
    block = os.path.dirname(own) if own else None
    if block is not None and not os.path.basename(block).startswith("rhtex-"):
        block = None

    def leave_task() -> None:
        os.setpgrp()
        _join_cgroup(block)

    subprocess.Popen(
        [sys.executable, "-m", "rhtex.runner", "--serve", str(os.getppid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab") if log else subprocess.DEVNULL,  # noqa: SIM115
        preexec_fn=leave_task,
        close_fds=True,
    )


def _cgroup_dir(pid: str) -> str | None:
    """The cgroup v2 directory of process ``pid`` ("self" for this one), or
    None where there is none to be found."""
    try:
        with open(f"/proc/{pid}/cgroup") as handle:
            path = next(line[3:] for line in handle.read().splitlines() if line.startswith("0::"))
    except (OSError, StopIteration):
        return None
    mount = _cgroup2_mount()
    return mount + path if mount is not None else None


_mounts: list = []


def _cgroup2_mount() -> str | None:
    """Where the cgroup2 hierarchy's root is mounted (read once)."""
    if not _mounts:
        found = None
        try:
            with open("/proc/self/mountinfo") as handle:
                for line in handle:
                    fields, _, rest = line.partition(" - ")
                    if rest.split(" ", 1)[0] == "cgroup2":
                        parts = fields.split(" ")
                        if parts[3] == "/":
                            found = parts[4].rstrip("/")
                            break
        except (OSError, IndexError):
            return None
        _mounts.append(found)
    return _mounts[0]


def _join_cgroup(directory: str | None) -> None:
    """Moves this process into the cgroup ``directory`` (if given and
    possible: without cgroups, process groups do the job)."""
    if directory is None:
        return
    try:
        with open(os.path.join(directory, "cgroup.procs"), "w") as handle:
            handle.write("0")
    except OSError:
        pass


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _private_dir(path: str) -> bool:
    """Creates ``path`` (mode 0700) if needed; True if it is ours and private."""
    import stat

    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0
    )


def serve(manager_pid: int, run_task) -> int:
    """The warm server; ``run_task`` runs one task in a forked child
    (streams, environment and directory already switched) and returns its
    exit code. Returns 0 when it ends (idle, manager gone, or another server
    holds the lock)."""
    import fcntl

    manager_id = os.environ.get(MANAGER_ID_ENV, "")
    token = os.environ.get(TOKEN_ENV, "")
    key = os.environ.get(KEY_ENV, "")
    if not (manager_id and token and key) or not _private_dir(state_dir()):
        return 0
    path = port_file(manager_id, key)
    lock = open(path + ".lock", "w")  # noqa: SIM115 - held for the server's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server runs for this manager and key
    import socket

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    # Import what tasks need once, before forking (the point of being warm).
    import gc

    import msgpack  # noqa: F401
    import parsl.app.errors  # noqa: F401
    import parsl.executors.execute_task  # noqa: F401
    import parsl.serialize  # noqa: F401

    # Objects alive now are never collected in the children, so collections
    # there do not copy the pages these objects live on.
    gc.collect()
    gc.freeze()
    port = listener.getsockname()[1]
    with open(path + ".tmp", "w") as handle:
        handle.write(f"{port}\n")
    os.replace(path + ".tmp", path)
    check = _Check(token, manager_id)
    try:
        if os.environ.get(ISOLATION_ENV, REUSE) == FORK:
            _loop(listener, check, manager_pid, run_task)
        else:
            _reuse_loop(listener, check, manager_pid, run_task)
    finally:
        try:
            with open(path) as handle:
                if handle.read().strip() == str(port):
                    os.unlink(path)
        except OSError:
            pass
        listener.close()
        # Our manager is gone or we were idle: no server for this manager
        # and key starts while we still hold the lock, so remove it too.
        try:
            os.unlink(path + ".lock")
        except OSError:
            pass
        lock.close()
    return 0


class _Check:
    """Admits a task's bash: its token, its owner, its pool-manager."""

    def __init__(self, token: str, manager_id: str) -> None:
        self.token = token
        self.manager_id = manager_id
        self.uid = os.getuid()

    def task(self, connection) -> dict | None:
        """Reads the task's line from ``connection`` and takes the task from
        ``/proc``; None (after a complaint) when the task is refused."""
        import hmac

        connection.settimeout(5.0)
        try:
            line = connection.makefile("rb").readline(256).decode()
            sent_token, pid_text = line.split()
            pid = int(pid_text)
            if not hmac.compare_digest(sent_token, self.token):
                _complain(f"refused pid {pid}: wrong token")
                return None
            if os.stat(f"/proc/{pid}").st_uid != self.uid:
                _complain(f"refused pid {pid}: another user's")
                return None
            task = _task_of(pid)
        except (OSError, ValueError) as error:
            _complain(f"refused a connection: {error!r}")
            return None
        if task["env"].get(MANAGER_ID_ENV) != self.manager_id:
            _complain(f"refused pid {pid}: a task of another pool-manager")
            _close(task)
            return None
        return task


def _reap() -> list:
    """Reaps every child that has ended; gives their pids."""
    pids = []
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return pids
        if pid == 0:
            return pids
        pids.append(pid)


def _loop(listener, check: _Check, manager_pid: int, run_task) -> None:
    """``app_isolation="fork"``: a fresh fork per app."""
    import select
    import time

    idle_limit = float(os.environ.get(IDLE_ENV) or 300)
    last_task = time.monotonic()
    while True:
        _reap()
        if not _alive(manager_pid) or time.monotonic() - last_task > idle_limit:
            return
        readable, _, _ = select.select([listener], [], [], 1.0)
        if not readable:
            continue
        connection, _ = listener.accept()
        with connection:
            task = check.task(connection)
            if task is None:
                continue
            last_task = time.monotonic()
            child = os.fork()
            if child == 0:  # the task
                listener.close()
                code = 1
                try:
                    _become_task(task)
                    code = run_task()
                except BaseException:
                    import traceback

                    traceback.print_exc()
                finally:
                    try:
                        sys.stdout.flush()
                        sys.stderr.flush()
                        connection.sendall(f"{code}\n".encode())
                    finally:
                        os._exit(code)
            _close(task)


# ``app_isolation="reuse"``: the server forks workers, which accept the
# tasks' connections themselves and run app after app. Each worker tells
# the server through one pipe when it takes a task and when it is idle
# again (records of 5 bytes, written atomically), so that the server forks
# a new worker only when a connection waits and no worker is idle.
_RECORD = 5
_BUSY, _IDLE = b"b", b"i"


def _reuse_loop(listener, check: _Check, manager_pid: int, run_task) -> None:
    import select
    import signal
    import struct
    import time

    idle_limit = float(os.environ.get(IDLE_ENV) or 300)
    worker_idle = float(os.environ.get(WORKER_IDLE_ENV) or 60)
    status_read, status_write = os.pipe()
    home = {"pgid": os.getpgid(0), "cgroup": _cgroup_dir("self"), "cwd": os.getcwd()}
    workers: dict[int, bytes] = {}  # pid -> _BUSY or _IDLE
    last_task = time.monotonic()
    next_check = 0.0
    try:
        while True:
            now = time.monotonic()
            if now >= next_check:  # at most twice a second, not on every message
                next_check = now + 0.5
                if workers:  # reap workers that ended (idle, or killed with their task)
                    for pid in _reap():
                        workers.pop(pid, None)
                if not _alive(manager_pid):
                    return
                busy = _BUSY in workers.values()
                if not busy and now - last_task > idle_limit:
                    return
            watch = [status_read] if _IDLE in workers.values() else [status_read, listener]
            readable, _, _ = select.select(watch, [], [], 0.5)
            if listener in readable:  # a task waits and no worker is idle
                pid = os.fork()
                if pid == 0:
                    code = 0
                    try:
                        os.close(status_read)
                        _worker(listener, check, status_write, home, worker_idle, run_task)
                    except BaseException:
                        code = 1
                    finally:
                        os._exit(code)
                workers[pid] = _IDLE
            if status_read in readable:
                data = os.read(status_read, _RECORD * 819)
                for offset in range(0, len(data) - _RECORD + 1, _RECORD):
                    state, pid = struct.unpack_from("=cI", data, offset)
                    if pid in workers:
                        workers[pid] = state
                last_task = now
    finally:
        # Workers end within a second of their server (they watch their
        # parent), an idle one after serving a connection it may just have
        # accepted; when the pool-manager is gone, at once.
        if not _alive(manager_pid):
            for pid in workers:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass


def _worker(listener, check: _Check, status_write: int, home: dict, idle_limit: float, run_task):
    """A reused worker: accepts a task's connection, runs its app in this
    process, returns to the server's process group and cgroup, answers,
    and waits for the next, until idle for ``idle_limit`` seconds or the
    server is gone."""
    import select
    import signal
    import time

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    server = os.getppid()
    listener.setblocking(False)
    # EPOLLEXCLUSIVE: a connection wakes one idle worker, not all of them.
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
    null = os.open("/dev/null", os.O_RDWR)
    me = os.getpid()
    idle_since = time.monotonic()
    while True:
        if os.getppid() != server:
            return
        remaining = idle_limit - (time.monotonic() - idle_since)
        if remaining <= 0:
            return
        if not poller.poll(min(remaining, 1.0)):
            continue
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            continue  # another worker took it
        _tell(status_write, _BUSY, me)
        with connection:
            task = check.task(connection)
            if task is not None:
                code, at_home = _run_reused(task, run_task, null, home)
                try:
                    connection.sendall(f"{code}\n".encode())
                except OSError:
                    pass  # the task was killed after its app ended
                if not at_home:
                    return  # the server is gone: this worker has no home
        while True:  # the apps' own children that nobody waited for
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        _tell(status_write, _IDLE, me)
        idle_since = time.monotonic()


def _switch_environ(env: dict) -> None:
    """Makes ``os.environ`` exactly ``env``, touching only what differs (the
    tasks of one executor differ in a few variables)."""
    environ = os.environ
    for name in [name for name in environ if name not in env]:
        del environ[name]
    for name, value in env.items():
        if environ.get(name) != value:
            environ[name] = value


def _tell(status_write: int, state: bytes, pid: int) -> None:
    """Tells the server this worker's state (nobody listens once it is gone)."""
    import struct

    try:
        os.write(status_write, struct.pack("=cI", state, pid))
    except OSError:
        pass


def _run_reused(task: dict, run_task, null: int, home: dict) -> tuple[int, bool]:
    """Runs one app in this worker, inside the task's process group and
    cgroup, then leaves both; the app's exit code, and whether this worker
    is back in its server's process group (False: the server is gone)."""
    try:
        os.setpgid(0, task["pgid"])
    except OSError:
        _close(task)
        return 1, True  # the task's group is gone: the task was killed already
    code = 1
    try:
        _join_cgroup(task["cgroup"])
        for target, fd in enumerate(task["fds"]):
            os.dup2(fd, target)
        _switch_environ(task["env"])
        os.chdir(task["cwd"])
        code = run_task()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        _close(task)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            pass
        # Let go of the task's files before it ends, then of its group and
        # cgroup, so that the task's end (and the pool-manager's kill of
        # what is left of it) does not reach this worker.
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.chdir(home["cwd"])
    _join_cgroup(home["cgroup"])
    try:
        os.setpgid(0, home["pgid"])
    except OSError:
        return code, False
    return code, True


def _complain(message: str) -> None:
    print(f"rhtex warm server {os.getpid()}: {message}", file=sys.stderr, flush=True)


def _task_of(pid: int) -> dict:
    """What a forked child needs of the task whose command runs as ``pid``."""
    with open(f"/proc/{pid}/environ", "rb") as handle:
        entries = handle.read().split(b"\0")
    env = {}
    for entry in entries:
        name, sep, value = entry.partition(b"=")
        if sep:
            env[os.fsdecode(name)] = os.fsdecode(value)
    task = {
        "env": env,
        "cwd": os.readlink(f"/proc/{pid}/cwd"),
        "pgid": os.getpgid(pid),
        "cgroup": _cgroup_dir(str(pid)),
    }
    task["fds"] = [
        os.open("/dev/null", os.O_RDONLY),
        os.open(f"/proc/{pid}/fd/4", os.O_WRONLY | os.O_APPEND),
        os.open(f"/proc/{pid}/fd/5", os.O_WRONLY | os.O_APPEND),
    ]
    return task


def _close(task: dict) -> None:
    for fd in task.get("fds", []):
        os.close(fd)


def _become_task(task: dict) -> None:
    """In the forked child: the task's process group, streams, environment
    and directory."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.setpgid(0, task["pgid"])
    except OSError:
        os._exit(1)  # the task's group is gone: the task was killed already
    # Into the task's cgroup too, where the pool-manager gives it one, so
    # that cancel, walltime and the task's end reach this child and all
    # it starts.
    _join_cgroup(task["cgroup"])
    for target, fd in enumerate(task["fds"]):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    sys.stderr = os.fdopen(2, "w", closefd=False)
    os.environ.clear()
    os.environ.update(task["env"])
    os.chdir(task["cwd"])
