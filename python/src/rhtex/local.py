"""A private interchange and pool-managers started from Python: the twin
of ``rhtex run``'s embedded mode (``crates/client/src/local.rs``).

:class:`LocalDeployment` starts an ``interchange`` (loopback sockets on
free ports), reads its ready line with a timeout, then starts the
pool-managers it was asked for (none when the interchange's own
``[provider]`` submits blocks). Every daemon runs in its own session and
process group, with its stderr in a log file of the run directory, and
with ``--exit-with-parent``: if this Python process dies, even by SIGKILL,
the daemons notice and stop as on SIGTERM (the pool-manager kills its
tasks first).

:meth:`LocalDeployment.stop` asks the interchange to shut down (which
stops the managers), waits a bounded time, then SIGTERMs and finally
SIGKILLs each daemon's process group, so nothing is left behind.

Programs are found in ``$RHTEX_BIN_DIR``, then on ``PATH``, then in this
Python environment's ``bin/`` (where ``pip install`` puts them).
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sysconfig
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, List, Optional, Sequence

from .client import Client
from .keys import PathLike

INTERCHANGE = "interchange"
POOL_MANAGER = "pool-manager"
RHTEX = "rhtex"

__all__ = [
    "Daemon",
    "LocalDeployment",
    "LocalError",
    "ReadyLine",
    "connectable_url",
    "find_program",
    "parse_ready_line",
]


class LocalError(Exception):
    """A daemon could not be found, started or stopped; the message says why."""


def find_program(name: str) -> Path:
    """``$RHTEX_BIN_DIR/name``, else ``name`` on ``PATH``, else in this
    environment's scripts directory."""
    searched = []
    bin_dir = os.environ.get("RHTEX_BIN_DIR")
    if bin_dir:
        candidate = Path(bin_dir) / name
        if os.access(candidate, os.X_OK) and candidate.is_file():
            return candidate
        searched.append(f"$RHTEX_BIN_DIR ({bin_dir})")
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    searched.append("PATH")
    scripts = Path(sysconfig.get_path("scripts"))
    candidate = scripts / name
    if os.access(candidate, os.X_OK) and candidate.is_file():
        return candidate
    searched.append(str(scripts))
    raise LocalError(
        f"cannot find the {name} program (looked in {', '.join(searched)}); "
        "install rhtex with `pip install ./python` on a machine with Rust, or set "
        "RHTEX_BIN_DIR to the directory holding interchange, pool-manager and rhtex"
    )


def connectable_url(url: str) -> str:
    """A URL to connect to for one that was bound (wildcards become loopback)."""
    for wildcard, loopback in (
        ("://0.0.0.0:", "://127.0.0.1:"),
        ("://[::]:", "://[::1]:"),
        ("://*:", "://127.0.0.1:"),
    ):
        if wildcard in url:
            return url.replace(wildcard, loopback, 1)
    return url


@dataclass(frozen=True)
class ReadyLine:
    client_url: str
    manager_url: str
    pid: int


def parse_ready_line(line: str) -> ReadyLine:
    """The interchange's ready line, ``{"client_url", "manager_url", "pid"}``."""
    try:
        value = json.loads(line)
        return ReadyLine(str(value["client_url"]), str(value["manager_url"]), int(value["pid"]))
    except (ValueError, KeyError, TypeError) as error:
        raise LocalError(
            f"the interchange's ready line {line.strip()!r} is not valid: {error}"
        ) from None


class Daemon:
    """A daemon running as our child, leader of its own process group."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, pipe_stdout: bool = False):
        self.name = name
        self.argv = list(argv)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as log_file:
            try:
                self.process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE if pipe_stdout else log_file,
                    stderr=log_file,
                    start_new_session=True,
                )
            except OSError as error:
                raise LocalError(f"cannot start {name} ({self.argv[0]}): {error}") from None
        self.pid = self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> Optional[int]:
        """The exit status, or None if still running after ``timeout``."""
        try:
            return self.process.wait(timeout=max(timeout, 0))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM, up to ``grace`` seconds, then SIGKILL to the process group."""
        if self.running():
            self._signal_group(signal.SIGTERM, leader_only=True)
            status = self.wait(grace)
            if status is not None:
                return status
            self._signal_group(signal.SIGKILL)
        status = self.wait(5.0)
        if status is None:
            raise LocalError(f"{self.name} (pid {self.pid}) is still running after SIGKILL")
        return status

    def _signal_group(self, sig: signal.Signals, leader_only: bool = False) -> None:
        if self.process.returncode is not None:
            return  # reaped: the ids may belong to someone else now
        try:
            if leader_only:
                os.kill(self.pid, sig)
            else:
                os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def log_tail(self, n_lines: int = 15) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("  " + line for line in lines[-n_lines:])


def _read_line(stream: IO[bytes], timeout: float) -> Optional[bytes]:
    """One line from a pipe within ``timeout`` seconds; b"" at end of file."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buffer = b""
    fd = stream.fileno()
    try:
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return buffer
            buffer += chunk
    finally:
        selector.close()
    return buffer


class LocalDeployment:
    """An interchange and its pool-managers on this host.

    ``nodes``: one pool-manager with exactly these node names (synthetic
    names are fine for tasks that do not start MPI on them); ``None``: one
    pool-manager on this host; ``n_managers=0`` or an ``interchange_config``
    with a ``[provider]``: none (the provider starts blocks).
    ``keys_dir=None`` with ``insecure=False`` creates a fresh key directory
    in the run directory.
    """

    def __init__(
        self,
        run_dir: PathLike,
        *,
        keys_dir: Optional[PathLike] = None,
        insecure: bool = False,
        nodes: Optional[Sequence[str]] = None,
        launcher: str = "mpiexec",
        slots_per_node: Optional[int] = None,
        interchange_config: Optional[PathLike] = None,
        n_managers: Optional[int] = None,
        block_id: str = "local",
        manager_args: Sequence[str] = (),
        interchange_args: Sequence[str] = (),
        ready_timeout: float = 30.0,
        log_level: Optional[str] = None,
    ) -> None:
        self.run_dir = Path(os.fspath(run_dir)).absolute()
        self.keys_dir = None if keys_dir is None else Path(os.fspath(keys_dir))
        self.insecure = insecure
        self.nodes = list(nodes) if nodes is not None else None
        self.launcher = launcher
        self.slots_per_node = slots_per_node
        self.interchange_config = interchange_config
        if n_managers is None:
            n_managers = (
                0 if interchange_config is not None and _has_provider(interchange_config) else 1
            )
        self.n_managers = n_managers
        self.block_id = block_id
        self.manager_args = list(manager_args)
        self.interchange_args = list(interchange_args)
        self.ready_timeout = ready_timeout
        self.log_level = log_level
        self.interchange: Optional[Daemon] = None
        self.managers: List[Daemon] = []
        self.ready: Optional[ReadyLine] = None
        self._stdout_thread: Optional[threading.Thread] = None

    @property
    def client_url(self) -> str:
        if self.ready is None:
            raise LocalError("the deployment is not started")
        return connectable_url(self.ready.client_url)

    @property
    def manager_url(self) -> str:
        if self.ready is None:
            raise LocalError("the deployment is not started")
        return connectable_url(self.ready.manager_url)

    def _security_args(self) -> List[str]:
        if self.insecure:
            return ["--insecure"]
        return ["--keys-dir", str(self.keys_dir)]

    def start(self) -> LocalDeployment:
        """Starts the interchange, waits for its ready line, starts the managers."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.insecure and self.keys_dir is None:
            from .keys import keygen

            self.keys_dir = keygen(self.run_dir / "keys")
        argv = [
            str(find_program(INTERCHANGE)),
            "--run-dir",
            str(self.run_dir),
            "--exit-with-parent",
            *self._security_args(),
            *self.interchange_args,
        ]
        if self.interchange_config is not None:
            # Its sockets come from the file (or the defaults: clients on
            # 127.0.0.1, managers on every interface, as blocks need).
            argv += ["--config", os.fspath(self.interchange_config)]
        else:
            argv += [
                "--client-listen",
                "tcp://127.0.0.1:0",
                "--manager-listen",
                "tcp://127.0.0.1:0",
            ]
        if self.log_level:
            argv += ["--log-level", self.log_level]
        self.interchange = Daemon(INTERCHANGE, argv, self.run_dir / "interchange.log", True)
        assert self.interchange.process.stdout is not None
        line = _read_line(self.interchange.process.stdout, self.ready_timeout)
        if not line:
            status = self.interchange.stop(2.0)
            what = (
                f"printed no ready line within {self.ready_timeout:g} s"
                if line is None
                else f"exited with status {status} before it was ready"
            )
            raise LocalError(
                f"the interchange {what}; its log {self.interchange.log} ends with:\n"
                f"{self.interchange.log_tail()}"
            )
        try:
            self.ready = parse_ready_line(line.decode(errors="replace"))
        except LocalError:
            self.interchange.stop(2.0)
            raise
        stdout = self.interchange.process.stdout
        self._stdout_thread = threading.Thread(
            target=lambda: [None for _ in iter(lambda: stdout.read(4096), b"")],
            name="rhtex interchange stdout",
            daemon=True,
        )
        self._stdout_thread.start()
        try:
            for index in range(self.n_managers):
                self.start_manager(
                    f"{self.block_id}-{index}" if self.n_managers > 1 else self.block_id
                )
        except BaseException:
            self.stop()
            raise
        return self

    def start_manager(self, block_id: str, nodes: Optional[Sequence[str]] = None) -> Daemon:
        """Starts one more pool-manager (block ``block_id``)."""
        nodes = self.nodes if nodes is None else list(nodes)
        run_dir = self.run_dir / f"manager-{block_id}"
        argv = [
            str(find_program(POOL_MANAGER)),
            "--interchange",
            self.manager_url,
            "--run-dir",
            str(run_dir),
            "--block-id",
            block_id,
            "--launcher",
            self.launcher,
            "--exit-with-parent",
            *self._security_args(),
            *self.manager_args,
        ]
        if nodes:
            argv += ["--nodes", ",".join(nodes)]
        if self.slots_per_node is not None:
            argv += ["--slots-per-node", str(self.slots_per_node)]
        if self.log_level:
            argv += ["--log-level", self.log_level]
        manager = Daemon(POOL_MANAGER, argv, self.run_dir / f"pool-manager-{block_id}.log")
        self.managers.append(manager)
        return manager

    def client(self, **options) -> Client:
        """A new :class:`Client` of this deployment's interchange."""
        return Client(self.client_url, keys_dir=self.keys_dir, insecure=self.insecure, **options)

    def wait_for_managers(
        self, client: Client, n_managers: Optional[int] = None, timeout: float = 30.0
    ) -> None:
        """Waits until ``n_managers`` (default: those started) have registered."""
        wanted = len(self.managers) if n_managers is None else n_managers
        deadline = time.monotonic() + timeout
        while True:
            registered = len(client.status()["managers"])
            if registered >= wanted:
                return
            for manager in self.managers:
                if not manager.running():
                    status = manager.process.returncode
                    raise LocalError(
                        f"pool-manager {manager.pid} exited with status {status}; "
                        f"its log {manager.log} ends with:\n{manager.log_tail()}"
                    )
            if time.monotonic() > deadline:
                raise LocalError(
                    f"only {registered} of {wanted} pool-managers registered within {timeout:g} s"
                )
            time.sleep(0.05)

    def stop(self, grace: float = 10.0, client: Optional[Client] = None) -> None:
        """Stops everything: ``shutdown`` through a client when possible,
        then bounded waits, SIGTERM and SIGKILL of each process group."""
        interchange = self.interchange
        if interchange is not None and interchange.running() and self.ready is not None:
            try:
                own = client is None
                active = client or self.client(timeout=min(grace, 5.0))
                try:
                    active.shutdown()
                finally:
                    if own:
                        active.close()
            except Exception:
                pass  # SIGTERM below
            interchange.wait(grace)
        deadline = time.monotonic() + grace
        for manager in self.managers:
            if manager.wait(deadline - time.monotonic()) is None:
                manager.stop(grace)
            else:
                manager.stop(0)
        if interchange is not None:
            interchange.stop(grace)
        if self._stdout_thread is not None:
            self._stdout_thread.join(timeout=5.0)

    def pids(self) -> List[int]:
        daemons = ([self.interchange] if self.interchange else []) + self.managers
        return [daemon.pid for daemon in daemons]

    def __enter__(self) -> LocalDeployment:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _has_provider(config: PathLike) -> bool:
    try:
        text = Path(os.fspath(config)).read_text()
    except OSError as error:
        raise LocalError(f"cannot read the interchange config {config}: {error}") from None
    return any(line.strip() == "[provider]" for line in text.splitlines())
