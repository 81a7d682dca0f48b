# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Every stack's memory in use at an instant, stored as what changed since the instant
before (model/timeline.py): the C loops.

A snapshot is `live_snapshot()`'s layout: (live bytes, live count) int64 pairs by stack
id. A change set is (stack id, live bytes, live count) int64 triples sorted by stack id;
applied to the snapshot before it, it gives the next one exactly.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint32_t
from libc.stdlib cimport qsort

from memtrace_core.reader._reader cimport MT_STACK_CHANGED, StreamReader, mt_stack


cdef int _by_id(const void *a, const void *b) noexcept nogil:
    cdef uint32_t x = (<const uint32_t *>a)[0]
    cdef uint32_t y = (<const uint32_t *>b)[0]
    return (x > y) - (x < y)


def takes_changes(reader) -> bool:
    """Whether take_live_changes() can read this reader (the C reader)."""
    return isinstance(reader, StreamReader)


def take_live_changes(StreamReader reader) -> bytes:
    """The change set of every stack whose counters changed since the last call (the
    reader's changed list, which this empties: nothing else may take it meanwhile)."""
    cdef size_t n = reader.s.n_changed, i
    cdef uint32_t sid
    cdef mt_stack *st
    qsort(reader.s.changed, n, sizeof(uint32_t), _by_id)
    cdef bytes buf = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(24 * n))
    cdef int64_t *out = <int64_t *>PyBytes_AS_STRING(buf)  # filled before it is shared
    for i in range(n):
        sid = reader.s.changed[i]
        st = &reader.s.stacks[sid]
        st.flags &= ~MT_STACK_CHANGED
        out[3 * i] = sid
        out[3 * i + 1] = st.live_bytes
        out[3 * i + 2] = st.live_count
    reader.s.n_changed = 0
    return buf


def diff(const unsigned char[::1] old, const unsigned char[::1] new) -> bytes:
    """The change set from snapshot `old` to snapshot `new` (stacks past the end of `old`
    count as zero there)."""
    cdef size_t n_old = <size_t>old.shape[0] // 16, n_new = <size_t>new.shape[0] // 16
    cdef const int64_t *o = <const int64_t *>&old[0] if n_old else NULL
    cdef const int64_t *w = <const int64_t *>&new[0] if n_new else NULL
    cdef size_t i, k = 0
    cdef int64_t ob, oc
    for i in range(n_new):
        ob = o[2 * i] if i < n_old else 0
        oc = o[2 * i + 1] if i < n_old else 0
        if w[2 * i] != ob or w[2 * i + 1] != oc:
            k += 1
    cdef bytes buf = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(24 * k))
    cdef int64_t *out = <int64_t *>PyBytes_AS_STRING(buf)
    k = 0
    for i in range(n_new):
        ob = o[2 * i] if i < n_old else 0
        oc = o[2 * i + 1] if i < n_old else 0
        if w[2 * i] != ob or w[2 * i + 1] != oc:
            out[3 * k] = <int64_t>i
            out[3 * k + 1] = w[2 * i]
            out[3 * k + 2] = w[2 * i + 1]
            k += 1
    return buf


def apply(unsigned char[::1] snapshot, const unsigned char[::1] changes) -> None:
    """Apply a change set to a snapshot in place (every stack id in it must fit)."""
    cdef size_t n = <size_t>snapshot.shape[0] // 16, m = <size_t>changes.shape[0] // 24, i
    if m == 0:
        return
    cdef int64_t *s = <int64_t *>&snapshot[0] if n else NULL
    cdef const int64_t *c = <const int64_t *>&changes[0]
    cdef int64_t sid
    for i in range(m):
        sid = c[3 * i]
        if sid < 0 or <size_t>sid >= n:
            raise IndexError(f"stack {sid} is past the snapshot's {n} stacks")
        s[2 * sid] = c[3 * i + 1]
        s[2 * sid + 1] = c[3 * i + 2]


def merge(const unsigned char[::1] first, const unsigned char[::1] then) -> bytes:
    """One change set doing what `first` then `then` do (a stack in both: `then`'s)."""
    cdef size_t na = <size_t>first.shape[0] // 24, nb = <size_t>then.shape[0] // 24
    cdef const int64_t *a = <const int64_t *>&first[0] if na else NULL
    cdef const int64_t *b = <const int64_t *>&then[0] if nb else NULL
    cdef size_t i = 0, j = 0, k = 0
    while i < na and j < nb:  # the merged length first
        if a[3 * i] < b[3 * j]:
            i += 1
        elif a[3 * i] > b[3 * j]:
            j += 1
        else:
            i += 1
            j += 1
        k += 1
    k += (na - i) + (nb - j)
    cdef bytes buf = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(24 * k))
    cdef int64_t *out = <int64_t *>PyBytes_AS_STRING(buf)
    cdef const int64_t *src
    i = j = k = 0
    while i < na or j < nb:
        if j >= nb or (i < na and a[3 * i] < b[3 * j]):
            src = &a[3 * i]
            i += 1
        else:
            if i < na and a[3 * i] == b[3 * j]:
                i += 1
            src = &b[3 * j]
            j += 1
        out[3 * k] = src[0]
        out[3 * k + 1] = src[1]
        out[3 * k + 2] = src[2]
        k += 1
    return buf
