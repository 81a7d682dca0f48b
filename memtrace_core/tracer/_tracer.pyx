# cython: language_level=3
"""Python face of the C tracer: start/stop tracing of this process into a file descriptor.

Everything on the allocation path is C (hooks.c, recorder.c, pystack.c); this module only
starts and stops it, with the GIL held.
"""

from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free

from memtrace_core.tracer.hooks cimport (
    mt_hooks_init, mt_hooks_install, mt_hooks_uninstall, mt_pymem_install, mt_pymem_uninstall,
)
from memtrace_core.tracer.unwinder cimport mt_unwind_mask_counts
from memtrace_core.tracer.pystack cimport mt_own_stack_function, mt_set_root_code
from memtrace_core.tracer.recorder cimport *
from memtrace_core.tracer.term cimport (
    mt_term_install, mt_term_stop_begin, mt_term_stop_end, mt_term_uninstall,
)
from memtrace_core.wire.format cimport MT_FORMAT_VERSION, MT_REC_HEADER

FORMAT_VERSION = MT_FORMAT_VERSION
"""The wire format's version, the HEADER's `format` (memtrace_core/wire/format.h)."""
HEADER_RECORD = MT_REC_HEADER
"""The HEADER record's type (encoded in Python: tracer/header.py)."""


_START_ERRORS = {
    MT_START_RUNNING: "memtrace is already tracing this process",
    MT_START_NOMEM: "not enough memory to start the recorder",
    MT_START_NO_WRITER: "could not start the recorder's writer thread",
}
"""A one-line message for each failure of mt_recorder_start (recorder.h)."""


class TracerError(RuntimeError):
    """The tracer could not start (already running, out of memory, symbols missing)."""


DEFAULT_NATIVE_DEPTH = MT_DEFAULT_NATIVE_DEPTH
"""Native frames kept per stack unless told otherwise (the innermost ones)."""


def start(int fd, bint native, bint python_allocators, bytes header, bint compress=False,
          int native_depth=0, unsigned long long sample_bytes=0,
          unsigned long long sample_seed=0) -> int:
    """Start tracing into fd (the stream's magic and HEADER record are written first).

    compress=True (capture files) writes a zstd frame after the magic "MEMTRACZ".
    native_depth: native frames kept per stack (0: DEFAULT_NATIVE_DEPTH); deeper stacks keep
    their innermost frames and say how many were cut.
    sample_bytes: 0 records every allocation; N > 0 records a sample, one every ~N bytes
    allocated per thread (sampler.h); sample_seed fixes the draws (0: from the clock).

    Returns the number of relocation slots patched.
    """
    if mt_hooks_init() != 0:
        raise TracerError("could not resolve the allocator functions")
    rc = mt_recorder_start(fd, native, native_depth, compress, header, len(header),
                           sample_bytes, sample_seed)
    if rc != MT_START_OK:
        raise TracerError(_START_ERRORS.get(rc, f"could not start the recorder (code {rc})"))
    patched = mt_hooks_install()
    if python_allocators:
        mt_pymem_install()
    mt_term_install()
    return patched


def stop(exit_code=None) -> None:
    """Stop tracing: write the trailer, flush, restore every hook."""
    cdef int code
    mt_pymem_uninstall()
    with nogil:
        mt_hooks_uninstall()
    if exit_code is None:
        with nogil:
            mt_term_stop_begin()
            mt_recorder_stop(0, 0)
            mt_term_stop_end()
    else:
        code = <int>int(exit_code)
        with nogil:
            mt_term_stop_begin()
            mt_recorder_stop(code, 1)
            mt_term_stop_end()
    mt_term_uninstall()


def set_untraced_children(long n) -> None:
    """How many child processes the program started untraced (the TRAILER says it)."""
    mt_set_untraced_children(n)


def stop_at_process_exit() -> None:
    """The interpreter is finalizing without knowing the exit status: keep recording (with
    native stacks only) until the process exits, where the C exit path writes the trailer
    with the real status. Call with the GIL held."""
    mt_pymem_uninstall()
    mt_recorder_python_gone()


def native_summary():
    """(addresses, maps) of the native recording that ended last, from the tracer's own
    tables: every address of its native stack trie (a set), and its last MAPS snapshot as
    msgpack bytes (an array of MAPS entries, docs/FORMAT.md). None when they would not say
    all its stream does (an object left the maps, a record could not be sent, it failed or
    is still running): the stream must then be read. What naming a finished `run --native`
    needs, without reading the capture back."""
    cdef uint64_t *ips = NULL
    cdef uint8_t *maps = NULL
    cdef size_t n = 0, length = 0, i
    if not mt_recorder_native_summary(&ips, &n, &maps, &length):
        return None
    try:
        return {ips[i] for i in range(n)}, maps[:length]
    finally:
        free(ips)
        free(maps)


def running() -> bool:
    """True while a recording is open (it may have stopped recording on a closed reader)."""
    return mt_recorder_running() != 0


def active() -> bool:
    """True while allocations are being recorded."""
    return mt_tracking != 0


def failed() -> bool:
    """True when the reader went away and tracing stopped by itself."""
    return mt_recorder_failed() != 0


def ring_count() -> int:
    """How many threads' record rings exist (exact mode keeps one per thread that records,
    recorder.c): for tests."""
    return mt_recorder_rings()


def packed_bytes() -> int:
    """How many bytes of records the recording took from a thread that packed them itself
    while it had the only ring (recorder.c, "Packing"): for tests."""
    return mt_recorder_packed_bytes()


def unwind_mask_counts() -> tuple[int, int, int]:
    """How many unwindings ran with every signal blocked once, and how many of libunwind's
    own sigprocmask calls and address checks were answered without a system call meanwhile
    (unwinder.h), in this process so far: for tests."""
    cdef long blocks = 0, answered = 0, checked = 0
    mt_unwind_mask_counts(&blocks, &answered, &checked)
    return blocks, answered, checked


def ring_resident_bytes() -> int:
    """How many bytes of those rings are in memory (-1: unknown): a stopped recording hands
    all but each ring's first page back to the system (recorder.c): for tests."""
    return mt_recorder_ring_resident()


def memo_resident_bytes() -> int:
    """How many bytes of the threads' native-node maps are in memory (-1: unknown): a
    stopped recording hands them all back to the system (recorder.c): for tests."""
    return mt_recorder_memo_resident()


def held_bytes() -> int:
    """The size of the recorder's buffers and interning tables: megabytes while it records,
    0 once it stopped and was released (a detached program keeps none of it, recorder.c):
    for tests."""
    return mt_recorder_held_bytes()


def release() -> None:
    """After stop(): free what a next recording would make again, the native stack table
    included (native_summary() then has nothing to say). A detach calls it."""
    with nogil:
        mt_recorder_release()


def set_thread_name(long native_id, str name) -> None:
    """Record a thread's Python name (threads are keyed by their OS id)."""
    data = name.encode("utf-8", "replace")[:63]
    mt_set_thread_name(native_id, data, 0)


def rename_thread(long native_id, str name) -> None:
    """A thread's new name: its later allocations carry it, its earlier ones keep theirs."""
    data = name.encode("utf-8", "replace")[:63]
    mt_set_thread_name(native_id, data, 1)


def set_root_code(code) -> None:
    """Hide the frames of memtrace's runner: the stack stops at this code object.

    The code object is kept alive by this module so its address is never reused.
    """
    global _root_code
    _root_code = code
    mt_set_root_code(<void *>code)


_root_code = None


# call_on_own_stack(fn, args, call_levels): the program's first call, on a Python frame
# stack of its own and with memtrace's recursion depths lent back, so that it runs as under
# plain python (pystack.c says why). A C function: tracebacks get no entry for it.
call_on_own_stack = mt_own_stack_function()


cdef extern from "Python.h":
    ctypedef struct PyCompilerFlags:
        int cf_flags
        int cf_feature_version
    object Py_CompileStringObject(const char *source, object filename, int start,
                                  PyCompilerFlags *flags, int optimize)
    int Py_file_input
    int PyCF_SOURCE_IS_UTF8
    int PyCF_IGNORE_COOKIE
    int PY_MINOR_VERSION


def compile_program(source, str filename):
    """The code of a program's source (bytes, or str for -c), as
    compile(source, filename, "exec", dont_inherit=True) makes it, through the C call that
    builtins.compile ends in. builtins.compile first asks whether the source is an AST
    object, and the first such question builds every AST node type (PyAST_Check ->
    init_types: 9 M instructions, ~2.5 ms), which `python script.py` never does: the
    start-up of every `memtrace run`. Source with a null byte goes to builtins.compile,
    which raises what this Python raises for it."""
    cdef PyCompilerFlags flags
    cdef bytes data
    flags.cf_flags = PyCF_SOURCE_IS_UTF8
    flags.cf_feature_version = PY_MINOR_VERSION
    if isinstance(source, str):
        data = (<str>source).encode("utf-8")
        flags.cf_flags |= PyCF_IGNORE_COOKIE  # as builtins.compile reads a str: UTF-8
    else:
        data = bytes(source)
    if b"\0" in data:
        return compile(source, filename, "exec", dont_inherit=True)
    return Py_CompileStringObject(data, filename, Py_file_input, &flags, -1)
