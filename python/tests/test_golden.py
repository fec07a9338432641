"""Golden files, proto/golden/: every file decodes; the canonical ones
re-encode byte for byte; the lenient ones decode to the expected value
(the Rust side does the same in crates/protocol/tests/golden.rs)."""

from __future__ import annotations

import importlib.util
import uuid

import msgpack
import pytest

from rhtex import protocol, spec

from conftest import REPO

GOLDEN = REPO / "proto" / "golden"
FILES = sorted(path.name for path in GOLDEN.glob("*.msgpack"))
CANONICAL = [name for name in FILES if not name.startswith("lenient.")]
LENIENT = [name for name in FILES if name.startswith("lenient.")]

TASK_1 = "6f1c2f5e-0c2a-4b8e-9d3a-1a2b3c4d5e01"
TASK_2 = "6f1c2f5e-0c2a-4b8e-9d3a-1a2b3c4d5e02"
MANAGER = "0b1d5c3a-7e4f-4a21-8c6d-9e0f1a2b3c4d"


def direction(file_name: str) -> str:
    return file_name.removeprefix("lenient.").split(".")[0]


def generator():
    module_spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_every_direction_and_variant_has_a_file():
    seen = {(direction(name), name.split(".")[1 + name.startswith("lenient.")]) for name in FILES}
    for family in protocol.DIRECTIONS:
        for variant in protocol.TAGGED[family][1]:
            assert (family, variant) in seen, f"no golden file for {family}.{variant}"


@pytest.mark.parametrize("name", CANONICAL)
def test_canonical_file_round_trips_byte_for_byte(name):
    data = (GOLDEN / name).read_bytes()
    message = protocol.decode(data, direction(name))
    assert protocol.encode(message, direction(name)) == data


@pytest.mark.parametrize("name", CANONICAL)
def test_canonical_file_is_what_the_generator_writes(name):
    expected = generator().messages()[name.removesuffix(".msgpack")]
    assert protocol.decode((GOLDEN / name).read_bytes(), direction(name)) == expected


EXPECTED_LENIENT = {
    "lenient.from_client.hello": {"type": "hello", "protocol_version": 4, "client_version": ""},
    "lenient.from_client.submit": {
        "type": "submit",
        "request_id": 10,
        # The generator's serial task (TASK_2) with another command.
        "tasks": [{**generator().task_submission_serial(), "command": "echo hi"}],
    },
    "lenient.from_client.watch": {"type": "watch", "request_id": 11, "task_ids": [TASK_1, TASK_2]},
    "lenient.to_manager.registered": {
        "type": "registered",
        "interchange_version": "0.1.0",
        "heartbeat_period": 30.0,
        "max_task_output_bytes": 16777216,
        "drop_tasks": [],
    },
    "lenient.from_manager.register": {
        # What the generator wrote, the fields it leaves out at their defaults.
        **generator().messages()["lenient.from_manager.register"],
        "cpu_count": 0,
        "slots_per_node": None,
        "versions": {},
        "attempt": 0,
        "running_tasks": [],
        "held_results": [],
    },
    "lenient.to_manager.run_tasks": {
        "type": "run_tasks",
        "tasks": [
            # The generator's serial task (TASK_2, hostname) as dispatched.
            {
                **generator().task_submission_serial(),
                "resources": spec.validate({}).to_wire(),
                "placement": [{"node": 0, "slots": 64}],
            }
        ],
    },
    "lenient.from_manager.results": {
        "type": "results",
        "results": [
            {
                "task_id": TASK_2,
                "state": "completed",
                "exit_code": 0,
                "signal": None,
                "error": None,
                "manager_id": None,
                "block_id": None,
                "nodes": [],
                "stdout_path": None,
                "stderr_path": None,
                "stdout_tail": b"",
                "stderr_tail": b"",
                "start_time": None,
                "end_time": None,
                "output": None,
            }
        ],
    },
}


def test_every_lenient_file_has_an_expected_value():
    assert sorted(EXPECTED_LENIENT) == [name.removesuffix(".msgpack") for name in LENIENT]


@pytest.mark.parametrize("name", LENIENT)
def test_lenient_file_decodes(name):
    message = protocol.decode((GOLDEN / name).read_bytes(), direction(name))
    expected = EXPECTED_LENIENT[name.removesuffix(".msgpack")]
    assert message == expected
    assert [type(v) for v in message.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize(
    "frame, fragment",
    [
        (b"\xc1", "not msgpack"),
        (msgpack.packb([1, 2]), "not a map"),
        (msgpack.packb({"type": "launch"}), "unknown type 'launch'"),
        (msgpack.packb({"type": "hello"}), "missing field 'protocol_version'"),
        (msgpack.packb({"type": "hello", "protocol_version": -1}), "not a u32"),
        (msgpack.packb({"type": "watch", "request_id": 1, "task_ids": ["x"]}), "not a UUID"),
        (
            msgpack.packb({"type": "command", "request_id": 1, "command": {"name": "reboot"}}),
            "unknown name 'reboot'",
        ),
    ],
)
def test_undecodable_frames_are_named(frame, fragment):
    with pytest.raises(protocol.ProtocolError, match=fragment):
        protocol.decode(frame, "from_client")


def test_builders_are_canonical():
    task = protocol.task_submission("hostname", {"num_nodes": 1}, task_id=TASK_1)
    message = protocol.submit(1, [task])
    assert protocol.decode(protocol.encode(message, "from_client"), "from_client") == message
    assert protocol.command(5, "hold", manager_id=uuid.UUID(MANAGER))["command"] == {
        "name": "hold",
        "manager_id": MANAGER,
    }
    hello = protocol.encode(protocol.hello("0.1.0"), "from_client")
    assert hello == (GOLDEN / "from_client.hello.msgpack").read_bytes()
    assert len(hello) == 51


def test_task_input_and_limits():
    """Version 3: a task's input is bin on the wire; a welcome without the
    limits gets the defaults (16 MiB each); the new error kinds decode."""
    task = protocol.task_submission("true", task_id=TASK_1, input=b"\x80\x04K*.")
    frame = protocol.encode(protocol.submit(1, [task]), "from_client")
    (sent,) = msgpack.unpackb(frame, raw=False)["tasks"]
    assert list(sent)[-1] == "input" and sent["input"] == b"\x80\x04K*."
    welcome = protocol.decode(
        msgpack.packb({"type": "welcome", "protocol_version": 3, "interchange_version": "x"}),
        "to_client",
    )
    assert welcome["max_task_input_bytes"] == welcome["max_task_output_bytes"] == 16 * 1024 * 1024
    for kind in ("input_too_large", "output_too_large"):
        assert kind in protocol.ERROR_KINDS
