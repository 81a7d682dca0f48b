"""The tests are one package: every directory of Python files is a package, helpers import
as `tests.<dir>.<module>`, no test module imports another, and nothing edits sys.path (code
written to disk for a child process, inside string literals, is not looked at)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__snapshots__" not in p.parts)


def test_every_test_directory_is_a_package() -> None:
    missing = sorted({str(p.parent.relative_to(TESTS.parent)) for p in modules()
                      if not (p.parent / "__init__.py").exists()})
    assert missing == []


def test_helpers_import_through_the_package_and_tests_never_import_tests() -> None:
    local = {p.stem for p in modules()} - {"__init__", "conftest"}
    bad = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] in local or parts[-1].startswith("test_") or "conftest" in parts:
                    bad.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: {name}")
    assert bad == []


def test_no_test_edits_sys_path() -> None:
    bad = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            target = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = node.func.value  # sys.path.insert(...), sys.path.append(...)
            elif isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                target = next((t for t in targets if ast.unparse(t) == "sys.path"), None)
            if target is not None and ast.unparse(target) == "sys.path":
                bad.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}")
    assert bad == []
