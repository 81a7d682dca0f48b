"""Build the Cython/C extensions: one extension per .pyx, C helpers beside it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).parent
CAPTURE_WRITER = "memtrace_core/capture/writer.c"  # the one capture writer, in two extensions
SHARED_HEADERS = [ROOT / "memtrace_core" / d for d in ("reader", "wire", "capture")]
# every core: the extensions are independent, and their build is most of an install's time
JOBS = os.cpu_count() or 1


def pkg_config(name: str, package: str) -> tuple[list[str], list[str]]:
    """Return (cflags, libs) for a system library or stop with an install hint."""
    if shutil.which("pkg-config") is None:
        sys.exit("memtrace build: pkg-config not found; install it: apt-get install pkg-config")
    try:
        cflags = subprocess.check_output(["pkg-config", "--cflags", name], text=True).split()
        libs = subprocess.check_output(["pkg-config", "--libs", name], text=True).split()
    except subprocess.CalledProcessError:
        sys.exit(f"memtrace build: {name} not found; install it: apt-get install {package}")
    return cflags, libs


def extensions() -> list[Extension]:
    """Every .pyx becomes a module; hand-written .c files in its folder are linked in."""
    unwind_cflags, unwind_libs = pkg_config("libunwind", "libunwind-dev")
    pkg_config("libzstd", "libzstd-dev")
    exts = []
    for pyx in sorted(ROOT.glob("memtrace_*/**/*.pyx")):
        rel = pyx.relative_to(ROOT)
        stems = {p.stem for p in pyx.parent.glob("*.pyx")}
        c_files = [
            str(c.relative_to(ROOT))
            for c in sorted(pyx.parent.glob("*.c"))
            if c.stem not in stems
        ]
        cflags = ["-O2", "-g", "-fno-omit-frame-pointer", "-Wall", "-Wno-unused-function"]
        libs: list[str] = ["-lm"]
        if rel.parts[1] == "tracer":  # `run` writes its capture with the capture writer
            cflags += unwind_cflags
            libs += unwind_libs + ["-lzstd", "-ldl", "-lpthread"]
            c_files.append(CAPTURE_WRITER)
        if rel.parts[1] == "capture":
            libs += ["-lzstd"]
        if rel.parts[1:3] == ("attach", "ptrace"):  # the injector: remote unwinding
            ptrace_cflags, ptrace_libs = pkg_config("libunwind-ptrace", "libunwind-dev")
            cflags += ptrace_cflags
            libs += ptrace_libs
        # a header change rebuilds every extension that may include it
        headers = sorted(str(h.relative_to(ROOT)) for d in (pyx.parent, *SHARED_HEADERS)
                         for h in d.glob("*.h"))
        module = ".".join(rel.with_suffix("").parts)
        exts.append(
            Extension(
                module,
                [str(rel), *c_files],
                include_dirs=[str(pyx.parent), *map(str, SHARED_HEADERS)],
                extra_compile_args=cflags,
                extra_link_args=libs,
                depends=headers,
            )
        )
    return cythonize(exts, language_level=3, compiler_directives={"embedsignature": True},
                     nthreads=JOBS)


setup(ext_modules=extensions(), options={"build_ext": {"parallel": JOBS}})
