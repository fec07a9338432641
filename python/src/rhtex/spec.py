"""Resource specifications: the rules of PROTOCOL.md section 8.

The twin of ``crates/protocol/src/spec.rs``: the same keys, the same
derivation and the same error messages, word for word. Both are tested
against one table of cases, ``proto/spec-cases.json``.

:func:`validate` takes a request as the user wrote it (a mapping) and
returns a :class:`TaskResources`, or raises :class:`SpecError`. It never
changes the mapping it is given.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Dict, Mapping, Optional

#: Longest ``walltime`` accepted, in seconds.
MAX_WALLTIME = 1_000_000_000
#: Most ``retries`` accepted.
MAX_RETRIES = 1000
#: Upper bound on node and rank counts (2^24).
MAX_COUNT = 1 << 24


class SpecError(ValueError):
    """A resource specification breaks a rule; the message says which."""


@dataclass(frozen=True)
class TaskResources:
    """A validated resource specification: every count present."""

    num_nodes: int
    ranks_per_node: int
    num_ranks: int
    launcher_options: Optional[str] = None
    priority: Optional[int] = None
    walltime: Optional[float] = None
    retries: Optional[int] = None
    exclusive: bool = True

    def to_wire(self) -> Dict[str, Any]:
        """The map as the interchange sends it in ``run_tasks`` (field order kept)."""
        return {key: getattr(self, key) for key in KNOWN_KEYS}


#: The keys a resource specification may hold: the fields of
#: :class:`TaskResources`, in the order of the wire map.
KNOWN_KEYS = tuple(field.name for field in fields(TaskResources))


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_float(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral))


def _rust_float(value: float) -> str:
    """A float as Rust's ``{:?}`` writes it (``1.0``, ``1e16``, ``NaN``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(float(value))
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text


def _rust_string(value: str) -> str:
    """A string as Rust's ``{:?}`` writes it (double quotes, escapes)."""
    out = ['"']
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char == "\0":
            out.append("\\0")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def show(value: Any) -> str:
    """A value as errors show it: as it was sent (PROTOCOL.md section 8)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_int(value):
        return str(int(value))
    if _is_float(value):
        return _rust_float(float(value))
    if isinstance(value, str):
        return _rust_string(value)
    return repr(value)


def _count(request: Mapping[str, Any], key: str) -> Optional[int]:
    if key not in request:
        return None
    value = request[key]
    if _is_int(value) and 1 <= value <= MAX_COUNT:
        return int(value)
    raise SpecError(f"{key} must be an integer from 1 to {MAX_COUNT}, got {show(value)}")


def _ranks_do_not_fit(num_nodes: int, ranks_per_node: int, num_ranks: int) -> SpecError:
    low = (num_nodes - 1) * ranks_per_node + 1
    high = num_nodes * ranks_per_node
    return SpecError(
        f"num_ranks = {num_ranks} does not fit num_nodes = {num_nodes} with ranks_per_node = "
        f"{ranks_per_node}: every node must run at least one rank, so num_ranks must be from "
        f"{low} to {high}"
    )


def validate(request: Optional[Mapping[str, Any]]) -> TaskResources:
    """Checks a resource request and derives the missing counts.

    ``None`` or an empty mapping is a serial task: one node, one rank.
    Raises :class:`SpecError` with the same message as the Rust validator.
    """
    if request is None:
        request = {}
    if not isinstance(request, Mapping):
        raise SpecError(f"a resource specification must be a map, got {show(request)}")
    unknown = sorted(str(key) for key in request if key not in KNOWN_KEYS)
    if unknown:
        raise SpecError(
            f"unknown resource specification key(s): {', '.join(unknown)}; "
            f"valid keys are {', '.join(KNOWN_KEYS)}"
        )

    num_nodes = _count(request, "num_nodes") or 1
    given_ranks_per_node = _count(request, "ranks_per_node")
    given_num_ranks = _count(request, "num_ranks")

    launcher_options = None
    if "launcher_options" in request:
        value = request["launcher_options"]
        if not isinstance(value, str):
            raise SpecError(
                f"launcher_options must be a string of extra launcher arguments, got {show(value)}"
            )
        launcher_options = value

    priority = None
    if "priority" in request:
        value = request["priority"]
        if not _is_int(value) or not -(1 << 63) <= value < (1 << 63):
            raise SpecError(f"priority must be an integer (smaller runs first), got {show(value)}")
        priority = int(value)

    walltime = None
    if "walltime" in request:
        value = request["walltime"]
        if _is_int(value) and 1 <= value <= MAX_WALLTIME:
            walltime = float(value)
        elif _is_float(value) and 0.0 < float(value) <= MAX_WALLTIME:
            walltime = float(value)
        else:
            raise SpecError(
                "walltime must be a number of seconds, more than 0 and at most "
                f"{MAX_WALLTIME}, got {show(value)}"
            )

    retries = None
    if "retries" in request:
        value = request["retries"]
        if not (_is_int(value) and 0 <= value <= MAX_RETRIES):
            raise SpecError(
                f"retries must be an integer from 0 to {MAX_RETRIES}, got {show(value)}"
            )
        retries = int(value)

    exclusive = True
    if "exclusive" in request:
        value = request["exclusive"]
        if not isinstance(value, bool):
            raise SpecError(
                "exclusive must be true (whole nodes) or false (share nodes by slots), "
                f"got {show(value)}"
            )
        exclusive = value

    def total(ranks_per_node: int) -> int:
        product = num_nodes * ranks_per_node
        if product > MAX_COUNT:
            raise SpecError(
                f"num_nodes * ranks_per_node = {num_nodes} * {ranks_per_node} "
                f"is larger than {MAX_COUNT} ranks"
            )
        return product

    if given_ranks_per_node is None and given_num_ranks is None:
        ranks_per_node, num_ranks = 1, total(1)
    elif given_num_ranks is None:
        assert given_ranks_per_node is not None
        ranks_per_node, num_ranks = given_ranks_per_node, total(given_ranks_per_node)
    elif given_ranks_per_node is None:
        num_ranks = given_num_ranks
        if num_ranks < num_nodes:
            raise SpecError(
                f"num_ranks = {num_ranks} is fewer than num_nodes = {num_nodes}: every node "
                f"must run at least one rank, so give num_ranks of at least {num_nodes} "
                "or fewer nodes"
            )
        ranks_per_node = -(-num_ranks // num_nodes)
        if (num_nodes - 1) * ranks_per_node >= num_ranks:
            low = (num_nodes - 1) * ranks_per_node + 1
            high = num_nodes * ranks_per_node
            raise SpecError(
                f"num_ranks = {num_ranks} cannot be spread over num_nodes = {num_nodes}: "
                f"ranks_per_node would be ceil({num_ranks} / {num_nodes}) = {ranks_per_node}, "
                "which leaves some nodes without a rank; use a num_ranks from "
                f"{low} to {high}, or a multiple of num_nodes, or fewer nodes"
            )
    else:
        ranks_per_node, num_ranks = given_ranks_per_node, given_num_ranks
        if not ((num_nodes - 1) * ranks_per_node < num_ranks <= num_nodes * ranks_per_node):
            raise _ranks_do_not_fit(num_nodes, ranks_per_node, num_ranks)

    return TaskResources(
        num_nodes=num_nodes,
        ranks_per_node=ranks_per_node,
        num_ranks=num_ranks,
        launcher_options=launcher_options,
        priority=priority,
        walltime=walltime,
        retries=retries,
        exclusive=exclusive,
    )


def to_request(request: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The request as it goes on the wire: keys sorted, numbers as plain
    ``int``/``float`` (so numpy integers pack). Validate it first."""
    wire: Dict[str, Any] = {}
    for key in sorted(request or {}):
        value = request[key]  # type: ignore[index]
        if _is_int(value):
            value = int(value)
        elif _is_float(value):
            value = float(value)
        wire[key] = value
    return wire
