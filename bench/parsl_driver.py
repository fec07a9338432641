#!/usr/bin/env python3
"""The Parsl side of the rhtex comparisons (HighThroughputExecutor,
LocalProvider, one block on this machine, CURVE on as by default).

  parsl_driver.py throughput --tasks N --workers W
      N `true` bash apps submitted at once after a warm-up; prints one JSON
      object: startup_s (load to warm), run_s (submit to last result),
      cleanup_s, total_s.
  parsl_driver.py memory --workers 64 --sleep S
      64 `sleep S` bash apps; once all 64 run, sums the memory of the
      worker pool (process_worker_pool.py and its Python worker processes,
      not the apps' own processes) and prints it as JSON.

Needs Parsl (bench/scripts/parsl-venv.sh) with the venv's bin first on PATH.
"""
import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time

import parsl
from parsl import bash_app
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import SingleNodeLauncher
from parsl.providers import LocalProvider

# The /proc readers of the peers benchmark (this script's directory is on
# sys.path when it runs as a script).
from peers_procs import parents, read_text, tree


@bash_app
def run_command(command, stdout=None, stderr=None):
    return command


def make_config(workers, rundir):
    return Config(
        executors=[
            HighThroughputExecutor(
                label="htex_local",
                address="127.0.0.1",
                max_workers_per_node=workers,
                # Parsl caps workers at cores / cores_per_worker; make that
                # cap larger than `workers` on a 2-core machine.
                cores_per_worker=1.0 / 256,
                provider=LocalProvider(
                    launcher=SingleNodeLauncher(),
                    init_blocks=1,
                    min_blocks=1,
                    max_blocks=1,
                    nodes_per_block=1,
                ),
            )
        ],
        run_dir=rundir,
        strategy="none",
        usage_tracking=0,
    )


# ---------------------------------------------------------------- /proc


def cmdline(pid):
    text = read_text(f"/proc/{pid}/cmdline")
    return "" if text is None else text.replace("\0", " ")


def kib(pid, name, field):
    text = read_text(f"/proc/{pid}/{name}")
    for line in (text or "").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def descendants(root):
    """The live descendants of `root` (bench/peers.py's process tree)."""
    return tree(root)[1:]


def is_python(pid):
    try:
        return "python" in os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return False


def pool_root(rundir):
    """The process_worker_pool.py started for this run (its command line
    names this run's directory); not its forked children."""
    parent_of = parents()
    pools = [pid for pid in parent_of
             if "process_worker_pool" in cmdline(pid) and rundir in cmdline(pid)]
    roots = [pid for pid in pools if parent_of[pid] not in pools]
    return roots[0] if roots else None


def memory_of(pids):
    return {
        "n_processes": len(pids),
        "rss_mib": round(sum(kib(p, "status", "VmRSS") for p in pids) / 1024, 1),
        "pss_mib": round(sum(kib(p, "smaps_rollup", "Pss") for p in pids) / 1024, 1),
    }


# ---------------------------------------------------------------- benchmarks


def throughput(args, rundir):
    t_load = time.perf_counter()
    parsl.load(make_config(args.workers, rundir))
    try:
        warm = [run_command("true") for _ in range(2 * args.workers)]
        assert all(f.result() == 0 for f in warm)
        t_ready = time.perf_counter()
        futures = [run_command("true") for _ in range(args.tasks)]
        codes = [f.result() for f in futures]
        t_done = time.perf_counter()
        n_failed = sum(1 for code in codes if code != 0)
    finally:
        t_cleanup = time.perf_counter()
        parsl.dfk().cleanup()
        parsl.clear()
        t_end = time.perf_counter()
    return {
        "system": "parsl",
        "parsl_version": parsl.__version__,
        "workers": args.workers,
        "tasks": args.tasks,
        "failed": n_failed,
        "startup_s": round(t_ready - t_load, 3),
        "run_s": round(t_done - t_ready, 3),
        "cleanup_s": round(t_end - t_cleanup, 3),
        "total_s": round(t_end - t_load, 3),
        "tasks_per_s": round(args.tasks / (t_done - t_ready), 1),
    }


def memory(args, rundir):
    parsl.load(make_config(args.workers, rundir))
    try:
        futures = [run_command(f"sleep {args.sleep}") for _ in range(args.workers)]
        deadline = time.time() + args.timeout
        while True:
            root = pool_root(rundir)
            tree = descendants(root) if root else []
            workers = [p for p in tree if is_python(p)]
            apps = [p for p in tree if not is_python(p)]
            sleeping = [p for p in apps if read_text(f"/proc/{p}/comm") == "sleep\n"]
            if len(sleeping) >= args.workers:
                break
            if time.time() > deadline:
                sys.exit(f"parsl_driver: only {len(sleeping)} of {args.workers} sleep tasks "
                         f"running after {args.timeout} s (pool {root})")
            time.sleep(0.2)
        # Let the pool settle (its threads and buffers) before reading.
        time.sleep(2)
        tree = descendants(root)
        workers = [p for p in tree if is_python(p)]
        apps = [p for p in tree if not is_python(p)]
        pool = memory_of([root] + workers)
        result = {
            "system": "parsl",
            "parsl_version": parsl.__version__,
            "workers": args.workers,
            "running_tasks": len(sleeping),
            "pool": pool,
            "pool_process_only": memory_of([root]),
            "task_processes": memory_of(apps),
            "note": "pool = process_worker_pool.py and its Python worker processes; "
                    "task_processes = the apps' shells and sleeps (not counted in pool)",
        }
        # End the sleeps (processes this run started) so that cleanup is quick.
        for pid in apps:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for future in futures:
            try:
                future.result(timeout=60)
            except Exception:
                pass
    finally:
        parsl.dfk().cleanup()
        parsl.clear()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--tasks", type=int, default=10000)
    t.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    m = sub.add_parser("memory")
    m.add_argument("--workers", type=int, default=64)
    m.add_argument("--sleep", type=int, default=120)
    m.add_argument("--timeout", type=int, default=120)
    args = parser.parse_args()
    rundir = tempfile.mkdtemp(prefix="rhtex-bench-parsl-")
    try:
        if args.what == "throughput":
            result = throughput(args, rundir)
        else:
            result = memory(args, rundir)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
