"""How a task's serialized app reaches the lead node and its result comes
back: the one seam between the executor and the runner.

Today (protocol version 2) payloads travel through files in a directory
that the submit host and the lead node share (the executor's
``working_dir``): the executor writes ``<task_id>.in``, the runner reads
it and writes ``<task_id>.out``, the executor reads that when the task's
result arrives. A later protocol version carries them inline in
``submit`` and in the task's result; only this module changes then.

The runner finds its files through two environment variables set on the
task: ``RHTEX_PAYLOAD_IN`` and ``RHTEX_PAYLOAD_OUT``.
"""

from __future__ import annotations

import os

# The runner imports this module: its imports are kept light (os only).

INPUT_ENV = "RHTEX_PAYLOAD_IN"
OUTPUT_ENV = "RHTEX_PAYLOAD_OUT"


class FilePayloads:
    """Submit side: payloads as files under ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)

    def prepare(self) -> None:
        os.makedirs(self.directory, exist_ok=True)

    def _paths(self, task_id: str):
        base = os.path.join(self.directory, task_id)
        return base + ".in", base + ".out"

    def put(self, task_id: str, data: bytes) -> dict[str, str]:
        """Stores a task's input; returns the environment the runner needs."""
        input_path, output_path = self._paths(task_id)
        with open(input_path, "wb") as handle:
            handle.write(data)
        return {INPUT_ENV: input_path, OUTPUT_ENV: output_path}

    def take(self, task_id: str) -> bytes | None:
        """The task's output (None if the runner wrote none); removes both files."""
        input_path, output_path = self._paths(task_id)
        try:
            with open(output_path, "rb") as handle:
                data: bytes | None = handle.read()
        except FileNotFoundError:
            data = None
        for path in (input_path, output_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return data


def read_input() -> bytes:
    """Runner side: the task's input."""
    with open(os.environ[INPUT_ENV], "rb") as handle:
        return handle.read()


def write_output(data: bytes) -> None:
    """Runner side: the task's output, written whole or not at all."""
    path = os.environ[OUTPUT_ENV]
    partial = f"{path}.partial"
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)
