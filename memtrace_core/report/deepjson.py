"""JSON text of deeply nested trees (a native stack may be thousands of frames deep), and
back.

The json module encodes nested containers recursively: a call tree thousands of levels
deep ends in RecursionError, and since Python 3.12 raising the recursion limit does not
help (the C encoder counts against a fixed C recursion limit). A tree nested deeper than
DEEP is written by a loop over an explicit stack instead, compact (indented JSON of such a
tree costs time proportional to its depth on every line, and its lines grow as long as the
tree is deep); the scalars still go through the json module, so the text is the same JSON.
`loads` reads such text back the same way (json.loads has the same limit).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from json.decoder import scanstring
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


def loads(text: str | bytes) -> Any:
    """json.loads that works at any nesting depth (bytes are UTF-8, as json.loads takes)."""
    try:
        return json.loads(text)
    except RecursionError:
        try:
            return _loads_flat(text.decode() if isinstance(text, bytes) else text)
        except IndexError:
            raise ValueError("JSON text ends early") from None


_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = {"true": True, "false": False, "null": None}


def _loads_flat(s: str) -> Any:
    """Parse JSON with an explicit stack of open containers (no recursion)."""
    stack: list[tuple[Any, str | None]] = []  # (open container, key awaiting its value)

    def space(i: int) -> int:
        return _SPACE.match(s, i).end()  # type: ignore[union-attr]

    def key_at(i: int) -> tuple[str, int]:
        if s[i] != '"':
            raise ValueError(f"expected a key at {i}")
        key, i = scanstring(s, i + 1)
        i = space(i)
        if s[i] != ":":
            raise ValueError(f"expected ':' at {i}")
        return key, space(i + 1)

    i = space(0)
    while True:
        c = s[i]
        if c in "{[":
            container: Any = {} if c == "{" else []
            i = space(i + 1)
            if s[i] != ("}" if c == "{" else "]"):
                key = None
                if c == "{":
                    key, i = key_at(i)
                stack.append((container, key))
                continue
            value, i = container, i + 1
        elif c == '"':
            value, i = scanstring(s, i + 1)
        elif s.startswith(("true", "false", "null"), i):
            word = next(w for w in _LITERALS if s.startswith(w, i))
            value, i = _LITERALS[word], i + len(word)
        else:
            match = _NUMBER.match(s, i)
            if match is None:
                raise ValueError(f"unexpected {c!r} at {i}")
            number = match.group()
            value = float(number) if match.group(1) or match.group(2) else int(number)
            i = match.end()
        # the value is complete: attach it, closing every container it completes
        while True:
            i = space(i)
            if not stack:
                if i != len(s):
                    raise ValueError(f"extra data at {i}")
                return value
            container, key = stack[-1]
            if key is None:
                container.append(value)
            else:
                container[key] = value
            if s[i] == ",":
                i = space(i + 1)
                if isinstance(container, dict):
                    key, i = key_at(i)
                    stack[-1] = (container, key)
                break
            if s[i] != ("}" if isinstance(container, dict) else "]"):
                raise ValueError(f"expected ',' or a closing bracket at {i}")
            stack.pop()
            value, i = container, i + 1
