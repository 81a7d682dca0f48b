"""The tracer sends its stack tries as PYNODE_NEXT and NATIVENODE_NEXT (format 6): a real
capture, exact and sampled, with native stacks, has no full node record, and its stacks read
back with every frame where the program put it."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from memtrace_core.reader import capture_stream, read_capture
from tests.streamgen import NATIVENODE, NATIVENODE_NEXT, PYNODE, PYNODE_NEXT

PROGRAM = """\
keep = []


def leaf(n):
    keep.append(bytearray(n))  # @leaf


def middle(n):
    leaf(n)  # @middle


def outer():
    for i in range(400):
        middle(300000 + i)  # @outer


outer()
print("done")
"""


def _record_types(capture: Path) -> set[int]:
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
    unpacker.feed(b"".join(capture_stream(capture))[8:])
    return {rec[0] for rec in unpacker}


@pytest.mark.parametrize("mode", [(), ("--sample", "64KiB")], ids=["exact", "sampled"])
def test_nodes_are_sent_in_the_next_forms(tmp_path, mt, mode):
    (tmp_path / "prog.py").write_text(PROGRAM)
    capture = tmp_path / "prog.mtrace"
    proc = mt.cli("run", "--native", "--no-names", *mode, "-o", str(capture), "prog.py",
                  cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == b"done\n", proc.stderr.decode()
    types = _record_types(capture)
    assert {PYNODE_NEXT, NATIVENODE_NEXT} <= types
    assert not {PYNODE, NATIVENODE} & types
    lines = mt.marker_lines(PROGRAM)
    reader = read_capture(capture)
    stacks = set()
    for sid in range(reader.n_stacks):
        pynode, nativenode, _thread = reader.stack_key(sid)
        frames = [(reader.codes[code][0], line) for code, line, _entry in
                  reader.py_stack(pynode)]
        if frames and frames[0][0] == "leaf":
            stacks.add(tuple(frames[:3]))
            assert reader.native_stack(nativenode)  # native frames under it
    assert stacks == {(("leaf", lines["leaf"]), ("middle", lines["middle"]),
                       ("outer", lines["outer"]))}
