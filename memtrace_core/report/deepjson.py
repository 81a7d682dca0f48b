"""JSON text of deeply nested trees (a native stack may be thousands of frames deep).

The json module encodes nested containers recursively: a call tree thousands of levels
deep ends in RecursionError, and since Python 3.12 raising the recursion limit does not
help (the C encoder counts against a fixed C recursion limit). A tree nested deeper than
DEEP is written by a loop over an explicit stack instead, compact (indented JSON of such a
tree costs time proportional to its depth on every line, and its lines grow as long as the
tree is deep); the scalars still go through the json module, so the text is the same JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

DEEP = 200  # nesting from which the explicit-stack encoder is used


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
    """json.dumps that works at any nesting depth (compact beyond DEEP levels)."""
    if nesting(obj) < DEEP:
        return json.dumps(obj, **kwargs)
    return _dumps_flat(obj, sort_keys=bool(kwargs.get("sort_keys")),
                       ensure_ascii=kwargs.get("ensure_ascii", True))


def _dumps_flat(obj: Any, sort_keys: bool, ensure_ascii: bool) -> str:
    """Compact JSON of dicts, lists and scalars, with an explicit stack (no recursion)."""
    out: list[str] = []
    stack: list[tuple[str, Iterator[Any], list[bool]]] = []

    def scalar(value: Any) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii)

    def start(value: Any) -> None:
        if isinstance(value, dict):
            out.append("{")
            items = sorted(value.items()) if sort_keys else value.items()
            stack.append(("}", iter(items), [True]))
        elif isinstance(value, list | tuple):
            out.append("[")
            stack.append(("]", iter(value), [True]))
        else:
            out.append(scalar(value))

    start(obj)
    while stack:
        close, items, first = stack[-1]
        item = next(items, _END)
        if item is _END:
            stack.pop()
            out.append(close)
            continue
        if not first[0]:
            out.append(",")
        first[0] = False
        if close == "}":
            key, value = item
            # keys as json writes them: strings, and other scalars as their JSON text
            out.append(scalar(key if isinstance(key, str) else json.dumps(key)) + ":")
            start(value)
        else:
            start(item)
    return "".join(out)


_END = object()
