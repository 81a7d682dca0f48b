# cython: language_level=3
"""Builds the attach helper library (spawn.c): the injector loads this module's file into the
target and calls `memtrace_attach_spawn`; Python never needs to import it."""

cdef extern from *:
    int memtrace_attach_spawn(void *page, unsigned long page_size, const char *code)

SPAWN_SYMBOL = "memtrace_attach_spawn"
