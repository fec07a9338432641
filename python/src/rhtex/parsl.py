"""``RhtexExecutor``: Parsl apps on rhtex, with one change to a Parsl
script: the executor in its ``Config``.

Each app call becomes one rhtex task whose command runs
``python -m rhtex.runner`` on the lead node of the block the interchange
placed it on, with the ``PARSL_*`` environment already set; the runner
calls Parsl's own ``execute_task``, so bash apps build their command there
and ``$PARSL_MPI_PREFIX`` expands there, and python apps read
``os.environ["PARSL_NUM_RANKS"]`` there. Return values and exceptions come
back as themselves.

What differs from Parsl's ``MPIExecutor``, on purpose:

- resource specifications follow PROTOCOL.md section 8: integers only,
  ranks spread evenly (``{"num_nodes": 3, "num_ranks": 4}`` is rejected,
  where Parsl composes ``-ppn 1.3333333333333333``), rhtex's extra keys
  ``priority``, ``walltime``, ``retries``, ``exclusive`` accepted; the
  caller's dict is never changed (Parsl's writes derived strings into it);
- blocks are scaled by the interchange's own provider from node demand
  (``interchange_config`` with a ``[provider]``), not by Parsl's strategy;
- a task's ``manager_lost`` failure is Parsl's ``ManagerLost`` (so
  ``Config(retries=...)`` retries it) and rhtex's ``walltime`` is
  ``AppTimeout``.

The serialized app travels as the task's ``input`` and its result as the
task's ``output`` (protocol version 3, :mod:`rhtex.payload`): the submit
host and the lead nodes share no file system. Both are bounded by the
interchange (``max_task_input_bytes``, ``max_task_output_bytes``, 16 MiB by
default): an app whose serialized arguments are larger fails at submit
with :class:`TaskInputTooLarge`, one whose serialized result is larger
with :class:`TaskOutputTooLarge`. When the interchange refuses a submit
as busy (the input it holds for unfinished tasks would pass its
``max_queued_input_mib``), the executor submits those apps again later,
backing off: a busy interchange slows apps down, it does not fail them.
An app runs in the submit side's working directory when the lead node has
it (a shared file system), else in its pool-manager's run directory.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import shlex
import sys
import threading
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import msgpack
from parsl.app.errors import AppTimeout, RemoteExceptionWrapper
from parsl.executors.base import ParslExecutor
from parsl.executors.errors import InvalidResourceSpecification
from parsl.executors.high_throughput.errors import ManagerLost
from parsl.serialize import deserialize, pack_apply_message
from parsl.utils import RepresentationMixin

from . import spec as rhtex_spec
from .client import Client, InputTooLarge, InterchangeBusy, TaskFuture, TaskResult
from .local import LocalDeployment
from .runner import (
    PARSL_VERSION_ENV,
    PYTHON_VERSION_ENV,
    SUBMIT_CWD_ENV,
    parsl_version,
    python_version,
)
from .warm import (
    FORK,
    ISOLATION_ENV,
    KEY_ENV,
    REUSE,
    TOKEN_ENV,
    WARM_ENV,
    new_token_and_key,
    task_command,
)

logger = logging.getLogger(__name__)

LAUNCHERS = ("mpiexec", "srun", "aprun")

#: A submit refused as busy is sent again after this many seconds, doubled
#: on each refusal up to BUSY_MAX_DELAY.
BUSY_FIRST_DELAY = 0.2
BUSY_MAX_DELAY = 5.0

#: Parsl's MPIExecutor's message for a missing specification, kept word for word.
MISSING_SPEC_MESSAGE = (
    "MPI mode requires optional parsl_resource_specification keyword argument to be configured"
)


class RhtexTaskError(Exception):
    """A task failed outside the app: it could not start, was cancelled or
    killed, its runner died, or the lead node cannot run it."""

    def __init__(self, message: str, result: Optional[TaskResult] = None) -> None:
        super().__init__(message)
        self.result = result


class TaskInputTooLarge(RhtexTaskError, ValueError):
    """An app's serialized function and arguments are larger than the
    interchange's ``max_task_input_bytes``."""


class TaskOutputTooLarge(RhtexTaskError):
    """An app's serialized result (or exception) was larger than the
    interchange's ``max_task_output_bytes``, so it was dropped."""


class RhtexExecutor(ParslExecutor, RepresentationMixin):
    """A Parsl executor that runs apps as rhtex tasks.

    Parameters
    ----------
    label: the executor's name in Parsl.
    interchange: client URL of a running interchange; ``None`` starts a
        private interchange (and, without a provider, one pool-manager on
        this host) at ``start()``, stopped at ``shutdown()``.
    interchange_config: TOML file for a started interchange; its
        ``[provider]`` section makes it submit blocks (Slurm, PBS, local).
    keys_dir: CURVE key directory (mode 0700). ``None``: for a running
        interchange ``$RHTEX_KEYS_DIR`` or ``~/.rhtex/keys``; for a started
        one a fresh directory in ``working_dir``.
    client_key: the client identity to connect as (``client-NAME.key_secret``
        of ``keys_dir``); ``None``: ``$RHTEX_CLIENT_KEY``, else ``default``.
    insecure: no encryption (both sides must agree).
    nodes: node names of the one local pool-manager of a started
        interchange without provider (synthetic names are fine for apps
        that do not start MPI on them); ``None``: this host.
    mpi_launcher: ``mpiexec``, ``srun`` or ``aprun``: what
        ``$PARSL_MPI_PREFIX`` is composed for.
    slots_per_node: slots of each node for ``exclusive: False`` tasks.
    python: the interpreter that runs apps on the lead node (default: this
        one); it must have the same Python major.minor and Parsl version.
    working_dir: where the started daemons' files go (default
        ``<run_dir>/<label>``); task payloads travel inside the protocol,
        so it need not be shared with the lead nodes.
    require_resource_spec: reject apps without a resource specification,
        as Parsl's MPIExecutor does; ``False`` runs them on 1 node, 1 rank.
    warm_runner: run apps in a warm server per pool-manager (:mod:`rhtex.warm`)
        instead of a fresh interpreter per task.
    app_isolation: with the warm runner, ``"reuse"`` (the default, as
        Parsl's own workers do): a worker process that finished an app
        takes the next one, so what an app leaves in its interpreter
        (imported modules, caches, globals) is there for later apps;
        ``"fork"``: every app runs in a fresh fork of the warm server and
        nothing passes from one app to the next, at about 4 ms of CPU more
        per app. In both, an app runs in its task's process group and
        cgroup and gets its task's environment, directory and streams.
    """

    def __init__(
        self,
        label: str = "RhtexExecutor",
        interchange: Optional[str] = None,
        interchange_config: Optional[Union[str, os.PathLike]] = None,
        keys_dir: Optional[Union[str, os.PathLike]] = None,
        insecure: bool = False,
        nodes: Optional[Sequence[str]] = None,
        client_key: Optional[str] = None,
        mpi_launcher: str = "mpiexec",
        slots_per_node: Optional[int] = None,
        python: Optional[str] = None,
        working_dir: Optional[Union[str, os.PathLike]] = None,
        require_resource_spec: bool = True,
        warm_runner: bool = True,
        app_isolation: str = REUSE,
    ) -> None:
        super().__init__()
        if mpi_launcher not in LAUNCHERS:
            raise ValueError(
                f"mpi_launcher must be one of {', '.join(LAUNCHERS)}, got {mpi_launcher!r}"
            )
        if app_isolation not in (REUSE, FORK):
            raise ValueError(f"app_isolation must be 'reuse' or 'fork', got {app_isolation!r}")
        self.label = label
        self.interchange = interchange
        self.interchange_config = interchange_config
        self.keys_dir = keys_dir
        self.client_key = client_key
        self.insecure = insecure
        self.nodes = nodes
        self.mpi_launcher = mpi_launcher
        self.slots_per_node = slots_per_node
        self.python = python
        self.working_dir = working_dir
        self.require_resource_spec = require_resource_spec
        self.warm_runner = warm_runner
        self.app_isolation = app_isolation
        self._client: Optional[Client] = None
        self._deployment: Optional[LocalDeployment] = None
        self._task_env: Dict[str, str] = {}
        self._warm: Dict[str, Dict[str, str]] = {}
        self._lock = threading.Lock()
        self._outstanding: Dict[str, Future] = {}

    # -- Parsl's executor interface -------------------------------------------

    def monitor_resources(self) -> bool:
        return False

    def validate_resource_spec(self, resource_specification: Dict[str, Any]) -> None:
        """None, or :class:`InvalidResourceSpecification` (PROTOCOL.md
        section 8). Never changes ``resource_specification``."""
        if not resource_specification:
            if self.require_resource_spec:
                raise InvalidResourceSpecification(set(), MISSING_SPEC_MESSAGE)
            return
        try:
            rhtex_spec.validate(resource_specification)
        except rhtex_spec.SpecError as error:
            message = str(error)
            unknown = {key for key in resource_specification if key not in rhtex_spec.KNOWN_KEYS}
            named = unknown or {key for key in resource_specification if key in message}
            raise InvalidResourceSpecification(named, message) from None

    def start(self) -> None:
        working_dir = Path(
            os.fspath(self.working_dir)
            if self.working_dir is not None
            else os.path.join(self.run_dir, self.label)
        ).absolute()
        working_dir.mkdir(parents=True, exist_ok=True)
        self._task_env = {
            SUBMIT_CWD_ENV: os.getcwd(),
            PYTHON_VERSION_ENV: python_version(),
            PARSL_VERSION_ENV: parsl_version() or "",
        }
        url = self.interchange
        keys_dir = self.keys_dir
        if url is None:
            # Without a provider there is one block: larger tasks fail at
            # once (unschedulable) instead of waiting for ever.
            interchange_args: List[str] = []
            if self.interchange_config is None:
                n_nodes = len(self.nodes) if self.nodes else 1
                interchange_args = ["--max-block-nodes", str(n_nodes)]
            self._deployment = LocalDeployment(
                working_dir / "rhtex",
                keys_dir=keys_dir,
                insecure=self.insecure,
                nodes=self.nodes,
                launcher=self.mpi_launcher,
                slots_per_node=self.slots_per_node,
                interchange_config=self.interchange_config,
                block_id=self.label,
                interchange_args=interchange_args,
            ).start()
            url = self._deployment.client_url
            keys_dir = self._deployment.keys_dir
        try:
            self._client = Client(
                url, keys_dir=keys_dir, client_key=self.client_key, insecure=self.insecure
            )
        except BaseException:
            if self._deployment is not None:
                self._deployment.stop()
                self._deployment = None
            raise
        logger.info("RhtexExecutor %s connected to %s", self.label, url)

    def submit(
        self, func: Callable, resource_specification: Dict[str, Any], *args: Any, **kwargs: Any
    ) -> Future:
        if self._client is None:
            raise RuntimeError(f"RhtexExecutor {self.label} is not started")
        # A snapshot: the caller may change its dict after submitting.
        resources = copy.deepcopy(resource_specification or {})
        self.validate_resource_spec(resources)
        task_id = str(uuid.uuid4())
        buffer = pack_apply_message(func, args, kwargs, buffer_threshold=1 << 20)
        env = dict(self._task_env)
        python = self.python or sys.executable
        if self.warm_runner:
            env.update(self._warm_env(python))
            command = task_command(python)
        else:
            command = f"exec {shlex.quote(python)} -m rhtex.runner"
        future: Future = Future()
        future.parsl_executor_task_id = task_id  # type: ignore[attr-defined]
        task = {
            "command": command,
            "resources": rhtex_spec.to_request(resources),
            "env": env,
            "task_id": task_id,
            "input": buffer,
        }
        with self._lock:
            self._outstanding[task_id] = future
        try:
            self._send(self._client, future, task, 0.0)
        except InputTooLarge:
            with self._lock:
                self._outstanding.pop(task_id, None)
            raise TaskInputTooLarge(
                f"{getattr(func, '__name__', 'the app')}: its serialized function and "
                f"arguments take {len(buffer)} bytes, more than the interchange's "
                f"max_task_input_bytes ({self._client.max_task_input_bytes}); pass large "
                "data through files, or raise the interchange's max_task_input_bytes"
            ) from None
        except BaseException:
            with self._lock:
                self._outstanding.pop(task_id, None)
            raise
        return future

    def _send(self, client: Client, future: Future, task: Dict[str, Any], delay: float) -> None:
        task_future = client.submit(**task)
        task_future.add_done_callback(lambda done: self._complete(future, done, task, delay))

    def _resend(self, future: Future, task: Dict[str, Any], delay: float) -> None:
        """Submits a task again that the interchange refused as busy."""
        client = self._client
        try:
            if client is None:
                raise RhtexTaskError(
                    f"RhtexExecutor {self.label} was shut down before the busy interchange "
                    f"took task {task['task_id']}"
                )
            self._send(client, future, task, delay)
        except Exception as error:
            with self._lock:
                self._outstanding.pop(task["task_id"], None)
            if not future.done():
                future.set_exception(error)

    def _warm_env(self, python: str) -> Dict[str, str]:
        """The warm runner's variables for apps run by ``python``."""
        if python not in self._warm:
            token, key = new_token_and_key(python)
            self._warm[python] = {
                WARM_ENV: "1",
                TOKEN_ENV: token,
                KEY_ENV: key,
                ISOLATION_ENV: self.app_isolation,
            }
        return self._warm[python]

    def shutdown(self) -> None:
        """Closes the connection and stops what ``start()`` started."""
        client, self._client = self._client, None
        deployment, self._deployment = self._deployment, None
        try:
            if deployment is not None:
                deployment.stop(client=client)
        finally:
            if client is not None:
                client.close()
        super().shutdown()

    # -- results -----------------------------------------------------------------

    @property
    def outstanding(self) -> int:
        """Tasks submitted and not finished."""
        with self._lock:
            return len(self._outstanding)

    def _complete(
        self, future: Future, task_future: TaskFuture, task: Dict[str, Any], delay: float
    ) -> None:
        task_id = task_future.task_id
        if not task_future.cancelled() and isinstance(task_future.exception(), InterchangeBusy):
            # The interchange holds too much task input (its budget is
            # shared by all clients): back-pressure, not a failure of the
            # app. Submit again later, with the same id, backing off; the
            # jitter keeps refused tasks from being merged into one submit
            # again.
            delay = min(max(2 * delay, BUSY_FIRST_DELAY), BUSY_MAX_DELAY)
            wait = delay * random.uniform(0.5, 1.5)
            logger.info("rhtex task %s: the interchange is busy; again in %.2f s", task_id, wait)
            timer = threading.Timer(wait, self._resend, (future, task, delay))
            timer.daemon = True
            timer.start()
            return
        with self._lock:
            self._outstanding.pop(task_id, None)
        try:
            error = task_future.exception()
            if error is not None:
                future.set_exception(error)
                return
            result = task_future.result()
            if result.output is not None:
                self._set_from_output(future, result.output, result)
            else:
                future.set_exception(_failure(result))
        except Exception as error:  # a bad output must not kill the client's thread
            if not future.done():
                future.set_exception(error)

    def _set_from_output(self, future: Future, output: bytes, result: TaskResult) -> None:
        message = msgpack.unpackb(output, raw=False)
        kind = message.get("kind")
        if kind == "result":
            future.set_result(deserialize(message["data"]))
        elif kind == "exception":
            wrapped = deserialize(message["data"])
            if isinstance(wrapped, RemoteExceptionWrapper):
                try:
                    wrapped.reraise()
                except Exception as error:
                    future.set_exception(error)
            else:
                future.set_exception(wrapped)
        else:
            future.set_exception(RhtexTaskError(str(message.get("message")), result))


def _failure(result: TaskResult) -> BaseException:
    """The exception for a task that ended without the runner's output."""
    where = f" on {', '.join(result.nodes)}" if result.nodes else ""
    if result.error_kind == "manager_lost":
        host = result.nodes[0] if result.nodes else (result.block_id or "unknown")
        return ManagerLost((result.manager_id or "unknown").encode(), host)
    if result.error_kind == "walltime_exceeded":
        return AppTimeout(result.error_message or "the task exceeded its walltime")
    if result.error_kind == "output_too_large":
        return TaskOutputTooLarge(
            f"rhtex task {result.task_id}: the app's serialized result is larger than "
            f"the interchange allows ({result.error_message}); return less data (write "
            "large results to a file), or raise the interchange's max_task_output_bytes",
            result,
        )
    if result.error_kind == "input_too_large":
        return TaskInputTooLarge(
            f"rhtex task {result.task_id}: the app's serialized function and arguments "
            f"are larger than the interchange allows ({result.error_message}); pass large "
            "data through files, or raise the interchange's max_task_input_bytes",
            result,
        )
    stderr = result.stderr_tail.decode(errors="replace").strip()
    detail = f"; its stderr ends with:\n{stderr[-2000:]}" if stderr else ""
    return RhtexTaskError(
        f"rhtex task {result.task_id} {result.state}{where} "
        f"({result.error_kind}: {result.error_message}) without a result from the runner{detail}",
        result,
    )
