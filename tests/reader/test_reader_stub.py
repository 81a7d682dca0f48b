"""The reader's typed API (memtrace_core/reader/_reader.pyi) is the extension's: every name
the stub declares exists, and every public name of StreamReader is in the stub (a method
added without its type, or one removed from the extension, fails here)."""

from __future__ import annotations

import ast
from pathlib import Path

from memtrace_core.reader import _reader

STUB = Path(_reader.__file__).with_name("_reader.pyi")


def _stub_names() -> tuple[set[str], set[str]]:
    tree = ast.parse(STUB.read_text())
    module, members = set(), set()
    for node in tree.body:
        if isinstance(node, ast.AnnAssign):
            module.add(node.target.id)
        elif isinstance(node, ast.ClassDef):
            module.add(node.name)
            if node.name == "StreamReader":
                members = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
    return module, members


def test_stub_matches_the_extension():
    module, members = _stub_names()
    assert {name for name in module if not hasattr(_reader, name)} == set()
    public = {name for name in dir(_reader.StreamReader) if not name.startswith("_")}
    assert members == public
    reader = _reader.StreamReader()
    for name in members:
        getattr(reader, name)  # properties read on a fresh reader without error
