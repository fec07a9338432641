"""How a task's serialized app reaches the lead node and its result comes
back: the one seam between the executor and the runner.

Since protocol version 3 both travel inside the protocol (PROTOCOL.md
section 9.3), so the submit host and the lead node share no file system:
the executor sends the serialized app as the task's ``input`` and reads
the runner's answer from the result's ``output``. On the lead node the
pool-manager writes the input to a file named by ``RHTEX_TASK_INPUT``
before the command starts, names the output file in ``RHTEX_TASK_OUTPUT``
(it does not exist at start), reads that file when the command ends (at
most ``max_task_output_bytes``), and removes both.

This module is the runner's side: :func:`read_input` and
:func:`write_output`. The runner writes its output whole or not at all (a
temporary file renamed into place), so the pool-manager never reads half
an answer from a runner killed while writing.
"""

from __future__ import annotations

import os

# The runner imports this module: its imports are kept light (os only).

INPUT_ENV = "RHTEX_TASK_INPUT"
OUTPUT_ENV = "RHTEX_TASK_OUTPUT"


class PayloadError(Exception):
    """The task's environment lacks the pool-manager's payload files."""


def read_input() -> bytes:
    """The task's input, from the file the pool-manager wrote."""
    path = os.environ.get(INPUT_ENV)
    if not path:
        raise PayloadError(
            f"{INPUT_ENV} is not set: the task carries no input, or its pool-manager "
            "speaks a protocol older than version 3"
        )
    with open(path, "rb") as handle:
        return handle.read()


def write_output(data: bytes) -> None:
    """The task's output, written whole or not at all (tmp file + rename)."""
    path = os.environ.get(OUTPUT_ENV)
    if not path:
        raise PayloadError(
            f"{OUTPUT_ENV} is not set: the task's pool-manager speaks a protocol older "
            "than version 3"
        )
    partial = f"{path}.partial"
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
        os.replace(partial, path)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
