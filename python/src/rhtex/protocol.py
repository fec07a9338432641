"""The rhtex wire protocol, version 4 (``proto/PROTOCOL.md``).

Every message is one msgpack map with a ``type`` key. This module builds
and parses all of them, in the four directions of the protocol
(``from_client``, ``to_client``, ``from_manager``, ``to_manager``), from
one table of message shapes (:data:`SCHEMAS`), so that what it writes is
byte for byte what the Rust side writes (``proto/golden/``):

- :func:`encode` packs a message after putting it in canonical form (tag
  first, fields in the order of the Rust structs, maps of strings with
  sorted keys, unset optional fields as nil, lists and maps present);
- :func:`decode` unpacks and checks one frame and returns the message in
  that same canonical form (ids as strings even when sent as 16 raw bytes,
  integers where floats are expected turned into floats, defaults filled
  in), or raises :class:`ProtocolError`;
- builders (:func:`hello`, :func:`submit`, :func:`command`, ...) return
  canonical messages.

Messages are plain ``dict`` objects, as they are on the wire.
"""

from __future__ import annotations

import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import msgpack

PROTOCOL_VERSION = 4

#: Default of ``max_task_input_bytes`` and ``max_task_output_bytes`` (16 MiB),
#: when ``welcome`` or ``registered`` leaves them out.
DEFAULT_MAX_TASK_BYTES = 16 * 1024 * 1024

DIRECTIONS = ("from_client", "to_client", "from_manager", "to_manager")

LAUNCHERS = ("mpiexec", "srun", "aprun")
TASK_STATES = ("queued", "running", "completed", "failed", "cancelled", "unknown")
FINAL_STATES = ("completed", "failed", "cancelled")
ERROR_KINDS = (
    "exit_code",
    "signaled",
    "launch_failed",
    "invalid_spec",
    "unschedulable",
    "manager_lost",
    "cancelled",
    "killed",
    "duplicate_task_id",
    "walltime_exceeded",
    "input_too_large",
    "output_too_large",
)
BLOCK_STATES = ("pending", "running", "connected", "draining", "ended", "failed")


class ProtocolError(ValueError):
    """A frame that is not a valid message (PROTOCOL.md section 3: undecodable)."""


# ---------------------------------------------------------------------------
# Field kinds. A field is (name, kind, required); kinds are strings:
#   str, bool, u32, u64, i32, i64, f64, id, bin, strmap (str -> str, sorted),
#   request (a resource request as sent: sorted, values kept),
#   enum:<name>, list:<kind>, struct:<name>, opt:<kind>
# Absent optional fields become None; absent lists [] and maps {}.
# ---------------------------------------------------------------------------

_ENUMS = {
    "launcher": LAUNCHERS,
    "task_state": TASK_STATES,
    "error_kind": ERROR_KINDS,
    "block_state": BLOCK_STATES,
}

Field = Tuple[str, str, bool]

STRUCTS: Dict[str, List[Field]] = {
    "task_submission": [
        ("task_id", "id", True),
        ("command", "str", True),
        ("resources", "request", False),
        ("env", "strmap", False),
        ("cwd", "opt:str", False),
        ("stdout", "opt:str", False),
        ("stderr", "opt:str", False),
        ("input", "opt:bin", False),
    ],
    "task_resources": [
        ("num_nodes", "u32", True),
        ("ranks_per_node", "u32", True),
        ("num_ranks", "u32", True),
        ("launcher_options", "opt:str", False),
        ("priority", "opt:i64", False),
        ("walltime", "opt:f64", False),
        ("retries", "opt:u32", False),
        ("exclusive", "bool=true", False),
    ],
    "node_share": [("node", "u32", True), ("slots", "u32", True)],
    "held_task": [("task_id", "id", True), ("placement", "list:struct:node_share", True)],
    "task_dispatch": [
        ("task_id", "id", True),
        ("command", "str", True),
        ("resources", "struct:task_resources", True),
        ("placement", "list:struct:node_share", True),
        ("env", "strmap", False),
        ("cwd", "opt:str", False),
        ("stdout", "opt:str", False),
        ("stderr", "opt:str", False),
        ("input", "opt:bin", False),
    ],
    "task_error": [("kind", "enum:error_kind", True), ("message", "str", True)],
    "task_result": [
        ("task_id", "id", True),
        ("state", "enum:task_state", True),
        ("exit_code", "opt:i32", False),
        ("signal", "opt:i32", False),
        ("error", "opt:struct:task_error", False),
        ("manager_id", "opt:id", False),
        ("block_id", "opt:str", False),
        ("nodes", "list:str", False),
        ("stdout_path", "opt:str", False),
        ("stderr_path", "opt:str", False),
        ("stdout_tail", "bin", False),
        ("stderr_tail", "bin", False),
        ("start_time", "opt:f64", False),
        ("end_time", "opt:f64", False),
        ("output", "opt:bin", False),
    ],
    "manager_info": [
        ("manager_id", "id", True),
        ("block_id", "str", True),
        ("hostname", "str", True),
        ("launcher", "enum:launcher", True),
        ("n_nodes", "u32", True),
        ("n_free_nodes", "u32", True),
        ("n_running_tasks", "u32", True),
        ("held", "bool", True),
        ("draining", "bool", True),
        ("registered_at", "f64", True),
        ("last_heartbeat", "f64", True),
        ("rhtex_version", "str", True),
        ("slots_per_node", "u32=0", False),
        ("reserved_for", "opt:id", False),
    ],
    "waiting_group": [
        ("num_nodes", "u32", True),
        ("n_tasks", "u64", True),
        ("reason", "str", True),
    ],
    "user_counts": [
        ("identity", "str", True),
        ("n_queued", "u64", True),
        ("n_running", "u64", True),
    ],
    "block_info": [
        ("block_id", "str", True),
        ("job_id", "str", True),
        ("provider", "str", True),
        ("state", "enum:block_state", True),
        ("n_nodes", "u32", True),
        ("manager_id", "opt:id", False),
        ("submitted_at", "f64", True),
        ("output_path", "opt:str", False),
        ("message", "opt:str", False),
    ],
    "task_status_info": [
        ("task_id", "id", True),
        ("state", "enum:task_state", True),
        ("manager_id", "opt:id", False),
        ("nodes", "list:str", False),
        ("waiting_reason", "opt:str", False),
        ("result", "opt:struct:task_result", False),
    ],
    "task_summary": [
        ("task_id", "id", True),
        ("state", "enum:task_state", True),
        ("num_nodes", "u32", True),
        ("manager_id", "opt:id", False),
        ("nodes", "list:str", False),
        ("submitted_at", "f64", True),
        ("start_time", "opt:f64", False),
        ("end_time", "opt:f64", False),
        ("exit_code", "opt:i32", False),
        ("error_kind", "opt:enum:error_kind", False),
    ],
}

#: Tagged maps: (tag key, {tag value: fields}).
TAGGED: Dict[str, Tuple[str, Dict[str, List[Field]]]] = {
    "command": (
        "name",
        {
            "status": [],
            "task_status": [("task_ids", "list:id", True)],
            "tasks": [("state", "opt:enum:task_state", False)],
            "hold": [("manager_id", "id", True)],
            "release": [("manager_id", "id", True)],
            "drain": [("manager_id", "id", True)],
            "cancel": [("task_id", "id", True)],
            "shutdown": [],
        },
    ),
    "reply": (
        "kind",
        {
            "status": [
                ("interchange_version", "str", True),
                ("protocol_version", "u32", True),
                ("n_queued", "u64", True),
                ("n_running", "u64", True),
                ("n_completed", "u64", True),
                ("n_failed", "u64", True),
                ("n_cancelled", "u64", True),
                ("n_bad_messages", "u64", True),
                ("managers", "list:struct:manager_info", True),
                ("waiting", "list:struct:waiting_group", True),
                ("blocks", "list:struct:block_info", False),
                ("users", "list:struct:user_counts", False),
            ],
            "task_status": [("tasks", "list:struct:task_status_info", True)],
            "tasks": [("tasks", "list:struct:task_summary", True)],
            "done": [("message", "str", True)],
            "failed": [("message", "str", True)],
        },
    ),
    "from_client": (
        "type",
        {
            "hello": [
                ("protocol_version", "u32", True),
                ("client_version", "str=", False),
            ],
            "submit": [
                ("request_id", "u64", True),
                ("tasks", "list:struct:task_submission", True),
            ],
            "watch": [("request_id", "u64", True), ("task_ids", "list:id", True)],
            "command": [("request_id", "u64", True), ("command", "tagged:command", True)],
            "goodbye": [],
        },
    ),
    "to_client": (
        "type",
        {
            "welcome": [
                ("protocol_version", "u32", True),
                ("interchange_version", "str", True),
                ("max_task_input_bytes", f"u64={DEFAULT_MAX_TASK_BYTES}", False),
                ("max_task_output_bytes", f"u64={DEFAULT_MAX_TASK_BYTES}", False),
            ],
            "refused": [("reason", "str", True), ("protocol_version", "u32", True)],
            "submitted": [("request_id", "u64", True), ("n_tasks", "u32", True)],
            "watching": [
                ("request_id", "u64", True),
                ("n_tasks", "u32", True),
                ("unknown", "list:id", False),
            ],
            "results": [("results", "list:struct:task_result", True)],
            "reply": [("request_id", "u64", True), ("reply", "tagged:reply", True)],
            "error": [("request_id", "opt:u64", False), ("message", "str", True)],
        },
    ),
    "from_manager": (
        "type",
        {
            "register": [
                ("protocol_version", "u32", True),
                ("manager_id", "id", True),
                ("block_id", "str", True),
                ("hostname", "str", True),
                ("nodes", "list:str", True),
                ("launcher", "enum:launcher", True),
                ("rhtex_version", "str", True),
                ("cpu_count", "u32=0", False),
                ("slots_per_node", "opt:u32", False),
                ("versions", "strmap", False),
                ("attempt", "u32=0", False),
                ("running_tasks", "list:struct:held_task", False),
                ("held_results", "list:id", False),
            ],
            "heartbeat": [],
            "results": [("results", "list:struct:task_result", True)],
            "drain_request": [],
            "goodbye": [("reason", "str", True)],
        },
    ),
    "to_manager": (
        "type",
        {
            "registered": [
                ("interchange_version", "str", True),
                ("heartbeat_period", "f64", True),
                ("max_task_output_bytes", f"u64={DEFAULT_MAX_TASK_BYTES}", False),
                ("drop_tasks", "list:id", False),
            ],
            "not_registered": [("reason", "str", True)],
            "refused": [("reason", "str", True), ("protocol_version", "u32", True)],
            "run_tasks": [("tasks", "list:struct:task_dispatch", True)],
            "cancel_task": [("task_id", "id", True)],
            "heartbeat": [],
            "shutdown": [("reason", "str", True)],
        },
    ),
}

_RANGES = {
    "u32": (0, (1 << 32) - 1),
    "u64": (0, (1 << 64) - 1),
    "i32": (-(1 << 31), (1 << 31) - 1),
    "i64": (-(1 << 63), (1 << 63) - 1),
}


def _id(value: Any, where: str) -> str:
    if isinstance(value, (bytes, bytearray)) and len(value) == 16:
        return str(uuid.UUID(bytes=bytes(value)))
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise ProtocolError(f"{where}: not a UUID: {value!r}")


def _normalize(value: Any, kind: str, where: str) -> Any:
    if kind.startswith("opt:"):
        return None if value is None else _normalize(value, kind[4:], where)
    if "=" in kind:
        kind = kind.split("=", 1)[0]
    if kind.startswith("list:"):
        if not isinstance(value, (list, tuple)):
            raise ProtocolError(f"{where}: not a list")
        return [_normalize(item, kind[5:], f"{where}[{i}]") for i, item in enumerate(value)]
    if kind.startswith("struct:"):
        return _normalize_fields(value, STRUCTS[kind[7:]], where)
    if kind.startswith("tagged:"):
        return _normalize_tagged(value, kind[7:], where)
    if kind.startswith("enum:"):
        if value not in _ENUMS[kind[5:]]:
            raise ProtocolError(f"{where}: unknown {kind[5:]} {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ProtocolError(f"{where}: not a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ProtocolError(f"{where}: not a boolean")
        return value
    if kind in _RANGES:
        low, high = _RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ProtocolError(f"{where}: not a {kind}")
        return value
    if kind == "f64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProtocolError(f"{where}: not a number")
        return float(value)
    if kind == "id":
        return _id(value, where)
    if kind == "bin":
        if not isinstance(value, (bytes, bytearray)):
            raise ProtocolError(f"{where}: not bytes")
        return bytes(value)
    if kind == "strmap":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ProtocolError(f"{where}: not a map of strings")
        return dict(sorted(value.items()))
    if kind == "request":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ProtocolError(f"{where}: not a map")
        for key, item in value.items():
            if item is not None and not isinstance(item, (bool, int, float, str)):
                raise ProtocolError(f"{where}.{key}: not a number, string, boolean or nil")
        return dict(sorted(value.items()))
    raise AssertionError(f"unknown field kind {kind}")


def _default(kind: str) -> Any:
    if "=" in kind and not kind.startswith("opt:"):
        base, text = kind.split("=", 1)
        if base == "bool":
            return text == "true"
        if base == "str":
            return text
        return int(text)
    if kind.startswith("opt:"):
        return None
    if kind.startswith("list:"):
        return []
    if kind in ("strmap", "request"):
        return {}
    if kind == "bin":
        return b""
    raise AssertionError(f"no default for {kind}")


def _normalize_fields(value: Any, fields: Sequence[Field], where: str) -> Dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{where}: not a map")
    out: Dict[str, Any] = {}
    for name, kind, required in fields:
        item = value.get(name)
        if item is None:
            if required:
                raise ProtocolError(f"{where}: missing field {name!r}")
            out[name] = _default(kind)
        else:
            out[name] = _normalize(item, kind, f"{where}.{name}")
    return out


def _normalize_tagged(value: Any, family: str, where: str) -> Dict[str, Any]:
    tag_key, variants = TAGGED[family]
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{where}: not a map")
    tag = value.get(tag_key)
    if tag not in variants:
        raise ProtocolError(f"{where}: unknown {tag_key} {tag!r}")
    out: Dict[str, Any] = {tag_key: tag}
    out.update(_normalize_fields(value, variants[tag], where))
    return out


def canonical(message: Mapping[str, Any], direction: str) -> Dict[str, Any]:
    """``message`` in canonical form for ``direction``, or :class:`ProtocolError`."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; one of {', '.join(DIRECTIONS)}")
    return _normalize_tagged(message, direction, direction)


def encode(message: Mapping[str, Any], direction: str) -> bytes:
    """One frame: the canonical form of ``message``, packed."""
    return msgpack.packb(canonical(message, direction), use_bin_type=True)


def decode(frame: bytes, direction: str) -> Dict[str, Any]:
    """A frame as a canonical message, or :class:`ProtocolError`."""
    try:
        value = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception as error:  # msgpack raises several unrelated types
        raise ProtocolError(f"not msgpack: {error}") from None
    return canonical(value, direction)


# ---------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------


def new_task_id() -> str:
    """A fresh task id (a random UUID, lowercase hyphenated)."""
    return str(uuid.uuid4())


def task_submission(
    command: str,
    resources: Optional[Mapping[str, Any]] = None,
    *,
    task_id: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    stdout: Optional[str] = None,
    stderr: Optional[str] = None,
    input: Optional[bytes] = None,
) -> Dict[str, Any]:
    """A ``TaskSubmission`` (section 7.1); the resources are not validated
    here, nor is ``input`` checked against the interchange's limit."""
    return _normalize_fields(
        {
            "task_id": task_id or new_task_id(),
            "command": command,
            "resources": dict(resources or {}),
            "env": dict(env or {}),
            "cwd": cwd,
            "stdout": stdout,
            "stderr": stderr,
            "input": input,
        },
        STRUCTS["task_submission"],
        "task",
    )


def canonical_task(task: Mapping[str, Any]) -> Dict[str, Any]:
    """A ``TaskSubmission`` map in canonical form, or :class:`ProtocolError`."""
    return _normalize_fields(task, STRUCTS["task_submission"], "task")


def task_id(value: Any) -> str:
    """A task or manager id (UUID, string or 16 bytes) as the canonical string."""
    return _id(value, "id")


def hello(client_version: str = "") -> Dict[str, Any]:
    return {"type": "hello", "protocol_version": PROTOCOL_VERSION, "client_version": client_version}


def submit(request_id: int, tasks: Iterable[Mapping[str, Any]]) -> Dict[str, Any]:
    return canonical(
        {"type": "submit", "request_id": request_id, "tasks": list(tasks)}, "from_client"
    )


def watch(request_id: int, task_ids: Iterable[str]) -> Dict[str, Any]:
    return canonical(
        {"type": "watch", "request_id": request_id, "task_ids": list(task_ids)}, "from_client"
    )


def command(request_id: int, name: str, **fields: Any) -> Dict[str, Any]:
    """A ``command`` message: ``command(3, "status")``, ``command(5, "hold", manager_id=...)``."""
    return canonical(
        {"type": "command", "request_id": request_id, "command": {"name": name, **fields}},
        "from_client",
    )


def goodbye() -> Dict[str, Any]:
    return {"type": "goodbye"}


def is_final(state: str) -> bool:
    return state in FINAL_STATES
