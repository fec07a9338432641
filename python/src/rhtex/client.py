"""A client of the rhtex interchange (``proto/PROTOCOL.md`` section 5).

:class:`Client` connects a ZeroMQ DEALER socket to the interchange's client
socket (CURVE on unless ``insecure``), says ``hello`` and waits for
``welcome`` with a timeout. Then one I/O thread owns the socket: callers
on any thread hand it work through a queue and a wake-up pipe, and get
:class:`concurrent.futures.Future` objects back, so
:func:`concurrent.futures.wait` and :func:`~concurrent.futures.as_completed`
work on them.

- :meth:`Client.submit` validates the resource specification and the size
  of the task's ``input`` in the caller's thread (a bad one raises
  :class:`rhtex.spec.SpecError` or :class:`InputTooLarge` and is never
  sent) and returns a :class:`TaskFuture`, whose result is the task's
  :class:`TaskResult` whatever its state (a failed task is data, not an
  exception; what the task wrote to ``$RHTEX_TASK_OUTPUT`` is its
  ``output``); :meth:`Client.submit_many` sends many tasks in one message;
- :meth:`Client.watch` gives futures for tasks submitted elsewhere;
- :meth:`Client.status`, :meth:`~Client.task_status`, :meth:`~Client.tasks`,
  :meth:`~Client.cancel`,
  :meth:`~Client.hold`, :meth:`~Client.release`, :meth:`~Client.drain`,
  :meth:`~Client.shutdown` send a command and return its reply.

Errors name the problem: :class:`ConnectError` when no interchange answers
(with the URL), when the interchange refused our CURVE key or our protocol
version, or when one side runs CURVE and the other not;
:class:`ConnectionLost` on the futures when the interchange stops
answering while tasks are outstanding; :class:`InterchangeBusy` on the
futures of every task of a ``submit`` that the interchange refused as a
whole because it holds too much task input (PROTOCOL.md section 5.1).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import queue
import threading
import time
from concurrent.futures import Future, as_completed, wait
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import __version__, protocol, spec
from .keys import PathLike, load_client_keys

__all__ = [
    "Client",
    "ClientError",
    "CommandFailed",
    "ConnectError",
    "ConnectionLost",
    "InputTooLarge",
    "InterchangeBusy",
    "PermissionDenied",
    "TaskFuture",
    "TaskResult",
    "UnknownTasks",
    "as_completed",
    "wait",
]


class ClientError(Exception):
    """A problem talking to the interchange."""


class ConnectError(ClientError):
    """The connection or the handshake failed; the message says why."""


class ConnectionLost(ClientError):
    """The interchange stopped answering, or the client was closed."""


class UnknownTasks(ClientError):
    """The interchange does not know these tasks (a ``watch``, or a watch
    sent again after it restarted): never submitted to it, forgotten past
    its result retention, or lost in a restart that did not restore them.
    ``task_ids`` names them."""

    def __init__(self, task_ids: Sequence[str]) -> None:
        self.task_ids = list(task_ids)
        super().__init__(
            f"the interchange does not know task(s) {', '.join(self.task_ids)}: not submitted "
            "to it, forgotten past its result retention, or lost when it restarted"
        )


class CommandFailed(ClientError):
    """The interchange could not carry out a command (reply ``failed``)."""


class PermissionDenied(ClientError):
    """The interchange refused a request because our client identity may
    not make it (another identity's task, or an admin command without being
    an admin); the message says why (PROTOCOL.md section 2)."""


class InputTooLarge(ClientError, ValueError):
    """A task's ``input`` is longer than the interchange's
    ``max_task_input_bytes``; nothing was sent."""


class InterchangeBusy(ClientError):
    """The interchange refused a whole ``submit`` as busy: the input of its
    unfinished tasks would pass its budget (``--max-queued-input-mib``). No
    task of that submit was accepted; they may be submitted again (with the
    same ids) once tasks have finished."""


#: The most task ids one ``watch`` may carry (PROTOCOL.md section 15).
MAX_TASK_IDS_PER_WATCH = 100_000

#: Consecutive submits are merged into one message up to about this many
#: bytes of task data (inputs, commands, environments), so that one refused
#: (busy) message does not take many callers' tasks, and every message
#: stays far below the interchange's message size limit (PROTOCOL.md
#: section 15; a larger frame drops the connection). A larger task goes
#: alone.
MAX_MERGED_BYTES = 16 * 1024 * 1024

#: Most tasks in one ``submit`` (PROTOCOL.md section 15).
MAX_TASKS_PER_SUBMIT = 100_000


def _task_bytes(task: Dict[str, Any]) -> int:
    """About how many bytes a task takes in a ``submit`` message."""
    env = task.get("env") or {}
    return (
        len(task.get("input") or b"")
        + len(task.get("command") or "")
        + sum(len(name) + len(value) + 10 for name, value in env.items())
        + 200
    )


@dataclass(frozen=True)
class TaskResult:
    """The outcome of one task (``TaskResult``, section 7.3)."""

    task_id: str
    state: str
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    error_kind: Optional[str] = None
    error_message: Optional[str] = None
    manager_id: Optional[str] = None
    block_id: Optional[str] = None
    nodes: List[str] = field(default_factory=list)
    stdout_path: Optional[str] = None
    stderr_path: Optional[str] = None
    stdout_tail: bytes = b""
    stderr_tail: bytes = b""
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    #: What the task wrote to the file named by ``RHTEX_TASK_OUTPUT``
    #: (None if it wrote none, or more than ``max_task_output_bytes``).
    output: Optional[bytes] = None

    @classmethod
    def from_wire(cls, result: Mapping[str, Any]) -> TaskResult:
        error = result.get("error") or {}
        return cls(
            task_id=result["task_id"],
            state=result["state"],
            exit_code=result.get("exit_code"),
            signal=result.get("signal"),
            error_kind=error.get("kind"),
            error_message=error.get("message"),
            manager_id=result.get("manager_id"),
            block_id=result.get("block_id"),
            nodes=list(result.get("nodes") or []),
            stdout_path=result.get("stdout_path"),
            stderr_path=result.get("stderr_path"),
            stdout_tail=result.get("stdout_tail") or b"",
            stderr_tail=result.get("stderr_tail") or b"",
            start_time=result.get("start_time"),
            end_time=result.get("end_time"),
            output=result.get("output"),
        )

    @property
    def ok(self) -> bool:
        """True when the task completed (exit code 0)."""
        return self.state == "completed"


class TaskFuture(Future):
    """A future for one task; its result is the task's :class:`TaskResult`."""

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id


_CLOSE = object()


class Client:
    """A connection to an interchange, safe to use from several threads.

    ``url`` is the interchange's client URL (``client_url`` of its ready
    line). ``keys_dir`` defaults to ``$RHTEX_KEYS_DIR`` or
    ``~/.rhtex/keys`` and must be mode 0700; ``client_key`` names the
    client identity to connect as (default ``$RHTEX_CLIENT_KEY``, else
    ``default``: ``client.key_secret``; NAME: ``client-NAME.key_secret``);
    ``insecure`` turns CURVE off
    (the interchange must run ``--insecure`` too). ``timeout`` bounds the
    handshake and every command. While tasks are outstanding and nothing
    arrives for ``liveness_period`` seconds, the client asks for
    ``status``; without an answer within ``timeout`` it fails every
    outstanding future with :class:`ConnectionLost`. An interchange that
    restarted meanwhile (it answers "send hello first") gets ``hello`` and
    a ``watch`` of every outstanding task again, so waiting goes on across
    a restart; a task it does not know fails with :class:`UnknownTasks`,
    as does a :meth:`watch` of tasks it does not know.
    """

    def __init__(
        self,
        url: str,
        *,
        keys_dir: Optional[PathLike] = None,
        client_key: Optional[str] = None,
        insecure: bool = False,
        timeout: float = 30.0,
        liveness_period: float = 15.0,
        client_version: str = f"rhtex-python {__version__}",
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.liveness_period = liveness_period
        self.interchange_version: Optional[str] = None
        #: The interchange's limits, from ``welcome``.
        self.max_task_input_bytes = protocol.DEFAULT_MAX_TASK_BYTES
        self.max_task_output_bytes = protocol.DEFAULT_MAX_TASK_BYTES
        self._request_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._task_futures: Dict[str, List[TaskFuture]] = {}
        self._request_futures: Dict[int, Future] = {}
        # submit request id -> its task ids, until ``submitted`` or ``error``
        self._submits: Dict[int, List[str]] = {}
        # watch request id -> its task ids, until ``watching`` or ``error``
        self._watches: Dict[int, List[str]] = {}
        self._outbox: queue.Queue = queue.Queue()
        self._closed = False
        self._failure: Optional[ClientError] = None
        self._client_version = client_version
        self._secure = not insecure
        # Before any fd is open.
        keys = load_client_keys(keys_dir, client_key) if self._secure else None
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.IPV6, 1)
        if keys is not None:
            self._socket.curve_serverkey = keys.server_public
            self._socket.curve_publickey = keys.client_public
            self._socket.curve_secretkey = keys.client_secret
        monitor = self._socket.get_monitor_socket()
        try:
            self._socket.connect(url)
            self._handshake(monitor, client_version)
        except BaseException:
            self._socket.disable_monitor()
            monitor.close(linger=0)
            self._socket.close(linger=0)
            os.close(self._wake_read)
            os.close(self._wake_write)
            raise
        self._socket.disable_monitor()
        monitor.close(linger=0)
        self._thread = threading.Thread(target=self._run, name=f"rhtex-client {url}", daemon=True)
        self._thread.start()

    # -- handshake, in the constructing thread ---------------------------------

    def _handshake(self, monitor: zmq.Socket, client_version: str) -> None:
        self._socket.send(protocol.encode(protocol.hello(client_version), "from_client"))
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        deadline = time.monotonic() + self.timeout
        connected = False
        auth_failure: Optional[str] = None
        handshake_failed = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            events = dict(poller.poll(remaining * 1000))
            if monitor in events:
                event = recv_monitor_message(monitor)
                kind = event["event"]
                if kind == zmq.EVENT_CONNECTED:
                    connected = True
                elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    auth_failure = f"ZAP status {event['value']}"
                    break
                elif kind in (
                    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                ):
                    handshake_failed = True
            if self._socket in events:
                message = protocol.decode(self._socket.recv(), "to_client")
                if message["type"] == "welcome":
                    self.interchange_version = message["interchange_version"]
                    self.max_task_input_bytes = message["max_task_input_bytes"]
                    self.max_task_output_bytes = message["max_task_output_bytes"]
                    return
                if message["type"] == "refused":
                    raise ConnectError(
                        f"the interchange at {self.url} refused us: {message['reason']}"
                    )
                raise ConnectError(
                    f"the interchange at {self.url} answered hello with {message['type']}: "
                    f"{message.get('message', '')}"
                )
        if auth_failure:
            raise ConnectError(
                f"the interchange at {self.url} refused our CURVE key ({auth_failure}): "
                "our client identity is not among the interchange's client identities "
                "(client.key, client-NAME.key); add one with `rhtex keygen --client NAME DIR` "
                "in its key directory, then SIGHUP or restart it"
            )
        if handshake_failed or connected:
            mode = "CURVE" if self._secure else "no encryption (insecure)"
            raise ConnectError(
                f"connected to {self.url} but no rhtex handshake within {self.timeout:g} s: "
                f"we use {mode}; does the interchange use the same (--insecure on both sides "
                "or on neither), and is it an rhtex interchange's client socket?"
            )
        raise ConnectError(
            f"no interchange answers at {self.url} within {self.timeout:g} s: "
            "is it running, and is this its client_url?"
        )

    # -- the public API, any thread ------------------------------------------

    def submit(
        self,
        command: str,
        resources: Optional[Mapping[str, Any]] = None,
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdout: Optional[str] = None,
        stderr: Optional[str] = None,
        task_id: Optional[str] = None,
        input: Optional[bytes] = None,
    ) -> TaskFuture:
        """Submits one task; raises :class:`rhtex.spec.SpecError` for a bad
        spec and :class:`InputTooLarge` for an ``input`` (bytes for the
        file named by ``$RHTEX_TASK_INPUT`` on the lead node) longer than
        the interchange's ``max_task_input_bytes``."""
        spec.validate(resources)
        task = protocol.task_submission(
            command,
            spec.to_request(resources),
            task_id=task_id,
            env=env,
            cwd=cwd,
            stdout=stdout,
            stderr=stderr,
            input=input,
        )
        return self.submit_many([task])[0]

    def submit_many(self, tasks: Sequence[Mapping[str, Any]]) -> List[TaskFuture]:
        """Submits ``TaskSubmission`` maps (:func:`rhtex.protocol.task_submission`)
        in order (merged with other submits into messages of about 16 MiB of
        task data); every spec and input size is checked first."""
        prepared = []
        for task in tasks:
            spec.validate(task.get("resources"))
            task = dict(task)
            task["resources"] = spec.to_request(task.get("resources"))
            task = protocol.canonical_task(task)
            self._check_input(task)
            prepared.append(task)
        futures = self._register_futures(task["task_id"] for task in prepared)
        self._hand_over(("submit", prepared))
        return futures

    def _register_futures(self, task_ids: Iterable[str]) -> List[TaskFuture]:
        """New futures for these tasks, which their results will complete."""
        futures = [TaskFuture(task_id) for task_id in task_ids]
        self._check_open()
        with self._lock:
            for future in futures:
                self._task_futures.setdefault(future.task_id, []).append(future)
        return futures

    def _check_input(self, task: Mapping[str, Any]) -> None:
        size = len(task["input"] or b"")
        if size > self.max_task_input_bytes:
            raise InputTooLarge(
                f"task {task['task_id']}: its input has {size} bytes, more than the "
                f"max_task_input_bytes of the interchange at {self.url} "
                f"({self.max_task_input_bytes}); the interchange's --max-task-input-bytes "
                "sets the limit"
            )

    def watch(self, task_ids: Iterable[str]) -> List[TaskFuture]:
        """Futures for tasks submitted earlier, perhaps by another client."""
        ids = [protocol.task_id(task_id) for task_id in task_ids]
        futures = self._register_futures(ids)
        self._hand_over(("watch", ids))
        return futures

    def command(self, name: str, timeout: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
        """Sends a command and returns its reply map (``kind`` and fields).
        Raises :class:`CommandFailed` for a ``failed`` reply."""
        future: Future = Future()
        request_id = next(self._request_ids)
        message = protocol.command(request_id, name, **fields)
        self._check_open()
        with self._lock:
            self._request_futures[request_id] = future
        self._hand_over(("send", message))
        try:
            reply = future.result(timeout=self.timeout if timeout is None else timeout)
        except concurrent.futures.TimeoutError:
            with self._lock:
                self._request_futures.pop(request_id, None)
            raise ClientError(
                f"no reply to {name} from the interchange at {self.url} within "
                f"{self.timeout if timeout is None else timeout:g} s"
            ) from None
        if reply["kind"] == "failed":
            raise CommandFailed(f"{name} failed: {reply['message']}")
        return reply

    def status(self) -> Dict[str, Any]:
        """The interchange's status report (managers, queue, blocks)."""
        return self.command("status")

    def task_status(self, task_ids: Iterable[str]) -> List[Dict[str, Any]]:
        return self.command("task_status", task_ids=list(task_ids))["tasks"]

    def tasks(self, state: Optional[str] = None) -> List[Dict[str, Any]]:
        """Every task the interchange knows (queued, running, and the finished
        ones whose results it keeps), oldest submission first, or only those
        in ``state``: dicts with ``task_id``, ``state``, ``num_nodes``,
        ``nodes``, ``submitted_at``, ``start_time``, ``end_time``,
        ``exit_code``, ``error_kind`` (proto/PROTOCOL.md, ``tasks``)."""
        return self.command("tasks", state=state)["tasks"]

    def cancel(self, task_id: str) -> str:
        return self.command("cancel", task_id=task_id)["message"]

    def hold(self, manager_id: str) -> str:
        return self.command("hold", manager_id=manager_id)["message"]

    def release(self, manager_id: str) -> str:
        return self.command("release", manager_id=manager_id)["message"]

    def drain(self, manager_id: str) -> str:
        return self.command("drain", manager_id=manager_id)["message"]

    def shutdown(self) -> str:
        """Stops the interchange (every task gets its result first)."""
        return self.command("shutdown")["message"]

    def close(self) -> None:
        """Says goodbye, stops the I/O thread and fails what is outstanding."""
        if self._closed:
            return
        self._closed = True
        self._hand_over(_CLOSE)
        self._thread.join(timeout=max(self.timeout, 5.0))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def n_outstanding(self) -> int:
        with self._lock:
            return sum(len(futures) for futures in self._task_futures.values())

    # -- handing work to the I/O thread ---------------------------------------

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise ConnectionLost("the client is closed")

    def _hand_over(self, item: Any) -> None:
        self._outbox.put(item)
        try:
            os.write(self._wake_write, b"x")
        except BlockingIOError:
            pass  # the pipe is full: the I/O thread is awake anyway

    # -- the I/O thread ---------------------------------------------------------

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._wake_read, zmq.POLLIN)
        last_heard = time.monotonic()
        probe: Optional[int] = None
        probe_sent = 0.0
        try:
            while True:
                events = dict(poller.poll(1000))
                if self._wake_read in events:
                    try:
                        while os.read(self._wake_read, 4096):
                            pass
                    except BlockingIOError:
                        pass
                if not self._drain_outbox():
                    self._socket.send(protocol.encode(protocol.goodbye(), "from_client"))
                    self._fail_all(ConnectionLost("the client was closed"))
                    return
                if self._socket in events:
                    while True:
                        try:
                            frame = self._socket.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        last_heard = time.monotonic()
                        self._receive(frame)
                    if probe is not None and probe not in self._request_futures:
                        probe = None
                now = time.monotonic()
                if probe is None:
                    if self.n_outstanding and now - last_heard > self.liveness_period:
                        probe = next(self._request_ids)
                        probe_sent = now
                        with self._lock:
                            self._request_futures[probe] = Future()
                        self._socket.send(
                            protocol.encode(protocol.command(probe, "status"), "from_client")
                        )
                elif now - probe_sent > self.timeout:
                    self._failure = ConnectionLost(
                        f"the interchange at {self.url} did not answer status within "
                        f"{self.timeout:g} s while tasks were outstanding"
                    )
                    self._fail_all(self._failure)
                    probe = None
        except zmq.ZMQError as error:
            self._failure = ConnectionLost(f"socket error talking to {self.url}: {error}")
            self._fail_all(self._failure)
        finally:
            self._socket.close(linger=0)
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _drain_outbox(self) -> bool:
        """Sends what callers handed over, in order, consecutive submits
        merged into one message; False on close."""
        pending_tasks: List[Dict[str, Any]] = []
        pending_input = 0

        def flush_tasks() -> None:
            nonlocal pending_input
            if pending_tasks:
                request_id = next(self._request_ids)
                with self._lock:
                    self._submits[request_id] = [task["task_id"] for task in pending_tasks]
                message = protocol.submit(request_id, pending_tasks)
                self._socket.send(protocol.encode(message, "from_client"))
                pending_tasks.clear()
                pending_input = 0

        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                flush_tasks()
                return True
            if item is _CLOSE:
                flush_tasks()
                return False
            kind, payload = item
            if kind == "submit":
                for task in payload:
                    size = _task_bytes(task)
                    full = (
                        pending_input + size > MAX_MERGED_BYTES
                        or len(pending_tasks) >= MAX_TASKS_PER_SUBMIT
                    )
                    if pending_tasks and full:
                        flush_tasks()
                    pending_tasks.append(task)
                    pending_input += size
                continue
            flush_tasks()
            if kind == "watch":
                request_id = next(self._request_ids)
                with self._lock:
                    self._watches[request_id] = list(payload)
                message = protocol.watch(request_id, payload)
            else:
                message = payload
            self._socket.send(protocol.encode(message, "from_client"))

    def _receive(self, frame: bytes) -> None:
        try:
            message = protocol.decode(frame, "to_client")
        except protocol.ProtocolError:
            return
        kind = message["type"]
        if kind == "results":
            for result in message["results"]:
                with self._lock:
                    futures = self._task_futures.pop(result["task_id"], [])
                task_result = TaskResult.from_wire(result)
                for future in futures:
                    if not future.done():
                        future.set_result(task_result)
        elif kind == "reply":
            with self._lock:
                future = self._request_futures.pop(message["request_id"], None)
            if future is not None:
                future.set_result(message["reply"])
        elif kind == "submitted":
            with self._lock:
                self._submits.pop(message["request_id"], None)
        elif kind == "watching":
            with self._lock:
                self._watches.pop(message["request_id"], None)
            if message["unknown"]:
                self._fail_tasks(message["unknown"], UnknownTasks(message["unknown"]))
        elif kind == "error" and message["message"].startswith("send hello first"):
            # The interchange restarted and does not know this connection.
            with self._lock:
                future = self._request_futures.pop(message.get("request_id"), None)
            if future is not None and not future.done():
                future.set_exception(ConnectionLost("the interchange restarted meanwhile"))
            self._resume()
        elif kind == "error":
            request_id = message.get("request_id")
            with self._lock:
                future = self._request_futures.pop(request_id, None) if request_id else None
                refused = self._submits.pop(request_id, None) if request_id else None
                unwatched = self._watches.pop(request_id, None) if request_id else None
            reason = message["message"]
            error_class = PermissionDenied if reason.startswith("denied:") else ClientError
            if future is not None:
                future.set_exception(error_class(f"the interchange said: {reason}"))
            if refused is not None:
                self._fail_submit(refused, reason)
            if unwatched is not None:
                self._fail_tasks(unwatched, error_class(f"watch refused: {reason}"))
        elif kind == "refused":
            self._failure = ConnectionLost(f"the interchange refused us: {message['reason']}")
            self._fail_all(self._failure)

    def _resume(self) -> None:
        """Says hello again and watches every outstanding task again."""
        hello = protocol.hello(self._client_version)
        self._socket.send(protocol.encode(hello, "from_client"))
        with self._lock:
            task_ids = sorted(self._task_futures)
        for start in range(0, len(task_ids), MAX_TASK_IDS_PER_WATCH):
            chunk = task_ids[start : start + MAX_TASK_IDS_PER_WATCH]
            watch = protocol.watch(next(self._request_ids), chunk)
            self._socket.send(protocol.encode(watch, "from_client"))

    def _fail_tasks(self, task_ids: Iterable[str], error: ClientError) -> None:
        """Fails the futures of these tasks with ``error``."""
        with self._lock:
            futures = [f for task_id in task_ids for f in self._task_futures.pop(task_id, [])]
        for future in futures:
            if not future.done():
                future.set_exception(error)

    def _fail_submit(self, task_ids: List[str], reason: str) -> None:
        """Fails the futures of a submit that the interchange refused as a whole."""
        if reason.startswith("busy:"):
            error: ClientError = InterchangeBusy(
                f"the interchange at {self.url} refused a submit of {len(task_ids)} "
                f"task(s) as a whole, none accepted: {reason}"
            )
        else:
            error = ClientError(
                f"the interchange at {self.url} refused a submit of {len(task_ids)} task(s): "
                f"{reason}"
            )
        self._fail_tasks(task_ids, error)

    def _fail_all(self, error: ClientError) -> None:
        with self._lock:
            task_futures = [f for futures in self._task_futures.values() for f in futures]
            request_futures = list(self._request_futures.values())
            self._task_futures.clear()
            self._request_futures.clear()
            self._submits.clear()
        for future in task_futures + request_futures:
            if not future.done():
                future.set_exception(error)
