"""memtrace_core stays headless: importing all of it loads no textual module."""

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
import memtrace_core.model, memtrace_core.model.feed, memtrace_core.cli
from memtrace_core.cli import build_parser
build_parser()
loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))
print(len(loaded), loaded[:5])
"""


def test_core_import_loads_no_textual():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split()[0] == "0", out.stdout
