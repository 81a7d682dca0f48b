"""Runs inside gdb's own Python (`gdb -p PID -batch -nx -x gdb_inject.py`), never in memtrace.

It picks a thread of the stopped target that is not inside the allocator, the dynamic loader
or an unwinder (the only code our calls could deadlock against), maps a private page with
`mmap` (a bare syscall: no lock, no malloc - gdb's own string literals would call the
target's malloc), writes the helper's path and the agent's code there, `dlopen`s the helper
and calls its spawn function, which only starts a thread. Nothing here waits for the target's
Python, so gdb detaches within a fraction of a second even when every thread is busy.

The job comes as JSON in $MEMTRACE_ATTACH_JOB; the outcome is one line on stdout:
`@@memtrace-result {"ok": true, ...}` or `{"ok": false, "kind": ..., "message": ...}`.
Only the standard library and gdb's module may be used (gdb embeds its own Python).
"""

import json
import os

import gdb  # type: ignore[import-not-found]

RESULT_MARK = "@@memtrace-result "
RESERVED = 64  # the page's first bytes belong to the helper (spawn.c)
# Substrings of function names a thread must not be inside when we call dlopen/pthread_create.
UNSAFE = (
    "malloc", "calloc", "realloc", "free", "memalign", "valloc", "_int_", "arena", "tcache",
    "dl_", "dlopen", "dlclose", "dlsym", "dlerror", "fork", "pthread_create", "unw_",
    "_Unwind", "mt_", "memtrace_",
)
MAX_FRAMES = 64


def report(**fields):
    """Print the one result line the CLI looks for."""
    print(RESULT_MARK + json.dumps(fields), flush=True)


def setup():
    """Quiet, non-interactive settings; signals go straight to the target, never stop us."""
    for command in (
        "set confirm off",
        "set pagination off",
        "set width 0",
        "set unwindonsignal on",
        "set unwind-on-terminating-exception on",
        "set scheduler-locking off",
        "handle all nostop noprint pass",
    ):
        try:
            gdb.execute(command, to_string=True)
        except gdb.error:
            pass


# gdb starts with auto-solib-add off and then reads the symbols (and unwind tables) of every
# shared library except libpython, whose DWARF alone can take half a second: its own frames
# hold no lock our calls need, and the frames that may (malloc, the loader, constructors run
# by dlopen, memtrace's tracer) all lie in the libraries that are read.
SKIP_SYMBOLS = ("libpython",)
_BRE_SPECIAL = set(".[]*^$\\")


def _bre_escape(text):
    return "".join("\\" + ch if ch in _BRE_SPECIAL else ch for ch in text)


def load_symbols():
    try:
        listing = gdb.execute("info sharedlibrary", to_string=True)
    except gdb.error:
        return
    for line in listing.splitlines():
        parts = line.split()
        if not parts or not parts[-1].startswith("/"):
            continue
        path = parts[-1]
        if any(skip in os.path.basename(path) for skip in SKIP_SYMBOLS):
            continue
        try:
            gdb.execute(f"sharedlibrary {_bre_escape(path)}", to_string=True)
        except gdb.error:
            pass


def frame_names(thread):
    """Function names of a thread's innermost frames (None where unknown)."""
    thread.switch()
    names = []
    try:
        frame = gdb.newest_frame()
        while frame is not None and len(names) < MAX_FRAMES:
            names.append(frame.name())
            frame = frame.older()
    except gdb.error:
        pass
    return names


# The interpreter's own allocator (pymalloc) takes no lock dlopen/pthread_create need.
PYTHON_PREFIXES = ("Py", "_Py", "pymalloc")


def is_safe(names):
    """Not inside code that holds a lock our calls need."""
    if not names:
        return False
    return not any(
        name and not name.startswith(PYTHON_PREFIXES) and any(t in name for t in UNSAFE)
        for name in names
    )


def pick_thread(inferior):
    """A safe thread, the main one first; None when each is busy in an unsafe place."""
    threads = sorted(inferior.threads(), key=lambda t: t.num)
    for thread in threads:
        if is_safe(frame_names(thread)):
            return thread
    return None


def value(expression):
    """Evaluate in the target and return an int (pointers as unsigned)."""
    return int(gdb.parse_and_eval(expression).cast(gdb.lookup_type("long")))


def call(address, signature, *args):
    """Call the function at an absolute address with integer/pointer arguments."""
    arguments = ", ".join(str(a) for a in args)
    return value(f"(({signature}){address})({arguments})")


def address_of(name):
    """Absolute address of a function in the target (libc's dlopen/dlsym/mmap)."""
    try:
        return value(f"(long)&{name}")
    except gdb.error:
        return 0


def inject(job):
    """Map the page, load the helper, start its thread; returns the result fields."""
    inferior = gdb.selected_inferior()
    if inferior.pid == 0 or not inferior.threads():
        return {"ok": False, "kind": "attach", "message": "gdb could not attach"}
    thread = pick_thread(inferior)
    if thread is None:
        return {"ok": False, "kind": "busy", "message": "every thread is inside the allocator"}
    thread.switch()
    funcs = {name: address_of(name) for name in ("mmap", "munmap", "dlopen", "dlsym", "dlerror")}
    missing = [name for name, addr in funcs.items() if not addr]
    if missing:
        return {"ok": False, "kind": "symbols", "message": f"the target has no {missing}"}
    helper = job["helper"].encode() + b"\0"
    symbol = job["symbol"].encode() + b"\0"
    code = job["code"].encode() + b"\0"
    size = (RESERVED + len(helper) + len(symbol) + len(code) + 4095) // 4096 * 4096
    page = call(funcs["mmap"], "void *(*)(void *, unsigned long, int, int, int, long)",
                0, size, 3, 0x22, -1, 0)  # PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS
    if page in (0, -1) or page & 0xFFF:
        return {"ok": False, "kind": "inject", "message": "mmap failed in the target"}

    def unmap():
        call(funcs["munmap"], "int (*)(void *, unsigned long)", page, size)

    p_helper = page + RESERVED
    inferior.write_memory(p_helper, helper + symbol + code)
    p_symbol = p_helper + len(helper)
    p_code = p_symbol + len(symbol)
    handle = call(funcs["dlopen"], "void *(*)(const char *, int)", p_helper, 2)  # RTLD_NOW
    if not handle:
        message = "dlopen failed"
        err = call(funcs["dlerror"], "char *(*)(void)")
        if err:
            message = gdb.Value(err).cast(gdb.lookup_type("char").pointer()).string()
        unmap()
        return {"ok": False, "kind": "helper", "message": message}
    spawn = call(funcs["dlsym"], "void *(*)(void *, const char *)", handle, p_symbol)
    if not spawn:
        unmap()
        return {"ok": False, "kind": "helper", "message": "helper has no spawn function"}
    rc = call(spawn, "int (*)(void *, unsigned long, const char *)", page, size, p_code)
    if rc != 0:
        unmap()
        return {"ok": False, "kind": "inject",
                "message": f"pthread_create failed: {os.strerror(rc)}"}
    return {"ok": True, "thread": thread.ptid[1]}


def main():
    setup()
    load_symbols()
    try:
        result = inject(json.loads(os.environ["MEMTRACE_ATTACH_JOB"]))
    except gdb.error as exc:
        result = {"ok": False, "kind": "gdb", "message": str(exc).splitlines()[0]}
    except Exception as exc:  # noqa: BLE001 - whatever happens, report and detach
        result = {"ok": False, "kind": "gdb", "message": f"{type(exc).__name__}: {exc}"}
    report(**result)
    try:
        gdb.execute("detach", to_string=True)
    except gdb.error:
        pass


main()
