#!/usr/bin/env python3
"""Where a forked app's CPU goes: fork and exit of an interpreter with Parsl
imported (as the warm server is, after ``gc.freeze()``), against the app.

Prints CPU milliseconds per round, the parent's (fork, wait) and the
child's (copy-on-write faults, the app, exit), for: fork and exit; fork,
run a packed no-op python app through the runner, exit; the same with the
environment switch and the output file; and the app run in-process, as a
reused worker runs it. A measurement, not a test.

Usage: python bench/warm_fork_cost.py [ROUNDS]  (with Parsl and rhtex importable)
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time

import msgpack  # noqa: F401
import parsl.app.errors
import parsl.executors.execute_task  # noqa: F401
from parsl.serialize import pack_apply_message
from rhtex import runner


def app(x):
    return x + 1


def cpu():
    times = os.times()
    return times.user + times.system, times.children_user + times.children_system


def measure(name, rounds, child_body):
    parent_0, children_0 = cpu()
    start = time.perf_counter()
    for _ in range(rounds):
        pid = os.fork()
        if pid == 0:
            try:
                child_body()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    parent_1, children_1 = cpu()
    wall = time.perf_counter() - start
    print(
        f"{name:42s} parent {1000 * (parent_1 - parent_0) / rounds:.2f} ms"
        f"  child {1000 * (children_1 - children_0) / rounds:.2f} ms"
        f"  wall {1000 * wall / rounds:.2f} ms"
    )


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    packed = pack_apply_message(app, (1,), {})
    output = os.path.join(tempfile.mkdtemp(prefix="warm-fork-cost-"), "output")
    gc.collect()
    gc.freeze()

    def with_task():
        os.environ.clear()
        os.environ.update({"PARSL_NUM_NODES": "1"})
        os.chdir("/")
        with open(output, "wb") as handle:
            handle.write(runner.run_task(packed))

    measure("fork, exit", rounds, lambda: None)
    measure("fork, run the app, exit", rounds, lambda: runner.run_task(packed))
    measure("fork, environment, app, output file, exit", rounds, with_task)
    before, _ = cpu()
    for _ in range(rounds):
        runner.run_task(packed)
    after, _ = cpu()
    print(
        f"{'the app in-process (a reused worker)':42s} {1000 * (after - before) / rounds:.2f} ms"
    )


if __name__ == "__main__":
    main()
