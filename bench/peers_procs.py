"""bench/peers.py's processes: started in their own process groups and
stopped by them, bounded waits, and CPU and memory read from /proc."""

import os
import signal
import subprocess
import sys
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")


def log(message):
    print(f"peers: {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes


class Processes:
    """Every process started here, each the leader of its own group."""

    def __init__(self):
        self.live = {}

    def start(self, name, argv, cwd, stdout_path, stderr_path, env=None):
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        process.name = name
        process.log = stderr_path
        self.live[process.pid] = process
        return process

    def stop(self, process, grace=10.0):
        """SIGTERM to the process's group, then SIGKILL after `grace` s;
        then SIGKILL to any of its descendants that left the group (a
        helper in a group of its own) and outlived it."""
        self.live.pop(process.pid, None)
        descendants = set(getattr(process, "descendants", ()))
        descendants.update(self.descendants_of(process))
        if process.returncode is None and process.poll() is None:
            signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"{process.name} (pid {process.pid}) ignored SIGTERM for {grace} s: SIGKILL")
        # Whatever is left of the group (a task, a helper).
        signal_group(process.pid, signal.SIGKILL)
        if process.returncode is None:
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"{process.name} (pid {process.pid}) still there after SIGKILL")
        for pid, started in descendants:
            if started is not None and start_time(pid) == started:
                log(f"{process.name}: descendant {pid} outlived it: SIGKILL")
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    @staticmethod
    def descendants_of(process):
        """(pid, start time) of the process's live descendants."""
        if process.returncode is not None or process.poll() is not None:
            return set()
        return {(pid, start_time(pid)) for pid in tree(process.pid)[1:]}

    def note_descendants(self, processes):
        """Remembers the processes' descendants before they are asked to
        exit, for `stop` to check on afterwards."""
        for process in processes:
            process.descendants = self.descendants_of(process)

    def wait_exit(self, process, timeout):
        """True if the process exited by itself within `timeout` s."""
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        self.live.pop(process.pid, None)
        return True

    def stop_all(self):
        for process in list(self.live.values()):
            self.stop(process, grace=5.0)

    def run(
        self,
        argv,
        cwd,
        timeout,
        stdout_path=os.devnull,
        stderr_path=os.devnull,
        env=None,
        failure=None,
    ):
        """Runs a command to its end (its group killed after `timeout` s);
        returns wall seconds, CPU seconds (its own and its reaped
        children's, from wait4) and the exit code. With `failure`, a
        non-zero exit code raises BenchError(failure)."""
        timed_out = threading.Event()

        def expire(pid):
            timed_out.set()
            signal_group(pid, signal.SIGKILL)

        start = time.perf_counter()
        process = self.start(os.path.basename(argv[0]), argv, cwd, stdout_path, stderr_path, env)
        timer = threading.Timer(timeout, expire, (process.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        self.live.pop(process.pid, None)
        if timed_out.is_set():
            raise BenchError(
                f"{' '.join(argv[:4])}... took more than {timeout} s (killed); see {stderr_path}"
            )
        if failure is not None and process.returncode != 0:
            raise BenchError(failure)
        return {
            "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "exit_code": process.returncode,
        }


def signal_group(pgid, signum):
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def wait_for(what, check, timeout, interval=0.05):
    """Calls `check` until it returns something true; at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {timeout} s")
        time.sleep(interval)


# ---------------------------------------------------------------- /proc


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def stat_fields(pid):
    text = read_text(f"/proc/{pid}/stat")
    if text is None:
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid):
    """When the process started (clock ticks after boot), to tell it from a
    later process with the same pid; None if it is gone."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def parents():
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = stat_fields(name)
            if fields:
                found[int(name)] = int(fields[1])
    return found


def tree(root):
    """`root` and its live descendants."""
    by_parent = {}
    for pid, parent in parents().items():
        by_parent.setdefault(parent, []).append(pid)
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        found.append(pid)
        frontier.extend(by_parent.get(pid, []))
    return found


def cpu_of(roots):
    """CPU seconds of the processes `roots` and their live descendants:
    `own` (utime+stime) and `reaped` (cutime+cstime: children they waited
    for, such as finished tasks)."""
    own = reaped = 0.0
    for root in roots:
        for pid in tree(root):
            fields = stat_fields(pid)
            if fields:
                own += (int(fields[11]) + int(fields[12])) / TICKS
                reaped += (int(fields[13]) + int(fields[14])) / TICKS
    return {"own": own, "reaped": reaped}


def cpu_delta(before, after):
    return {key: after[key] - before[key] for key in before}


def memory_kib(pid):
    text = read_text(f"/proc/{pid}/status") or ""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def loadavg():
    return (read_text("/proc/loadavg") or "").strip()
