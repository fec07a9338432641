"""bench/peers.py's systems under test: rhtex (an interchange and a
pool-manager) and HyperQueue (a server and its workers), each started,
fed and stopped the same way."""

import json
import os

from peers_procs import BenchError, cpu_delta, cpu_of, log, read_text, wait_for

# ---------------------------------------------------------------- rhtex


class Rhtex:
    """An interchange and one pool-manager with synthetic nodes, CURVE on."""

    def __init__(self, procs, bin_dir, work, n_nodes, manager_flags=()):
        self.procs, self.bin_dir, self.work = procs, bin_dir, work
        self.keys = os.path.join(work, "keys")
        procs.run([self.exe("rhtex"), "keygen", self.keys], work, 30)
        ready_path = os.path.join(work, "interchange.out")
        self.interchange = procs.start(
            "interchange",
            [
                self.exe("interchange"),
                "--run-dir",
                os.path.join(work, "interchange"),
                "--client-listen",
                "tcp://127.0.0.1:0",
                "--manager-listen",
                "tcp://127.0.0.1:0",
                "--keys-dir",
                self.keys,
            ],
            work,
            ready_path,
            os.path.join(work, "interchange.log"),
        )
        ready = wait_for("the interchange's ready line", lambda: self._ready_line(ready_path), 30)
        self.client_url, manager_url = ready["client_url"], ready["manager_url"]
        nodes = ",".join(f"node{i}" for i in range(n_nodes))
        self.manager = procs.start(
            "pool-manager",
            [
                self.exe("pool-manager"),
                "--interchange",
                manager_url,
                "--run-dir",
                os.path.join(work, "manager"),
                "--block-id",
                "peers",
                "--keys-dir",
                self.keys,
                "--nodes",
                nodes,
                *manager_flags,
            ],
            work,
            os.path.join(work, "pool-manager.out"),
            os.path.join(work, "pool-manager.log"),
        )
        wait_for(
            f"a pool-manager with {n_nodes} nodes registered",
            lambda: self._registered(n_nodes),
            60,
            interval=0.1,
        )

    def exe(self, name):
        return os.path.join(self.bin_dir, name)

    def cli(self, *args):
        return [self.exe("rhtex"), "--interchange", self.client_url, "--keys-dir", self.keys, *args]

    def _ready_line(self, path):
        if self.interchange.poll() is not None:
            raise BenchError(
                f"the interchange exited ({self.interchange.returncode}); "
                f"see {self.interchange.log}"
            )
        text = read_text(path) or ""
        if "\n" not in text:
            return None
        return json.loads(text.split("\n", 1)[0])

    def _registered(self, n_nodes):
        if self.manager.poll() is not None:
            raise BenchError(
                f"the pool-manager exited ({self.manager.returncode}); see {self.manager.log}"
            )
        out = os.path.join(self.work, "status.json")
        result = self.procs.run(self.cli("--json", "status"), self.work, 30, out)
        if result["exit_code"] != 0:
            return False
        managers = json.loads(read_text(out))["managers"]
        return any(manager.get("n_nodes") == n_nodes for manager in managers)

    def cpu(self):
        return {
            "interchange": cpu_of([self.interchange.pid]),
            "manager": cpu_of([self.manager.pid]),
        }

    def stop(self):
        self.procs.note_descendants([self.interchange, self.manager])
        try:
            self.procs.run(self.cli("shutdown"), self.work, 30)
            self.procs.wait_exit(self.interchange, 15)
            self.procs.wait_exit(self.manager, 15)
        except BenchError as error:
            log(f"rhtex shutdown: {error}")
        self.procs.stop(self.manager)
        self.procs.stop(self.interchange)


def write_taskfile(path, n_tasks, num_nodes=None):
    line = {"command": "true"}
    if num_nodes:
        line["resources"] = {"num_nodes": num_nodes}
    with open(path, "w") as f:
        f.write((json.dumps(line) + "\n") * n_tasks)


def rhtex_run(procs, rhtex, taskfile, n_tasks, timeout):
    """`rhtex run TASKFILE` against running daemons: the client's wall time
    and CPU, and the daemons' CPU over it."""
    summary = os.path.join(rhtex.work, "summary.json")
    before = rhtex.cpu()
    client = procs.run(
        rhtex.cli("--json", "run", taskfile),
        rhtex.work,
        timeout,
        summary,
        os.path.join(rhtex.work, "run.log"),
    )
    after = rhtex.cpu()
    counts = {}
    try:
        # `--json run` writes a line per submitted and finished task, then
        # the summary on the last line.
        counts = json.loads((read_text(summary) or "").strip().rsplit("\n", 1)[-1]).get(
            "counts", {}
        )
    except (TypeError, ValueError) as error:
        log(f"cannot read the rhtex run summary: {error}")
    completed = counts.get("completed", 0)
    if client["exit_code"] != 0 or completed != n_tasks:
        raise BenchError(
            f"rhtex run: exit code {client['exit_code']}, {completed} of {n_tasks} "
            f"completed; see {rhtex.work}/run.log"
        )
    interchange = cpu_delta(before["interchange"], after["interchange"])
    manager = cpu_delta(before["manager"], after["manager"])
    return {
        "wall_s": client["wall_s"],
        "completed": completed,
        "cpu_s": {
            "scheduler": interchange["own"],
            "executor": manager["own"],
            "tasks": manager["reaped"],
            "client": client["cpu_s"],
        },
    }


# ---------------------------------------------------------------- HyperQueue


class HyperQueue:
    """A HyperQueue server and its workers, in a server directory of ours."""

    def __init__(self, procs, hq, work, workers):
        self.procs, self.hq, self.work = procs, hq, work
        self.server_dir = os.path.join(work, "server")
        self.server = procs.start(
            "hq server",
            [hq, "server", "start", "--server-dir", self.server_dir],
            work,
            os.path.join(work, "server.out"),
            os.path.join(work, "server.log"),
        )
        wait_for("the HyperQueue server", self._server_up, 30, interval=0.1)
        self.workers = []
        for index, flags in enumerate(workers):
            work_dir = os.path.join(work, f"worker{index}")
            self.workers.append(
                procs.start(
                    f"hq worker {index}",
                    [
                        hq,
                        "worker",
                        "start",
                        "--server-dir",
                        self.server_dir,
                        "--manager",
                        "none",
                        "--work-dir",
                        work_dir,
                        *flags,
                    ],
                    work,
                    os.path.join(work, f"worker{index}.out"),
                    os.path.join(work, f"worker{index}.log"),
                )
            )
        wait_for(
            f"{len(workers)} HyperQueue workers",
            lambda: self._n_workers() == len(workers),
            60,
            interval=0.1,
        )
        self.jobs = os.path.join(work, "jobs")
        os.makedirs(self.jobs, exist_ok=True)

    def cli(self, *args):
        return [self.hq, "--server-dir", self.server_dir, *args]

    def _server_up(self):
        if self.server.poll() is not None:
            raise BenchError(
                f"the HyperQueue server exited ({self.server.returncode}); see {self.server.log}"
            )
        return self.procs.run(self.cli("server", "info"), self.work, 30)["exit_code"] == 0

    def _n_workers(self):
        for worker in self.workers:
            if worker.poll() is not None:
                raise BenchError(f"{worker.name} exited ({worker.returncode}); see {worker.log}")
        out = os.path.join(self.work, "workers.json")
        result = self.procs.run(
            self.cli("--output-mode", "json", "worker", "list"), self.work, 30, out
        )
        if result["exit_code"] != 0:
            return -1
        try:
            return len(json.loads(read_text(out)))
        except ValueError:
            return -1

    def job_stats(self, job_id=None):
        """The task counts of a job (the last one by default), from
        `hq job list --all`."""
        out = os.path.join(self.work, "jobs.json")
        self.procs.run(
            self.cli("--output-mode", "json", "job", "list", "--all"), self.work, 60, out
        )
        jobs = json.loads(read_text(out))
        if not jobs:
            raise BenchError("HyperQueue lists no job")
        job = (
            jobs[-1]
            if job_id is None
            else next((job for job in jobs if job.get("id") == job_id), None)
        )
        if job is None:
            raise BenchError(f"HyperQueue lists no job {job_id}")
        return job["task_stats"]

    def cpu(self):
        workers = cpu_of([worker.pid for worker in self.workers])
        return {"server": cpu_of([self.server.pid]), "workers": workers}

    def stop(self):
        self.procs.note_descendants([self.server, *self.workers])
        try:
            self.procs.run(self.cli("server", "stop"), self.work, 30)
            self.procs.wait_exit(self.server, 15)
            for worker in self.workers:
                self.procs.wait_exit(worker, 15)
        except BenchError as error:
            log(f"hq server stop: {error}")
        for worker in self.workers:
            self.procs.stop(worker)
        self.procs.stop(self.server)


def hq_submit(procs, hq, args, n_tasks, timeout):
    """`hq submit ARGS --wait`: the client's wall time and CPU, the server's
    and workers' CPU over it; checks that every task finished."""
    before = hq.cpu()
    client = procs.run(
        hq.cli("submit", "--wait", *args),
        hq.jobs,
        timeout,
        os.path.join(hq.work, "submit.out"),
        os.path.join(hq.work, "submit.log"),
    )
    after = hq.cpu()
    if client["exit_code"] != 0:
        raise BenchError(f"hq submit: exit code {client['exit_code']}; see {hq.work}/submit.out")
    stats = hq.job_stats()
    if stats.get("finished") != n_tasks:
        raise BenchError(
            f"HyperQueue: {stats.get('finished')} of {n_tasks} tasks finished ({stats})"
        )
    server = cpu_delta(before["server"], after["server"])
    workers = cpu_delta(before["workers"], after["workers"])
    return {
        "wall_s": client["wall_s"],
        "cpu_s": {
            "scheduler": server["own"],
            "executor": workers["own"],
            "tasks": workers["reaped"],
            "client": client["cpu_s"],
        },
    }
