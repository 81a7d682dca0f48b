"""memtrace_core is the engine: importing all of it loads no textual, no rich and nothing of
memtrace_tui; the `memtrace` command's parser (memtrace_tui.cli) loads no textual either, so
`memtrace run` starts fast."""

import subprocess
import sys

CODE = """
import importlib, pkgutil, sys
import memtrace_core
for info in pkgutil.walk_packages(memtrace_core.__path__, 'memtrace_core.'):
    if '.tracer' in info.name or info.name.endswith('__main__'):
        continue  # the tracer runs in the target process; covered by its own tests
    try:
        importlib.import_module(info.name)
    except ImportError:
        pass  # an extension not built yet must not hide a textual import elsewhere
def ui(prefixes):
    return sorted(m for m in sys.modules if m.split('.')[0] in prefixes)
print(*ui(('textual', 'rich', 'memtrace_tui'))[:5] or ['none'])
from memtrace_tui.cli import build_parser
build_parser()
print(*ui(('textual',))[:5] or ['none'])
"""


def test_engine_import_loads_no_ui():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         check=True)
    assert out.stdout.splitlines() == ["none", "none"], out.stdout


def test_engine_has_no_command():
    """`python -m memtrace_core` names the command in one line, with a usage status."""
    proc = subprocess.run([sys.executable, "-m", "memtrace_core"], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "memtrace: error: memtrace_core is the engine; the command is `memtrace` "
        "(or `python -m memtrace_tui`)"]
