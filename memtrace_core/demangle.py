"""Native names as their own language prints them. C++ (`_Z...`) goes through the C++
runtime's own __cxa_demangle (what eu-addr2line -C prints), loaded with ctypes. Rust goes
through the Rust project's own demangler (the rustc-demangle crate, by its pyderust
binding): extensions built with PyO3 (polars, pydantic-core, orjson, tokenizers...) have
v0 names (`_R...`) that no C++ demangler reads, and legacy ones (`_ZN...17h<hash>E`) that
a C++ demangler leaves with their `$LT$` escapes and hash. A name neither reads, or whose
demangler is missing, stays as it is."""

from __future__ import annotations

import functools
import re

_CXA = None
_FREE = None
_RUST = None

# the hash every legacy Rust name ends with (before any `.llvm.N` / `.cold` suffix)
_RUST_LEGACY_HASH = re.compile(r"17h[0-9a-f]{16}E")


def _load() -> bool:
    global _CXA, _FREE
    if _CXA is not None:
        return _CXA is not False
    import ctypes
    import ctypes.util  # on the first C++ name: it loads subprocess, tempfile...

    for name in (ctypes.util.find_library("stdc++"), "libstdc++.so.6"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        fn = lib.__cxa_demangle
        fn.restype = ctypes.c_void_p
        fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.POINTER(ctypes.c_int)]
        _CXA = fn
        _FREE = ctypes.CDLL(None).free
        _FREE.argtypes = [ctypes.c_void_p]
        return True
    _CXA = False
    return False


def _rust_demangler():
    """pyderust.demangle, or None when it cannot be imported."""
    global _RUST
    if _RUST is None:
        try:
            from pyderust import demangle as rust
        except ImportError:  # an install without it: Rust names stay mangled
            rust = False
        _RUST = rust
    return _RUST or None


def is_rust_name(name: str) -> bool:
    """A Rust symbol name: v0 (`_R`), or legacy (`_ZN` ending in its hash)."""
    return name.startswith("_R") or (name.startswith("_ZN")
                                     and _RUST_LEGACY_HASH.search(name) is not None)


def _demangle_rust(name: str) -> str | None:
    rust = _rust_demangler()
    if rust is None:
        return None
    try:
        return rust(name)
    except ValueError:  # pyderust.DemangleError: not a valid Rust name after all
        return None


def _demangle_cxx(name: str) -> str:
    if not _load():
        return name
    import ctypes

    status = ctypes.c_int(0)
    ptr = _CXA(name.encode(), None, None, ctypes.byref(status))
    if not ptr or status.value != 0:
        return name
    try:
        return ctypes.string_at(ptr).decode("utf-8", "replace")
    finally:
        _FREE(ptr)


@functools.lru_cache(maxsize=65536)
def demangle(name: str) -> str:
    """A C++ or Rust symbol name demangled (Rust without its hash); any other name, or one
    that does not parse, comes back unchanged."""
    if not name.startswith(("_Z", "_R")):
        return name
    if is_rust_name(name):
        rust = _demangle_rust(name)
        if rust is not None:
            return rust
    if name.startswith("_Z"):
        return _demangle_cxx(name)
    return name
