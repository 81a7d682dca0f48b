"""What depends on the interpreter's version, checked on whichever CPython runs the tests
(CI runs this directory on 3.10, 3.11, 3.12 and 3.13): the frame chain read by the tracer
(3.10's PyFrameObject chain, 3.11+'s interpreter frames), exact figures at the calling
line, and the hybrid stack's order with the inlined C frame, through a method, recursion
and a generator (3.10 runs each Python frame in its own C call of the eval loop; 3.11+
runs Python-to-Python calls inside one)."""

from __future__ import annotations

import json
import platform
import sys

import pytest

from tests.tracer import tracer_support as ts

PROGRAM = """\
import mtext


def make_leaks():
    mtext.leak_pattern()  # @leak


def produce():
    yield make_leaks()  # @yield


def recurse(n):
    if n:
        return recurse(n - 1)  # @recurse
    return list(produce())  # @list


class Holder:
    def run(self):
        recurse(3)  # @run


Holder().run()  # @main
"""

# 3.10's code objects have no qualified name: the plain name, as in its tracebacks
RUN = "Holder.run" if sys.version_info >= (3, 11) else "run"


@pytest.fixture(scope="module", params=["plain", "native"])
def traced(request, tmp_path_factory, mt):
    options = ("--native",) if request.param == "native" else ()
    return mt.trace(tmp_path_factory.mktemp(request.param), PROGRAM, options=options).check()


def _python_path(traced) -> list[tuple[str, int]]:
    lines = traced.lines
    return [("<module>", lines["main"]), (RUN, lines["run"])] + [
        ("recurse", lines["recurse"])] * 3 + [
        ("recurse", lines["list"]), ("produce", lines["yield"]), ("make_leaks", lines["leak"])]


def test_capture_is_of_this_python(traced):
    assert traced.stats["python"] == platform.python_version()


def test_exact_figures_at_the_calling_line(traced):
    entry = ts.stats_location(traced.stats, "make_leaks", traced.lines["leak"])
    assert entry is not None, traced.stats["top_locations"]
    expect = ts.LEAK_PATTERN
    assert (entry["bytes"], entry["count"], entry["leaked_bytes"], entry["leaked_count"]) == (
        expect.bytes, expect.count, expect.leaked_bytes, expect.leaked_count)


def test_python_stack_order(traced):
    """Every allocation of leak_pattern has the whole Python path, outermost first."""
    reader = traced.reader
    sids = ts.stacks_at(reader, "make_leaks", traced.lines["leak"])
    assert sids
    for sid in sids:
        frames = [(reader.codes[code][0], line)
                  for code, line, _entry in reader.py_stack(reader.stack_key(sid)[0])]
        assert frames[::-1] == _python_path(traced)


def _tree(mt, traced, *options: str) -> dict:
    proc = mt.cli("tree", "--json", "--threshold", "0", *options, str(traced.capture),
                  cwd=traced.capture.parent)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def _paths(node: dict, prefix: tuple = ()) -> list[tuple[tuple, int]]:
    """(path of (function, kind, line), own bytes) of every node with bytes of its own."""
    path = (*prefix, (node["function"], node["kind"], node.get("line")))
    out = []
    own = node["bytes"] - sum(c["bytes"] for c in node.get("children", []))
    if own:
        out.append((path, own))
    for child in node.get("children", []):
        out.extend(_paths(child, path))
    return out


def test_hybrid_stack_order_with_the_inlined_frame(mt, traced):
    """The report's call paths: the Python frames in order (no interpreter glue between
    them on any version), then leak_pattern's C frames down to the inlined helper."""
    if not traced.stats["native"]:
        pytest.skip("a Python-only capture has no C frames")
    tree = _tree(mt, traced)
    python = [(name, "python", line) for name, line in _python_path(traced)]
    found = {}
    for path, own in (p for child in tree["children"] for p in _paths(child)):
        if path[:len(python)] == tuple(python):
            found[tuple((f, k) for f, k, _ in path[len(python):])] = own
    assert found == {
        (("leak_pattern", "native"), ("mt_outer", "native"), ("mt_middle", "native"),
         ("mt_inline_alloc", "inline")): sum(ts.LEAK_INLINE_SIZES),
        (("leak_pattern", "native"), ("mt_outer", "native"), ("mt_middle", "native"),
         ("mt_leaf", "native")): sum(ts.LEAK_LEAF_SIZES),
    }
    leaks = _tree(mt, traced, "--leaks")
    leaked = [(tuple(f for f, _k, _l in path), own)
              for child in leaks["children"] for path, own in _paths(child)
              if path[:len(python)] == tuple(python)]
    assert leaked == [(tuple(name for name, _k, _l in python)
                       + ("leak_pattern", "mt_outer", "mt_middle", "mt_leaf"),
                       sum(ts.LEAK_LEAF_SIZES))]
