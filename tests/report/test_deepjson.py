"""deepjson writes the same JSON as the json module at any nesting depth: a call tree
20,000 levels deep (a deep native recursion) is encoded without RecursionError on every
supported Python (3.12+ cap the C encoder's recursion whatever the recursion limit)."""

from __future__ import annotations

import json

import pytest

from memtrace_core.report import deepjson


def _chain(levels: int) -> dict:
    root: dict = {"name": "root", "children": []}
    node = root
    for i in range(levels):
        child = {"name": f"f{i}", "bytes": i * 7, "inlined": i % 2 == 0, "file": None,
                 "share": i / 3, "ünïcode": "é</script>", "children": []}
        node["children"].append(child)
        node = child
    return root


def _chain_text(levels: int) -> str:
    """The compact JSON of _chain(levels), built without any encoder."""
    head = ['{"name":"root","children":[']
    for i in range(levels):
        fields = {"name": f"f{i}", "bytes": i * 7, "inlined": i % 2 == 0, "file": None,
                  "share": i / 3, "ünïcode": "é</script>"}
        head.append(json.dumps(fields, separators=(",", ":"))[:-1] + ',"children":[')
    return "".join(head) + "]}" * (levels + 1)


@pytest.mark.parametrize("levels", [3, 90, 150, 400])
def test_same_text_as_json_where_json_can(levels):
    tree = _chain(levels)
    assert deepjson.dumps(tree, separators=(",", ":")) == json.dumps(tree, separators=(",", ":"))
    if deepjson.nesting(tree) < deepjson.DEEP:  # indented while shallow, as asked
        assert deepjson.dumps(tree, indent=1) == json.dumps(tree, indent=1)
    else:  # deep: compact, the same JSON
        assert deepjson.dumps(tree, indent=1) == json.dumps(tree, separators=(",", ":"))


def test_twenty_thousand_levels():
    assert deepjson.dumps(_chain(20_000), indent=1) == _chain_text(20_000)


def test_keys_and_scalars_as_json_writes_them():
    value = {"b": [1, 2.5, None, True, "x\n"], 3: {"é": []}, "a": (1,)}
    deep = value
    for _ in range(deepjson.DEEP):
        deep = [deep]
    text = deepjson.dumps(deep)
    assert text == json.dumps(deep, separators=(",", ":"))
    assert deepjson.dumps({"b": 1, "a": [2]}, sort_keys=True) == '{"a": [2], "b": 1}'
    ordered = [{"b": 1, "a": 2}]
    for _ in range(deepjson.DEEP):
        ordered = [ordered]
    assert deepjson.dumps(ordered, sort_keys=True).endswith('{"a":2,"b":1}' + "]" * 201)


@pytest.mark.parametrize("levels", [3, 400, 20_000])
def test_loads_reads_back_any_depth(levels):
    text = _chain_text(levels)
    tree = deepjson.loads(text)
    node = tree
    for i in range(levels):  # walk it without recursion
        (node,) = node["children"]
        assert node["name"] == f"f{i}" and node["bytes"] == i * 7 and node["share"] == i / 3
        assert node["inlined"] is (i % 2 == 0) and node["file"] is None
        assert node["ünïcode"] == "é</script>"
    assert node["children"] == []
    if levels < 1000:
        assert tree == json.loads(text)


def test_loads_scalars_and_errors():
    text = '[1, -2.5e3, 0, "a\\u00e9\\"", true, false, null, {}, [], {"k": [{"x": -0.5}]}]'
    deep = "[" * 3000 + text + "]" * 3000
    value = deepjson.loads(deep)
    for _ in range(3000):
        (value,) = value
    assert value == json.loads(text)
    for bad in ("[1,]", '{"a" 1}', "[1] x", "[tru]", "{1: 2}"):
        with pytest.raises(ValueError):
            deepjson._loads_flat(bad)
