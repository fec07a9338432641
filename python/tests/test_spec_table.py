"""The resource-specification table, proto/spec-cases.json, which the Rust
validator is checked against too (crates/protocol/tests/spec_table.rs)."""

from __future__ import annotations

import copy
import json

import pytest

from rhtex import spec

from conftest import REPO

TABLE = json.loads((REPO / "proto" / "spec-cases.json").read_text())


def _value(value):
    if isinstance(value, dict) and set(value) == {"$float"}:
        return float(value["$float"])
    return value


def test_the_table_is_large():
    assert len(TABLE["cases"]) >= 50


@pytest.mark.parametrize("case", TABLE["cases"], ids=[case["name"] for case in TABLE["cases"]])
def test_case(case):
    request = {key: _value(value) for key, value in case["request"].items()}
    before = copy.deepcopy(request)
    if "valid" in case:
        resources = spec.validate(request)
        wire = resources.to_wire()
        assert wire == case["valid"]
        assert [type(v) for v in wire.values()] == [type(v) for v in case["valid"].values()]
    else:
        with pytest.raises(spec.SpecError) as caught:
            spec.validate(request)
        assert str(caught.value) == case["error"]
    assert request.keys() == before.keys()  # never mutated


def test_none_is_serial():
    assert spec.validate(None) == spec.TaskResources(1, 1, 1)


def test_numpy_like_integers_are_integers():
    class Count(int):
        pass

    assert spec.validate({"num_nodes": Count(2)}).num_nodes == 2
    assert type(spec.to_request({"num_nodes": Count(2)})["num_nodes"]) is int


def test_to_request_sorts_keys():
    assert list(spec.to_request({"walltime": 1, "num_nodes": 2})) == ["num_nodes", "walltime"]
