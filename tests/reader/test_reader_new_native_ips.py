"""take_new_native_ips(): the native addresses read since the last call, each node once
(`view` has the worker name them while the rest of the capture is read)."""

from __future__ import annotations

from memtrace_core.reader import StreamReader
from tests.streamgen import MALLOC, StreamWriter


def test_each_node_once_and_only_new_ones():
    w = StreamWriter(native=True)
    first = w.native_stack([0x1000, 0x2000, 0x3000])
    w.alloc(1, MALLOC, 0x10, 16, 0, first)
    cut = len(w.data)
    second = w.native_stack([0x1000, 0x2000, 0x4000])  # shares two nodes with the first
    third = w.native_stack([0x5000, 0x3000])  # 0x3000 again, under another parent
    w.alloc(1, MALLOC, 0x20, 16, 0, second)
    w.alloc(1, MALLOC, 0x30, 16, 0, third)
    data = w.data
    reader = StreamReader()
    reader.feed(data[:cut])
    assert sorted(reader.take_new_native_ips()) == [0x1000, 0x2000, 0x3000]
    assert reader.take_new_native_ips() == []
    reader.feed(data[cut:])
    assert sorted(reader.take_new_native_ips()) == [0x3000, 0x4000, 0x5000]
    assert reader.take_new_native_ips() == []
    assert reader.native_stack(third) == [0x3000, 0x5000]  # the stacks are untouched
