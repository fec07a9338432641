#!/usr/bin/env python3
"""rhtex side by side with its peers on this machine, in one run
(bench/compare_peers.sh drives it; Python 3 standard library only).

  1. End to end: N `true` tasks on 64 slots. The floor (no scheduler:
     `seq N | xargs -P 64 -n1 bash -c true _`), rhtex (an interchange and a
     pool-manager with 64 synthetic nodes, started here as separate
     processes, then `rhtex run TASKFILE --interchange URL`), HyperQueue (a
     server and one worker with `--cpus 64`, then
     `hq submit --array 1-N --wait -- true`, and the same with
     `-- bash -c true`, since every rhtex task is a `/bin/bash -c`), and
     Parsl HTEX (`--parsl-python`, bench/parsl_driver.py). Wall time,
     tasks/s, ratios against the floor and HQ, and the CPU each component
     used per task, from /proc/PID/stat (utime+stime of the daemon and its
     live helpers; cutime+cstime for the task processes it reaped) and from
     wait4() for the clients.
  2. Latency: `rhtex submit --wait -- true` and `hq submit --wait -- true`,
     interleaved, against daemons already running; p50 and p90 of the
     command's wall time.
  3. 4-node tasks: M tasks of 4 nodes each, `true`, on 16 nodes (rhtex: one
     pool-manager with 16 synthetic nodes; HQ: 16 workers in the default
     group, `hq submit --nodes 4 --array 1-M --wait -- true`).
  4. Queued memory: Q tasks queued with no manager or worker. rhtex:
     `rhtex-bench scale --queued Q --managers 0` (benchmark 4's queueing
     phase, CURVE on); HQ: a server holding `hq submit --array 1-Q -- true`.
     VmRSS and VmHWM, and bytes per task above the idle daemon.

Every process started here runs in its own process group and is stopped
by it (SIGTERM, a bounded wait, SIGKILL) on every exit path; every wait is
bounded. Nothing here asserts a time: these are measurements.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from peers_procs import BenchError, Processes, loadavg, log, memory_kib, read_text
from peers_systems import HyperQueue, Rhtex, hq_submit, rhtex_run, write_taskfile

SECTIONS = ("e2e", "latency", "multinode", "memory")


# ---------------------------------------------------------------- the sections


def median_of(rows, key, sub=None):
    values = [row[key][sub] if sub else row[key] for row in rows]
    return statistics.median(values)


def summarise(system, rows, n_tasks, notes):
    """Medians over rounds, with CPU in microseconds per task."""
    wall = median_of(rows, "wall_s")
    summary = {
        "system": system,
        "notes": notes,
        "rounds": len(rows),
        "wall_s": round(wall, 3),
        "tasks_per_s": round(n_tasks / wall, 1),
        "wall_s_each": [round(row["wall_s"], 3) for row in rows],
    }
    if rows and "cpu_s" in rows[0]:
        summary["cpu_us_per_task"] = {
            part: round(1e6 * median_of(rows, "cpu_s", part) / n_tasks, 1)
            for part in rows[0]["cpu_s"]
        }
    for key in ("startup_s", "total_s"):
        if rows and key in rows[0]:
            summary[key] = round(median_of(rows, key), 3)
    return summary


def section_e2e(args, procs, work):
    n, slots = args.tasks, args.slots
    taskfile = os.path.join(work, "tasks.jsonl")
    write_taskfile(taskfile, n)
    timeout = args.timeout
    rows = {}
    for round_index in range(args.rounds):
        tag = f"round {round_index + 1}/{args.rounds}"
        floors = (
            ("floor", f"seq {n} | xargs -P {slots} -n1 bash -c true _"),
            (
                "floor-batched",
                f"seq {n} | xargs -P {slots} -n {-(-n // slots)} "
                "sh -c 'for i in \"$@\"; do bash -c true; done' _",
            ),
        )
        for system, pipeline in floors:
            log(f"e2e {tag}: {system}: {pipeline}")
            floor = procs.run(
                ["sh", "-c", pipeline], work, timeout, stderr_path=os.path.join(work, "floor.log")
            )
            if floor["exit_code"] != 0:
                raise BenchError(f"{system} exited with {floor['exit_code']}")
            rows.setdefault(system, []).append(
                {"wall_s": floor["wall_s"], "cpu_s": {"tasks": floor["cpu_s"]}}
            )

        log(f"e2e {tag}: rhtex, {slots} synthetic nodes")
        rhtex_dir = tempfile.mkdtemp(prefix="rhtex-", dir=work)
        rhtex = Rhtex(procs, args.bin_dir, rhtex_dir, slots, args.manager_flag)
        try:
            rows.setdefault("rhtex", []).append(rhtex_run(procs, rhtex, taskfile, n, timeout))
        finally:
            rhtex.stop()
            shutil.rmtree(rhtex_dir, ignore_errors=True)

        if args.hq:
            for system, command in (("hq", ["true"]), ("hq-bash", ["bash", "-c", "true"])):
                log(
                    f"e2e {tag}: HyperQueue, one worker with --cpus {slots}, -- {' '.join(command)}"
                )
                hq_dir = tempfile.mkdtemp(prefix="hq-", dir=work)
                hq = HyperQueue(procs, args.hq, hq_dir, [["--cpus", str(slots)]])
                try:
                    row = hq_submit(procs, hq, ["--array", f"1-{n}", "--", *command], n, timeout)
                    rows.setdefault(system, []).append(row)
                finally:
                    hq.stop()
                    shutil.rmtree(hq_dir, ignore_errors=True)

        if args.parsl_python:
            log(f"e2e {tag}: Parsl HTEX, {args.parsl_workers} workers")
            out = os.path.join(work, "parsl.out")
            env = dict(os.environ)
            env["PATH"] = os.path.dirname(args.parsl_python) + os.pathsep + env.get("PATH", "")
            parsl_run = procs.run(
                [
                    args.parsl_python,
                    os.path.join(args.repo, "bench", "parsl_driver.py"),
                    "throughput",
                    "--tasks",
                    str(n),
                    "--workers",
                    str(args.parsl_workers),
                ],
                work,
                timeout + 300,
                out,
                os.path.join(work, "parsl.log"),
                env=env,
            )
            lines = [line for line in (read_text(out) or "").splitlines() if line.strip()]
            if parsl_run["exit_code"] != 0 or not lines:
                raise BenchError(f"the Parsl run failed; see {work}/parsl.log")
            result = json.loads(lines[-1])
            if result["failed"]:
                raise BenchError(f"Parsl: {result['failed']} tasks failed")
            rows.setdefault("parsl", []).append(
                {
                    "wall_s": result["run_s"],
                    "startup_s": result["startup_s"],
                    "total_s": result["total_s"],
                }
            )

    notes = {
        "floor": f"seq N | xargs -P {slots} -n1 bash -c true _: one process (xargs) spawns "
        "every task, as a pool-manager or an HQ worker does (CPU: all of it)",
        "floor-batched": f"seq N | xargs -P {slots} -n N/{slots} sh -c 'for i; do bash -c true; "
        f"done': {slots} shells spawn (for reference; ratios are against the "
        "floor above)",
        "rhtex": f"rhtex run --interchange, 1 pool-manager x {slots} synthetic nodes, "
        "each task /bin/bash -c true",
        "hq": f"hq submit --array 1-N --wait -- true, 1 worker --cpus {slots} "
        "(HQ execs true itself, no shell)",
        "hq-bash": f"hq submit --array 1-N --wait -- bash -c true, 1 worker --cpus {slots}",
        "parsl": f"parsl_driver.py throughput, HTEX {args.parsl_workers} workers, "
        "submit to last result after warm-up (startup apart)",
    }
    summaries = {
        system: summarise(system, system_rows, n, notes[system])
        for system, system_rows in rows.items()
    }
    floor_tps = summaries["floor"]["tasks_per_s"]
    for summary in summaries.values():
        summary["vs_floor"] = round(summary["tasks_per_s"] / floor_tps, 2)
        for base in ("hq", "hq-bash"):
            if base in summaries:
                summary[f"vs_{base}"] = round(
                    summary["tasks_per_s"] / summaries[base]["tasks_per_s"], 2
                )
    return {"tasks": n, "slots": slots, "rounds": args.rounds, "systems": summaries}


def percentile(sorted_values, q):
    """Nearest rank, as bench/src/report.rs."""
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def latency_of(values_ms):
    values = sorted(values_ms)
    return {
        "runs": len(values),
        "p50_ms": round(percentile(values, 0.5), 2),
        "p90_ms": round(percentile(values, 0.9), 2),
        "min_ms": round(values[0], 2),
        "max_ms": round(values[-1], 2),
        "samples_ms": [round(value, 2) for value in values_ms],
    }


def section_latency(args, procs, work):
    """`submit --wait -- true`, interleaved: rhtex as configured, rhtex with
    `--no-cgroups` (HyperQueue puts no task in a cgroup; a task entering
    its cgroup by writing `cgroup.procs` waits for the kernel's RCU grace
    period when such writes are rare, see docs/PERFORMANCE.md section 7),
    and HyperQueue."""
    systems = {"rhtex": list(args.manager_flag)}
    if "--no-cgroups" not in args.manager_flag:
        systems["rhtex_no_cgroups"] = [*args.manager_flag, "--no-cgroups"]
    daemons = {}
    hq = None
    samples = {system: [] for system in (*systems, "hq")}
    try:
        for system, flags in systems.items():
            rhtex_dir = tempfile.mkdtemp(prefix=f"{system}-", dir=work)
            daemons[system] = Rhtex(procs, args.bin_dir, rhtex_dir, args.slots, flags)
        if args.hq:
            hq_dir = tempfile.mkdtemp(prefix="hq-", dir=work)
            hq = HyperQueue(procs, args.hq, hq_dir, [["--cpus", str(args.slots)]])
        log(
            f"latency: {args.latency_runs} x submit --wait -- true each (after 3 warm-up runs), "
            f"interleaved: {', '.join(daemons)}{', hq' if hq else ''}"
        )
        for index in range(3 + args.latency_runs):
            runs = [
                (system, rhtex.cli("submit", "--wait", "--", "true"), rhtex.work)
                for system, rhtex in daemons.items()
            ]
            if hq:
                runs.append(("hq", hq.cli("submit", "--wait", "--", "true"), hq.jobs))
            for system, argv, cwd in runs:
                result = procs.run(argv, cwd, 60, stderr_path=os.path.join(work, "latency.log"))
                if result["exit_code"] != 0:
                    raise BenchError(
                        f"{system} submit --wait: exit code {result['exit_code']}; "
                        f"see {work}/latency.log"
                    )
                if index >= 3:
                    samples[system].append(1e3 * result["wall_s"])
    finally:
        if hq:
            hq.stop()
        for rhtex in daemons.values():
            rhtex.stop()
    report = {
        "command": "submit --wait -- true (the CLI's whole wall time: start, connect, "
        "submit, result, exit)",
    }
    for system in daemons:
        report[system] = latency_of(samples[system])
    if hq:
        report["hq"] = latency_of(samples["hq"])
        report["hq_p50_over_rhtex_p50"] = round(
            report["hq"]["p50_ms"] / report["rhtex"]["p50_ms"], 2
        )
    return report


def section_multinode(args, procs, work):
    m, n_nodes = args.multinode_tasks, args.multinode_nodes
    taskfile = os.path.join(work, "tasks-4.jsonl")
    write_taskfile(taskfile, m, num_nodes=4)
    rows = {}
    log(f"multinode: rhtex, {m} tasks x 4 nodes on one pool-manager with {n_nodes} nodes")
    rhtex_dir = tempfile.mkdtemp(prefix="rhtex-", dir=work)
    rhtex = Rhtex(procs, args.bin_dir, rhtex_dir, n_nodes, args.manager_flag)
    try:
        rows["rhtex"] = [rhtex_run(procs, rhtex, taskfile, m, args.timeout)]
    finally:
        rhtex.stop()
    if args.hq:
        log(f"multinode: HyperQueue, {m} tasks --nodes 4 on {n_nodes} workers")
        hq_dir = tempfile.mkdtemp(prefix="hq-", dir=work)
        workers = [["--cpus", "1", "--hostname", f"node{i}"] for i in range(n_nodes)]
        hq = HyperQueue(procs, args.hq, hq_dir, workers)
        try:
            rows["hq"] = [
                hq_submit(
                    procs, hq, ["--nodes", "4", "--array", f"1-{m}", "--", "true"], m, args.timeout
                )
            ]
        finally:
            hq.stop()
    notes = {
        "rhtex": f"rhtex run --interchange, resources num_nodes 4, 1 pool-manager x "
        f"{n_nodes} synthetic nodes",
        "hq": f"hq submit --nodes 4 --array 1-M --wait -- true, {n_nodes} workers "
        "(--cpus 1 --hostname nodeI) in the default group",
    }
    summaries = {
        system: summarise(system, system_rows, m, notes[system])
        for system, system_rows in rows.items()
    }
    report = {"tasks": m, "nodes_per_task": 4, "nodes": n_nodes, "systems": summaries}
    if "hq" in summaries:
        report["rhtex_over_hq"] = round(
            summaries["rhtex"]["tasks_per_s"] / summaries["hq"]["tasks_per_s"], 2
        )
    return report


def section_memory(args, procs, work):
    q = args.queued
    log(f"memory: rhtex-bench scale --queued {q} --managers 0")
    out_dir = tempfile.mkdtemp(prefix="scale-", dir=work)
    scale = [args.bench_exe, "scale", "--bin-dir", args.bin_dir, "--out", out_dir]
    procs.run(
        scale + ["--queued", str(q), "--managers", "0"],
        work,
        args.timeout,
        os.path.join(work, "scale.out"),
        os.path.join(work, "scale.log"),
        failure=f"rhtex-bench scale failed; see {work}/scale.log",
    )
    queue = json.loads(read_text(os.path.join(out_dir, "scale.json")))["queue"]
    report = {
        "tasks": q,
        "rhtex": {
            "how": "rhtex-bench scale --managers 0: tasks submitted in batches of 10,000 by one "
            "client, no manager",
            "rss_before_mib": queue["rss_before_mib"],
            "rss_mib": queue["rss_mib"],
            "hwm_mib": queue["peak_rss_mib"],
            "bytes_per_task": queue["bytes_per_task"],
            "queue_s": queue["seconds"],
        },
    }
    if args.hq:
        log(f"memory: HyperQueue server with an array job of {q}, no worker")
        hq_dir = tempfile.mkdtemp(prefix="hq-", dir=work)
        hq = HyperQueue(procs, args.hq, hq_dir, [])
        try:
            before = memory_kib(hq.server.pid)
            submit = procs.run(
                hq.cli("--output-mode", "json", "submit", "--array", f"1-{q}", "--", "true"),
                hq.jobs,
                args.timeout,
                os.path.join(hq_dir, "submit.out"),
                os.path.join(hq_dir, "submit.log"),
                failure=f"hq submit failed; see {hq_dir}/submit.log",
            )
            job_id = json.loads(read_text(os.path.join(hq_dir, "submit.out")))["id"]
            stats = hq.job_stats(job_id)
            waiting = stats.get("waiting")
            if waiting != q:
                raise BenchError(
                    f"HyperQueue reports {waiting} waiting tasks, expected {q} ({stats})"
                )
            after = memory_kib(hq.server.pid)
        finally:
            hq.stop()
        report["hq"] = {
            "how": f"hq submit --array 1-{q} -- true, no worker",
            "rss_before_mib": round(before["VmRSS"] / 1024, 1),
            "rss_mib": round(after["VmRSS"] / 1024, 1),
            "hwm_mib": round(after["VmHWM"] / 1024, 1),
            "bytes_per_task": round(1024 * (after["VmRSS"] - before["VmRSS"]) / q),
            "submit_s": round(submit["wall_s"], 3),
        }
        report["rhtex_rss_over_hq"] = round(report["rhtex"]["rss_mib"] / report["hq"]["rss_mib"], 2)
    return report


# ---------------------------------------------------------------- output


def table(header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = [
        "  ".join(str(cell).rjust(width) for cell, width in zip(line, widths))
        for line in [header, *rows]
    ]
    return "\n".join(lines)


def fmt(value, digits=1):
    return "—" if value is None else f"{value:,.{digits}f}"


#: The CPU columns of a systems table: "cpu:KEY" is KEY of cpu_us_per_task.
CPU_COLUMNS = [
    ("sched µs/task", "cpu:scheduler", 1),
    ("executor µs", "cpu:executor", 1),
    ("client µs", "cpu:client", 1),
]


def systems_table(systems, columns):
    """A table with a row per system of `systems` (name -> summary) and a
    column per (header, key, digits) of `columns`."""

    def value(summary, key):
        if key.startswith("cpu:"):
            return summary.get("cpu_us_per_task", {}).get(key[4:])
        return summary.get(key)

    rows = [
        [system] + [fmt(value(summary, key), digits) for _, key, digits in columns]
        for system, summary in systems.items()
    ]
    return table(["system"] + [header for header, _, _ in columns], rows)


def print_report(report):
    print(
        f"Peers, {report['machine']['n_cpus']} CPUs, load average at start "
        f"{report['loadavg_at_start']}, at end {report['loadavg_at_end']}"
    )
    e2e = report.get("e2e")
    if e2e:
        print(
            f"\n1. End to end: {e2e['tasks']:,} `true` tasks on {e2e['slots']} slots, "
            f"median of {e2e['rounds']} round(s)"
        )
        columns = [
            ("wall s", "wall_s", 2),
            ("tasks/s", "tasks_per_s", 0),
            ("vs floor", "vs_floor", 2),
            ("vs HQ", "vs_hq", 2),
            ("vs HQ bash", "vs_hq-bash", 2),
            *CPU_COLUMNS,
            ("tasks µs", "cpu:tasks", 1),
        ]
        print(systems_table(e2e["systems"], columns))
        print(
            "(CPU per task: sched = interchange / hq server; executor = pool-manager and its "
            "helpers / hq worker(s), own time; tasks = the task processes they reaped; the "
            "floor's is all of it)"
        )
        for system, summary in e2e["systems"].items():
            print(
                f"  {system}: {summary['notes']}; each round {summary['wall_s_each']} s"
                + (f"; startup {summary['startup_s']} s" if "startup_s" in summary else "")
            )
    latency = report.get("latency")
    if latency:
        print(f"\n2. Latency: {latency['command']}")
        rows = [
            [
                system,
                latency[system]["runs"],
                fmt(latency[system]["p50_ms"]),
                fmt(latency[system]["p90_ms"]),
                fmt(latency[system]["min_ms"]),
                fmt(latency[system]["max_ms"]),
            ]
            for system in ("rhtex", "rhtex_no_cgroups", "hq")
            if system in latency
        ]
        print(table(["system", "runs", "p50 ms", "p90 ms", "min ms", "max ms"], rows))
    multinode = report.get("multinode")
    if multinode:
        print(f"\n3. {multinode['tasks']:,} tasks of 4 nodes on {multinode['nodes']} nodes")
        columns = [("wall s", "wall_s", 2), ("tasks/s", "tasks_per_s", 0), *CPU_COLUMNS]
        print(systems_table(multinode["systems"], columns))
        if "rhtex_over_hq" in multinode:
            print(f"rhtex / HQ: {multinode['rhtex_over_hq']}x")
    memory = report.get("memory")
    if memory:
        print(f"\n4. {memory['tasks']:,} queued tasks, no manager or worker")
        rows = [
            [
                system,
                fmt(memory[system]["rss_before_mib"]),
                fmt(memory[system]["rss_mib"]),
                fmt(memory[system]["hwm_mib"]),
                fmt(memory[system]["bytes_per_task"], 0),
            ]
            for system in ("rhtex", "hq")
            if system in memory
        ]
        print(table(["system", "idle RSS MiB", "RSS MiB", "peak MiB", "bytes/task"], rows))
    if not report["hq_measured"]:
        print("\nHyperQueue: not measured (pass --hq PATH)")
    if not report["parsl_measured"]:
        print("Parsl: not measured (pass --parsl)")


# ---------------------------------------------------------------- main


def machine():
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in (read_text("/proc/cpuinfo") or "").splitlines()
            if line.startswith("model name")
        ),
        "",
    )
    return {"n_cpus": os.cpu_count(), "cpu_model": cpu, "kernel": platform.release()}


def version_of(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def parse_args():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bin-dir",
        default=os.path.join(repo, "target", "release"),
        help="where rhtex, interchange, pool-manager are",
    )
    parser.add_argument("--bench-exe", default=None, help="rhtex-bench (default: in --bin-dir)")
    parser.add_argument(
        "--hq",
        default=os.environ.get("RHTEX_BENCH_HQ") or None,
        help="the hq binary (default $RHTEX_BENCH_HQ); without it HQ is not measured",
    )
    parser.add_argument(
        "--parsl-python",
        default=None,
        help="python of a venv with Parsl; without it Parsl is not measured",
    )
    parser.add_argument("--parsl-workers", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=10_000, help="end to end: tasks (10,000)")
    parser.add_argument(
        "--slots",
        type=int,
        default=64,
        help="end to end: synthetic nodes / HQ cpus / floor parallelism (64)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="end to end: rounds, interleaved (1); medians are reported",
    )
    parser.add_argument(
        "--manager-flag",
        action="append",
        default=[],
        help="an extra flag for every pool-manager (repeatable; e.g. --manager-flag=--no-cgroups)",
    )
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--multinode-tasks", type=int, default=1000)
    parser.add_argument("--multinode-nodes", type=int, default=16)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections ({','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds any one measured command may take (600)"
    )
    parser.add_argument(
        "--out",
        default=os.path.join(
            os.environ.get("RHTEX_BENCH_OUT") or os.path.join(repo, "bench", "results"),
            "peers.json",
        ),
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    args.repo = repo
    args.bin_dir = os.path.abspath(args.bin_dir)
    args.bench_exe = args.bench_exe or os.path.join(args.bin_dir, "rhtex-bench")
    args.only = [name for name in args.only.split(",") if name]
    for name in args.only:
        if name not in SECTIONS:
            parser.error(f"unknown section {name}")
    for name in ("rhtex", "interchange", "pool-manager"):
        if not os.access(os.path.join(args.bin_dir, name), os.X_OK):
            parser.error(f"{args.bin_dir}/{name} missing: cargo build --release")
    if args.hq:
        args.hq = os.path.abspath(args.hq)
        if not os.access(args.hq, os.X_OK):
            parser.error(f"--hq {args.hq}: not an executable")
    return args


def main():
    args = parse_args()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, _frame: sys.exit(128 + signum))
    report = {
        "benchmark": "peers",
        "machine": machine(),
        "git_commit": os.environ.get("RHTEX_BENCH_COMMIT", ""),
        "loadavg_at_start": loadavg(),
        "pool_manager_extra_flags": args.manager_flag,
        "hq_measured": bool(args.hq),
        "parsl_measured": bool(args.parsl_python),
        "hq_version": version_of([args.hq, "--version"]) if args.hq else None,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not args.hq:
        log("HyperQueue: not measured (pass --hq PATH)")
    procs = Processes()
    work = tempfile.mkdtemp(prefix="rhtex-bench-peers-")
    sections = {
        "e2e": section_e2e,
        "latency": section_latency,
        "multinode": section_multinode,
        "memory": section_memory,
    }
    try:
        for name in args.only:
            report[name] = sections[name](args, procs, work)
            report[f"loadavg_after_{name}"] = loadavg()
    except BenchError as error:
        log(f"error: {error}")
        args.keep = True
        return 1
    finally:
        procs.stop_all()
        if args.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["loadavg_at_end"] = loadavg()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print_report(report)
    log(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
