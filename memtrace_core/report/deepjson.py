"""JSON text of deeply nested trees (a native stack may be thousands of frames deep).

The json module encodes nested containers recursively, within the interpreter's recursion
limit: a call tree thousands of levels deep would end a report with RecursionError. The
encoding runs on a thread with a stack big enough for the tree's depth, with the limit
raised while it runs. Indented output costs the json module time proportional to the depth
for every line it writes, and its lines grow as long as the tree is deep: a tree nested
deeper than INDENT_DEPTH is written compact (the same JSON, without the whitespace).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

_FRAME_BYTES = 512  # generous C stack per nesting level of the json encoder
INDENT_DEPTH = 256


def nesting(obj: Any) -> int:
    """Depth of nested lists/dicts, without recursion."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(obj, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            values = item.values()
        elif isinstance(item, list | tuple):
            values = item
        else:
            continue
        deepest = max(deepest, depth)
        todo.extend((v, depth + 1) for v in values if isinstance(v, dict | list | tuple))
    return deepest


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps that works at any nesting depth."""
    depth = nesting(obj)
    if depth > INDENT_DEPTH and kwargs.get("indent") is not None:
        kwargs = {**kwargs, "indent": None, "separators": (",", ":")}
    if depth < sys.getrecursionlimit() // 4:
        return json.dumps(obj, **kwargs)
    result: list[str] = []
    error: list[BaseException] = []

    def encode() -> None:
        try:
            result.append(json.dumps(obj, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(exc)

    old_limit = sys.getrecursionlimit()
    old_size = threading.stack_size()
    threading.stack_size(max(32 << 20, (depth * 4 + 1000) * _FRAME_BYTES))
    sys.setrecursionlimit(max(old_limit, depth * 4 + 1000))
    try:
        worker = threading.Thread(target=encode, name="memtrace-json")
        worker.start()
        worker.join()
    finally:
        threading.stack_size(old_size)
        sys.setrecursionlimit(old_limit)
    if error:
        raise error[0]
    return result[0]
