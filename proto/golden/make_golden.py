#!/usr/bin/env python3
"""Writes the golden messages of the rhtex wire protocol.

Each message below is written with the `msgpack` package from PyPI
(`pip install msgpack`) into one `.msgpack` file in this directory. The
Rust test `crates/protocol/tests/golden.rs` decodes every file, compares it
with the value it expects and re-encodes it: for the canonical files
(every name except `lenient.*`) the re-encoding must be byte-identical,
which shows that a Python peer can produce exactly what rhtex reads and
writes.

Canonical encoding, as rhtex writes it:
- every message is a map; dict keys in the order of the Rust struct fields,
  with the tag (`type`, `name` or `kind`) first;
- maps that are Rust `BTreeMap`s (`env`, `versions`, `resources` as sent)
  have their keys sorted;
- integers in their smallest msgpack encoding (what msgpack-python does);
- floats as float64 (msgpack-python's default);
- optional values that are not set are written as nil;
- bytes (`stdout_tail`, `stderr_tail`, `input`, `output`) as msgpack bin
  (`use_bin_type=True`).

The `lenient.*` files show what rhtex also accepts, as a minimal Python
client might send it: optional fields left out, unknown fields added, keys
in another order, ids as 16 raw bytes, an integer where a float is expected.
They are checked by decoding only.

Usage:
    python3 proto/golden/make_golden.py          # (re)write the files
    python3 proto/golden/make_golden.py --check  # fail if a file differs
"""

import sys
import uuid
from pathlib import Path

import msgpack

PROTOCOL_VERSION = 4
RHTEX_VERSION = "0.1.0"

# Fixed ids, so that the files never change. The Rust test builds the same
# ids with `TaskId::from_u128(...)` / `ManagerId::from_u128(...)`.
TASK_1 = str(uuid.UUID(int=0x6F1C2F5E_0C2A_4B8E_9D3A_1A2B3C4D5E01))
TASK_2 = str(uuid.UUID(int=0x6F1C2F5E_0C2A_4B8E_9D3A_1A2B3C4D5E02))
TASK_3 = str(uuid.UUID(int=0x6F1C2F5E_0C2A_4B8E_9D3A_1A2B3C4D5E03))
TASK_4 = str(uuid.UUID(int=0x6F1C2F5E_0C2A_4B8E_9D3A_1A2B3C4D5E04))
MANAGER = str(uuid.UUID(int=0x0B1D5C3A_7E4F_4A21_8C6D_9E0F1A2B3C4D))

REGISTERED_AT = 1_700_000_000.25
LAST_HEARTBEAT = 1_700_000_090.5
START_TIME = 1_700_000_100.125
END_TIME = 1_700_000_163.75
SUBMITTED_AT = 1_699_999_940.5

# Task payloads: bytes that are not UTF-8, as a pickled Parsl app would be.
INPUT = b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x08simulate\x94."
OUTPUT = b"\x80\x04K*."  # pickle.dumps(42)
MIB_16 = 16 * 1024 * 1024


def ordered_map(pairs):
    """A dict with keys sorted, as Rust's BTreeMap writes them."""
    return dict(sorted(pairs.items()))


# ---------------------------------------------------------------------------
# Shared structs
# ---------------------------------------------------------------------------

def command(request_id, name, **arguments):
    """A `command` message from a client: `name` and its arguments."""
    return {
        "type": "command",
        "request_id": request_id,
        "command": {"name": name, **arguments},
    }


def task_submission_mpi():
    return {
        "task_id": TASK_1,
        "command": "$PARSL_MPI_PREFIX ./simulate --steps 100",
        "resources": ordered_map(
            {
                "num_nodes": 2,
                "num_ranks": 7,
                "launcher_options": "--bind-to core",
                "priority": -3,
                # an integer number of seconds; validation makes it a float
                "walltime": 3600,
                "retries": 2,
                # 4 slots on each of 2 nodes, sharing them with other tasks
                "exclusive": False,
            }
        ),
        "env": ordered_map({"OMP_NUM_THREADS": "4", "CASE": "a"}),
        "cwd": "/scratch/run-1",
        "stdout": "/scratch/run-1/sim.out",
        "stderr": None,
        "input": INPUT,
    }


def task_submission_serial():
    return {
        "task_id": TASK_2,
        "command": "hostname",
        "resources": {},
        "env": {},
        "cwd": None,
        "stdout": None,
        "stderr": None,
        "input": None,
    }


def task_result_full():
    """A result with every field set, including non-UTF-8 bytes in a tail."""
    return {
        "task_id": TASK_1,
        "state": "failed",
        "exit_code": 3,
        "signal": None,
        "error": {"kind": "exit_code", "message": "command exited with code 3"},
        "manager_id": MANAGER,
        "block_id": "48213",
        "nodes": ["nid001", "nid002"],
        "stdout_path": "/scratch/run-1/sim.out",
        "stderr_path": "/scratch/run-1/rhtex-run/tasks/" + TASK_1 + ".stderr",
        "stdout_tail": b"step 99\nstep 100\n",
        "stderr_tail": b"\x00\x9f\x92\x96 rank 3: abort\n",
        "start_time": START_TIME,
        "end_time": END_TIME,
        "output": None,
    }


def task_result_ran_on_one_node(task_id, state, node, stdout_tail, seconds):
    """A result of a task that ran `seconds` from START_TIME on `node` of
    block 48213, its output in the run directory; nothing else said (the
    Rust test's `ran_on_one_node`)."""
    return {
        "task_id": task_id,
        "state": state,
        "exit_code": None,
        "signal": None,
        "error": None,
        "manager_id": MANAGER,
        "block_id": "48213",
        "nodes": [node],
        "stdout_path": "rhtex-run/tasks/" + task_id + ".stdout",
        "stderr_path": "rhtex-run/tasks/" + task_id + ".stderr",
        "stdout_tail": stdout_tail,
        "stderr_tail": b"",
        "start_time": START_TIME,
        "end_time": START_TIME + seconds,
        "output": None,
    }


def task_result_completed():
    result = task_result_ran_on_one_node(
        TASK_2, "completed", "nid001", b"nid001\n", 0.5
    )
    result["exit_code"] = 0
    result["output"] = OUTPUT
    return result


def task_result_walltime():
    """A task the manager killed because it ran past its walltime."""
    result = task_result_ran_on_one_node(
        TASK_4, "failed", "nid003", b"iteration 5812\n", 60.25
    )
    result["signal"] = 15
    result["error"] = {
        "kind": "walltime_exceeded",
        "message": "killed after running longer than its walltime of 60 s",
    }
    return result


def task_result_output_too_large():
    """A task that completed but wrote more output than the limit."""
    result = task_result_ran_on_one_node(TASK_3, "failed", "nid004", b"", 2.0)
    result["exit_code"] = 0
    result["error"] = {
        "kind": "output_too_large",
        "message": "the task's output file has 20000000 bytes; "
        "max_task_output_bytes is 16777216",
    }
    return result


def task_resources_mpi():
    """`task_submission_mpi()["resources"]` as the interchange validates it."""
    return {
        "num_nodes": 2,
        "ranks_per_node": 4,
        "num_ranks": 7,
        "launcher_options": "--bind-to core",
        "priority": -3,
        "walltime": 3600.0,
        "retries": 2,
        "exclusive": False,
    }


# ---------------------------------------------------------------------------
# The messages, by file name: <enum>.<variant>[.<detail>]
# ---------------------------------------------------------------------------

def register_first():
    """A four-node block's first registration."""
    return {
        "type": "register",
        "protocol_version": PROTOCOL_VERSION,
        "manager_id": MANAGER,
        "block_id": "48213",
        "hostname": "nid001",
        "nodes": ["nid001", "nid002", "nid003", "nid004"],
        "launcher": "srun",
        "rhtex_version": RHTEX_VERSION,
        "cpu_count": 128,
        # one slot per core of a node with two hardware threads per core
        "slots_per_node": 64,
        "versions": ordered_map(
            {"os": "Debian GNU/Linux 12", "libzmq": "4.3.4", "mpi": "MPICH 4.0.2"}
        ),
        "attempt": 0,
        "running_tasks": [],
        "held_results": [],
    }


def messages():
    submission = task_submission_mpi()
    register = register_first()
    return {
        # FromClient
        "from_client.hello": {
            "type": "hello",
            "protocol_version": PROTOCOL_VERSION,
            "client_version": RHTEX_VERSION,
        },
        "from_client.submit": {
            "type": "submit",
            "request_id": 1,
            "tasks": [submission, task_submission_serial()],
        },
        "from_client.watch": {
            "type": "watch",
            "request_id": 2,
            "task_ids": [TASK_1, TASK_2],
        },
        "from_client.command.status": command(3, "status"),
        "from_client.command.task_status": command(
            4, "task_status", task_ids=[TASK_1, TASK_2]
        ),
        "from_client.command.tasks": command(10, "tasks", state="running"),
        "from_client.command.hold": command(5, "hold", manager_id=MANAGER),
        "from_client.command.release": command(6, "release", manager_id=MANAGER),
        "from_client.command.drain": command(7, "drain", manager_id=MANAGER),
        "from_client.command.cancel": command(8, "cancel", task_id=TASK_1),
        "from_client.command.shutdown": command(9, "shutdown"),
        "from_client.goodbye": {"type": "goodbye"},
        # ToClient
        "to_client.welcome": {
            "type": "welcome",
            "protocol_version": PROTOCOL_VERSION,
            "interchange_version": RHTEX_VERSION,
            "max_task_input_bytes": MIB_16,
            "max_task_output_bytes": MIB_16,
        },
        "to_client.refused": {
            "type": "refused",
            "reason": "protocol version mismatch: the client speaks version 3, "
            "this interchange speaks version 4",
            "protocol_version": PROTOCOL_VERSION,
        },
        "to_client.submitted": {"type": "submitted", "request_id": 1, "n_tasks": 2},
        # one of the three ids watched is unknown to the interchange
        "to_client.watching": {
            "type": "watching",
            "request_id": 2,
            "n_tasks": 2,
            "unknown": [TASK_3],
        },
        "to_client.results": {
            "type": "results",
            "results": [task_result_full(), task_result_completed()],
        },
        "to_client.reply.status": {
            "type": "reply",
            "request_id": 3,
            "reply": {
                "kind": "status",
                "interchange_version": RHTEX_VERSION,
                "protocol_version": PROTOCOL_VERSION,
                "n_queued": 5,
                "n_running": 1,
                "n_completed": 120,
                "n_failed": 2,
                "n_cancelled": 0,
                "n_bad_messages": 0,
                "managers": [
                    {
                        "manager_id": MANAGER,
                        "block_id": "48213",
                        "hostname": "nid001",
                        "launcher": "srun",
                        "n_nodes": 4,
                        "n_free_nodes": 2,
                        "n_running_tasks": 1,
                        "held": False,
                        "draining": False,
                        "registered_at": REGISTERED_AT,
                        "last_heartbeat": LAST_HEARTBEAT,
                        "rhtex_version": RHTEX_VERSION,
                        "slots_per_node": 64,
                        # the 3-node task at the head of the queue waits for
                        # this manager's next free node
                        "reserved_for": TASK_3,
                    }
                ],
                "waiting": [
                    {
                        "num_nodes": 3,
                        "n_tasks": 5,
                        "reason": "needs 3 nodes; the largest free count is 2",
                    }
                ],
                "blocks": [
                    {
                        "block_id": "48213",
                        "job_id": "48213",
                        "provider": "slurm",
                        "state": "connected",
                        "n_nodes": 4,
                        "manager_id": MANAGER,
                        "submitted_at": SUBMITTED_AT,
                        "output_path": "/scratch/rhtex-run/blocks/48213.out",
                        "message": None,
                    }
                ],
                "users": [
                    {"identity": "alice", "n_queued": 3, "n_running": 1},
                    {"identity": "default", "n_queued": 2, "n_running": 0},
                ],
            },
        },
        "to_client.reply.task_status": {
            "type": "reply",
            "request_id": 4,
            "reply": {
                "kind": "task_status",
                "tasks": [
                    {
                        "task_id": TASK_1,
                        "state": "failed",
                        "manager_id": MANAGER,
                        "nodes": ["nid001", "nid002"],
                        "waiting_reason": None,
                        "result": task_result_full(),
                    },
                    {
                        "task_id": TASK_2,
                        "state": "queued",
                        "manager_id": None,
                        "nodes": [],
                        "waiting_reason": "no pool-manager is connected",
                        "result": None,
                    },
                ],
            },
        },
        "to_client.reply.tasks": {
            "type": "reply",
            "request_id": 10,
            "reply": {
                "kind": "tasks",
                "tasks": [
                    {
                        "task_id": TASK_1,
                        "state": "failed",
                        "num_nodes": 2,
                        "manager_id": MANAGER,
                        "nodes": ["nid001", "nid002"],
                        "submitted_at": SUBMITTED_AT,
                        "start_time": START_TIME,
                        "end_time": END_TIME,
                        "exit_code": 3,
                        "error_kind": "exit_code",
                    },
                    {
                        "task_id": TASK_2,
                        "state": "queued",
                        "num_nodes": 3,
                        "manager_id": None,
                        "nodes": [],
                        "submitted_at": SUBMITTED_AT,
                        "start_time": None,
                        "end_time": None,
                        "exit_code": None,
                        "error_kind": None,
                    },
                ],
            },
        },
        "to_client.reply.done": {
            "type": "reply",
            "request_id": 5,
            "reply": {"kind": "done", "message": "manager " + MANAGER + " is held"},
        },
        "to_client.reply.failed": {
            "type": "reply",
            "request_id": 8,
            "reply": {"kind": "failed", "message": "no task " + TASK_1},
        },
        "to_client.error": {
            "type": "error",
            "request_id": None,
            "message": "send hello first",
        },
        "to_client.error.denied": {
            "type": "error",
            "request_id": 9,
            "message": "denied: task " + TASK_1 + " was submitted by another client identity; "
            "only its submitter or an admin may cancel it (this connection is client identity "
            "bob); nothing of this request was done",
        },
        # FromManager
        "from_manager.register": register,
        # The same manager registering again after it lost the interchange:
        # one task still runs (on the placement it was given), one ended
        # and its result is held.
        "from_manager.register_again": {
            **register,
            "versions": ordered_map({}),
            "attempt": 1,
            "running_tasks": [
                {
                    "task_id": TASK_1,
                    "placement": [{"node": 0, "slots": 4}, {"node": 1, "slots": 4}],
                }
            ],
            "held_results": [TASK_2],
        },
        "from_manager.heartbeat": {"type": "heartbeat"},
        "from_manager.results": {
            "type": "results",
            "results": [
                task_result_full(),
                task_result_walltime(),
                task_result_output_too_large(),
            ],
        },
        "from_manager.drain_request": {"type": "drain_request"},
        "from_manager.goodbye": {
            "type": "goodbye",
            "reason": "drained: idle after the drain period",
        },
        # ToManager
        "to_manager.registered": {
            "type": "registered",
            "interchange_version": RHTEX_VERSION,
            "heartbeat_period": 30.0,
            "max_task_output_bytes": MIB_16,
            # a task the manager listed that this interchange does not
            # have running there: killed, not reported
            "drop_tasks": [TASK_4],
        },
        "to_manager.not_registered": {
            "type": "not_registered",
            "reason": "this connection is not registered with the interchange",
        },
        "to_manager.refused": {
            "type": "refused",
            "reason": "protocol version mismatch: the pool-manager speaks version 3, "
            "this interchange speaks version 4",
            "protocol_version": PROTOCOL_VERSION,
        },
        "to_manager.run_tasks": {
            "type": "run_tasks",
            "tasks": [
                {
                    "task_id": submission["task_id"],
                    "command": submission["command"],
                    "resources": task_resources_mpi(),
                    # node = an index into the manager's registered `nodes`
                    "placement": [{"node": 0, "slots": 4}, {"node": 1, "slots": 4}],
                    "env": submission["env"],
                    "cwd": submission["cwd"],
                    "stdout": submission["stdout"],
                    "stderr": submission["stderr"],
                    "input": submission["input"],
                }
            ],
        },
        "to_manager.cancel_task": {"type": "cancel_task", "task_id": TASK_1},
        "to_manager.heartbeat": {"type": "heartbeat"},
        "to_manager.shutdown": {
            "type": "shutdown",
            "reason": "the interchange is shutting down",
        },
        # What rhtex also accepts: optional fields left out, unknown fields,
        # keys in any order. Decoded only.
        "lenient.from_client.hello": {
            "protocol_version": PROTOCOL_VERSION,
            "type": "hello",
        },
        "lenient.from_client.submit": {
            "type": "submit",
            "request_id": 10,
            "tasks": [
                {
                    "command": "echo hi",
                    "task_id": TASK_2,
                    "user_tag": "ignored by rhtex",
                }
            ],
            "sent_by": "a python client",
        },
        "lenient.from_client.watch": {
            "type": "watch",
            "request_id": 11,
            # ids as 16 raw bytes (Python's `uuid.UUID(...).bytes`)
            "task_ids": [uuid.UUID(TASK_1).bytes, uuid.UUID(TASK_2).bytes],
        },
        "lenient.to_manager.registered": {
            "type": "registered",
            "interchange_version": RHTEX_VERSION,
            # an integer where a float is expected; no max_task_output_bytes
            # (the default, 16 MiB)
            "heartbeat_period": 30,
        },
        "lenient.from_manager.register": {
            # a minimal Python manager: no cpu_count, slots_per_node or versions
            "type": "register",
            "protocol_version": PROTOCOL_VERSION,
            "manager_id": MANAGER,
            "block_id": "local",
            "hostname": "laptop",
            "nodes": ["laptop"],
            "launcher": "mpiexec",
            "rhtex_version": "python-0.1",
        },
        "lenient.to_manager.run_tasks": {
            "type": "run_tasks",
            "tasks": [
                {
                    "task_id": TASK_2,
                    "command": "hostname",
                    # no walltime, retries or exclusive: none, none, true;
                    # no input
                    "resources": {"num_nodes": 1, "ranks_per_node": 1, "num_ranks": 1},
                    "placement": [{"node": 0, "slots": 64}],
                }
            ],
        },
        "lenient.from_manager.results": {
            "type": "results",
            # no output
            "results": [{"task_id": TASK_2, "state": "completed", "exit_code": 0}],
        },
    }


def encode(message):
    return msgpack.packb(message, use_bin_type=True)


def main(argv):
    check = "--check" in argv[1:]
    here = Path(__file__).resolve().parent
    expected = {name + ".msgpack": encode(message) for name, message in messages().items()}
    problems = []
    for file_name, data in sorted(expected.items()):
        path = here / file_name
        if check:
            if not path.exists():
                problems.append(f"{file_name}: missing")
            elif path.read_bytes() != data:
                problems.append(f"{file_name}: differs from what this script writes")
        else:
            path.write_bytes(data)
    stale = sorted(
        path.name for path in here.glob("*.msgpack") if path.name not in expected
    )
    for name in stale:
        problems.append(f"{name}: not written by this script (remove it or add it here)")
    if problems:
        for problem in problems:
            print(f"golden: {problem}", file=sys.stderr)
        return 1
    action = "checked" if check else "wrote"
    print(f"golden: {action} {len(expected)} files in {here}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
