#!/usr/bin/env python3
"""RhtexExecutor against Parsl's MPIExecutor, same machine, same script.

For each executor, in a fresh DataFlowKernel:

1. throughput: N no-op python apps, then N no-op bash apps (``true``),
   each with ``{"num_nodes": 1}``, submitted at once after a warm-up, on a
   block of ``--nodes`` synthetic nodes (so ``--nodes`` apps run at a time);
2. lead-node memory: ``--sleepers`` concurrent ``sleep`` bash apps of 1
   node each, on a block of that many nodes; once all run, the PSS and RSS
   of every process of the lead node's tree (rhtex: the pool-manager and
   everything below it, including the warm runner; Parsl: the worker pool
   and its workers), with and without the ``sleep`` processes themselves.

RhtexExecutor starts a private interchange and pool-manager (CURVE on)
from ``$RHTEX_BIN_DIR`` (use release binaries: ``cargo build --release``),
once with reused workers (``rhtex``, its default) and once with a fresh
fork per app (``rhtex_fork``); for both, CPU milliseconds per python app
by process (the warm server's live children, the reused workers, as
``warm_workers``);
MPIExecutor runs with a LocalProvider and a PBS node file of the same
synthetic names (``encrypted=False``, its default). Prints one JSON object
(also written to ``--out``) and a table with the ratios. A measurement,
not a test.

Usage: python bench/parsl_executors.py [--tasks 1000] [--nodes 8]
       [--sleepers 64] [--kinds rhtex_fork,rhtex,mpiex]
       [--only rhtex|rhtex_fork|mpiex] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import parsl
from parsl import bash_app, python_app
from parsl.config import Config

SLEEP_SECONDS = "30.25"  # an odd value, to find our sleep processes


@python_app
def noop_python(i, parsl_resource_specification=None):
    return i + 1


@bash_app
def noop_bash(parsl_resource_specification=None):
    return "true"


@bash_app
def sleeper(parsl_resource_specification=None):
    return "sleep 30.25"  # SLEEP_SECONDS: apps from __main__ do not see its globals


def node_names(n):
    return [f"bench-node-{i}" for i in range(1, n + 1)]


def rhtex_config(nodes, run_dir, app_isolation="reuse"):
    from rhtex.parsl import RhtexExecutor

    executor = RhtexExecutor(
        label="rhtex",
        nodes=node_names(nodes),
        working_dir=run_dir / "rhtex",
        app_isolation=app_isolation,
    )
    return Config(
        executors=[executor], run_dir=str(run_dir / "runinfo"), usage_tracking=0
    )


def rhtex_fork_config(nodes, run_dir):
    return rhtex_config(nodes, run_dir, app_isolation="fork")


def mpiex_config(nodes, run_dir):
    from parsl.executors import MPIExecutor
    from parsl.launchers import SimpleLauncher
    from parsl.providers import LocalProvider

    nodefile = run_dir / "nodefile"
    nodefile.write_text("\n".join(node_names(nodes)) + "\n")
    executor = MPIExecutor(
        label="mpiex",
        address="127.0.0.1",
        max_workers_per_block=nodes,
        mpi_launcher="mpiexec",
        provider=LocalProvider(
            launcher=SimpleLauncher(),
            worker_init=f"export PBS_NODEFILE={nodefile}",
            init_blocks=1,
            min_blocks=1,
            max_blocks=1,
        ),
    )
    return Config(
        executors=[executor],
        run_dir=str(run_dir / "runinfo"),
        strategy="none",
        usage_tracking=0,
    )


CONFIGS = {
    "rhtex": rhtex_config,
    "rhtex_fork": rhtex_fork_config,
    "mpiex": mpiex_config,
}
SPEC = {"num_nodes": 1}


def timed(app, n, **kwargs):
    start = time.perf_counter()
    futures = [
        app(
            *([i] if app is noop_python else []),
            parsl_resource_specification=dict(SPEC),
            **kwargs,
        )
        for i in range(n)
    ]
    for future in futures:
        future.result()
    return time.perf_counter() - start


def cpu_seconds(pid):
    """(own, reaped children's) CPU seconds of a process; the warm server's
    "own" adds its live children's (the reused workers, which are not reaped
    while they wait for apps)."""
    if pid == "warm_workers":
        return workers_cpu_seconds()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (
        int(fields[13]) + int(fields[14])
    ) / tick


def workers_cpu_seconds():
    """(own, reaped children's) CPU seconds of the warm server's live children."""
    table = processes()
    servers = {pid for pid, (_ppid, argv) in table.items() if "--serve" in argv}
    own = children = 0.0
    for pid, (ppid, _argv) in table.items():
        if ppid in servers:
            try:
                mine, theirs = cpu_seconds(pid)
            except OSError:
                continue
            own, children = own + mine, children + theirs
    return own, children


def rhtex_processes(dfk):
    """The rhtex processes whose CPU time is counted: interchange, pool-manager
    (its children: each task's bash) and the warm server (its children: the
    forked apps)."""
    deployment = dfk.executors["rhtex"]._deployment
    found = {
        "interchange": deployment.interchange.pid,
        "pool_manager": deployment.managers[0].pid,
        "warm_workers": "warm_workers",
    }
    for pid, (_ppid, argv) in processes().items():
        if "--serve" in argv:
            found["warm_server"] = pid
    return found


def throughput(kind, tasks, nodes):
    import resource

    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        start = time.perf_counter()
        dfk = parsl.load(CONFIGS[kind](nodes, Path(tmp)))
        try:
            timed(noop_python, 2 * nodes)  # warm-up: the block is up, workers warm
            ready = time.perf_counter() - start
            watched = rhtex_processes(dfk) if kind.startswith("rhtex") else {}
            before = {name: cpu_seconds(pid) for name, pid in watched.items()}
            usage = resource.getrusage(resource.RUSAGE_SELF)
            python_s = timed(noop_python, tasks)
            submit_cpu = resource.getrusage(resource.RUSAGE_SELF)
            time.sleep(1.5)  # the warm server reaps its last children
            after = {name: cpu_seconds(pid) for name, pid in watched.items()}
            bash_s = timed(noop_bash, tasks)
        finally:
            dfk.cleanup()
            parsl.clear()
    result = {
        "startup_s": round(ready, 2),
        "python_s": round(python_s, 2),
        "python_tps": round(tasks / python_s, 1),
        "bash_s": round(bash_s, 2),
        "bash_tps": round(tasks / bash_s, 1),
    }
    if watched:
        # CPU milliseconds per python app, by process (and its reaped children)
        per_task = {
            "submit_side": (
                submit_cpu.ru_utime
                + submit_cpu.ru_stime
                - usage.ru_utime
                - usage.ru_stime
            )
        }
        for name in watched:
            per_task[name] = after[name][0] - before[name][0]
            per_task[name + "_children"] = after[name][1] - before[name][1]
        result["cpu_ms_per_python_app"] = {
            name: round(seconds / tasks * 1000, 2) for name, seconds in per_task.items()
        }
    return result


def processes():
    """pid -> (ppid, argv) for every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, [arg.decode(errors="replace") for arg in argv])
    return table


def tree(root, table):
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _argv) in table.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    return members


def memory_kib(pid, field):
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def lead_node_root(kind, dfk, table):
    if kind.startswith("rhtex"):
        return dfk.executors["rhtex"]._deployment.managers[0].pid
    pools = [
        pid
        for pid, (_p, argv) in table.items()
        if any("process_worker_pool" in a for a in argv)
    ]
    # the outermost: the shell that started the pool, the pool, its workers
    return max(pools, key=lambda pid: len(tree(pid, table)))


def memory(kind, sleepers):
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-mem-") as tmp:
        dfk = parsl.load(CONFIGS[kind](sleepers, Path(tmp)))
        try:
            timed(noop_python, 2)  # the block is up
            futures = [
                sleeper(parsl_resource_specification=dict(SPEC))
                for _ in range(sleepers)
            ]
            deadline = time.monotonic() + 120
            while True:
                table = processes()
                running = [
                    p
                    for p, (_pp, argv) in table.items()
                    if argv == ["sleep", SLEEP_SECONDS]
                ]
                if len(running) >= sleepers or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            time.sleep(1.0)  # let every process settle
            table = processes()
            root = lead_node_root(kind, dfk, table)
            members = tree(root, table)
            sleeps = {p for p in members if table[p][1] == ["sleep", SLEEP_SECONDS]}
            result = {
                "sleepers_running": len(sleeps),
                "processes": len(members),
                "pss_mib": round(sum(memory_kib(p, "Pss") for p in members) / 1024, 1),
                "rss_mib": round(sum(memory_kib(p, "Rss") for p in members) / 1024, 1),
                "pss_mib_without_sleeps": round(
                    sum(memory_kib(p, "Pss") for p in members - sleeps) / 1024, 1
                ),
            }
            for future in futures:
                future.result()
        finally:
            dfk.cleanup()
            parsl.clear()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--sleepers", type=int, default=64)
    parser.add_argument("--only", choices=sorted(CONFIGS))
    parser.add_argument(
        "--kinds",
        default="rhtex_fork,rhtex,mpiex",
        help="executors in the order run: rhtex (reused workers, the default), "
        "rhtex_fork (app_isolation='fork'), mpiex (Parsl's MPIExecutor)",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    kinds = [args.only] if args.only else args.kinds.split(",")
    report = {
        "parsl_version": parsl.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "tasks": args.tasks,
        "nodes": args.nodes,
        "sleepers": args.sleepers,
        "rhtex_bin_dir": os.environ.get("RHTEX_BIN_DIR"),
    }
    for kind in kinds:
        report[kind] = {"throughput": throughput(kind, args.tasks, args.nodes)}
        report[kind]["memory"] = memory(kind, args.sleepers)
        print(kind, json.dumps(report[kind]), flush=True)
    for name in (
        kind for kind in kinds if kind.startswith("rhtex") and "mpiex" in kinds
    ):
        r, m = report[name], report["mpiex"]
        report["ratios" if name == "rhtex" else f"ratios_{name}"] = {
            "python_tps": round(
                r["throughput"]["python_tps"] / m["throughput"]["python_tps"], 2
            ),
            "bash_tps": round(
                r["throughput"]["bash_tps"] / m["throughput"]["bash_tps"], 2
            ),
            "lead_node_pss": round(r["memory"]["pss_mib"] / m["memory"]["pss_mib"], 3),
        }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
