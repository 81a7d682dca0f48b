"""C++ demangling through the C++ runtime's own __cxa_demangle (what eu-addr2line -C
prints), loaded with ctypes; names stay mangled when no C++ runtime is found."""

from __future__ import annotations

import functools

_CXA = None
_FREE = None


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


@functools.lru_cache(maxsize=65536)
def demangle(name: str) -> str:
    """Demangle an Itanium C++ name (`_Z...`); any other name comes back unchanged."""
    if not name.startswith("_Z") or not _load():
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
