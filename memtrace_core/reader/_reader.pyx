# cython: boundscheck=False, wraparound=False, cdivision=True
"""StreamReader: decodes a memtrace stream (docs/FORMAT.md) and aggregates it.

The hot records (ALLOC, FREE, PYNODE, NATIVENODE) are decoded and aggregated by the C loop
in aggregate.c without creating Python objects; the rare ones (HEADER, CODE, THREAD, MAPS,
TICK, TRAILER) come back here and are decoded into Python values by a small msgpack decoder.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize

from memtrace_core.wire.format cimport (
    MT_ALLOCATOR_LAST, MT_COMPRESSED_MAGIC, MT_FORMAT_SAMPLED_ORDINALS, MT_FORMAT_VERSION, MT_MAGIC, MT_MAGIC_LEN,
    MT_REC_CODE, MT_REC_HEADER, MT_REC_MAPS, MT_REC_MAPS_DELTA, MT_REC_THREAD, MT_REC_TICK,
    MT_REC_TRAILER,
    mt_allocator_name,
)

from memtrace_core.errors import UserError

from memtrace_core.frames import CUT_MARKER_BASE

# The wire format's constants, from its one definition (memtrace_core/wire/format.h).
MAGIC = MT_MAGIC[:MT_MAGIC_LEN]
COMPRESSED_MAGIC = MT_COMPRESSED_MAGIC[:MT_MAGIC_LEN]
cdef bytes _MAGIC = MAGIC
FORMAT_VERSION = MT_FORMAT_VERSION
ALLOCATOR_NAMES = {code: mt_allocator_name(code).decode()
                   for code in range(1, MT_ALLOCATOR_LAST + 1) if mt_allocator_name(code)}
"""allocator code -> name (FORMAT.md's table)"""
MAX_DEPTH = 64


class CaptureError(UserError):
    """Corrupt, foreign or empty stream; the message is one line (a UserError for the CLI)."""


class _Malformed(Exception):
    """A rare record decoded but does not have the shape FORMAT.md gives it."""


cdef inline uint64_t _be(const uint8_t *p, int n) noexcept:
    cdef uint64_t v = 0
    cdef int i
    for i in range(n):
        v = (v << 8) | p[i]
    return v


cdef object _decode(const uint8_t *buf, size_t *pos, size_t end, int depth):
    """One msgpack value from a span already checked complete by mp_skip (bounds re-checked)."""
    if depth > MAX_DEPTH:
        raise _Malformed("values nested too deeply")
    if pos[0] >= end:
        raise _Malformed("record ends early")
    cdef const uint8_t *p = buf + pos[0]
    cdef uint8_t b = p[0]
    cdef size_t n = 0
    cdef int hdr = 1
    cdef uint64_t u
    cdef double d
    cdef float f
    cdef uint32_t u32
    pos[0] += 1
    if b <= 0x7f:
        return b
    if b >= 0xe0:
        return <int>b - 256
    if b == 0xc0:
        return None
    if b == 0xc2:
        return False
    if b == 0xc3:
        return True
    if (b & 0xe0) == 0xa0:
        n = b & 0x1f
        return _text(buf, pos, end, n)
    if (b & 0xf0) == 0x90:
        return _list(buf, pos, end, b & 0x0f, depth)
    if (b & 0xf0) == 0x80:
        return _map(buf, pos, end, b & 0x0f, depth)
    cdef int width = 0
    if b in (0xcc, 0xd0, 0xd9, 0xc4):
        width = 1
    elif b in (0xcd, 0xd1, 0xda, 0xc5, 0xdc, 0xde):
        width = 2
    elif b in (0xce, 0xd2, 0xca, 0xdb, 0xc6, 0xdd, 0xdf):
        width = 4
    elif b in (0xcf, 0xd3, 0xcb):
        width = 8
    else:
        raise _Malformed(f"unsupported msgpack byte 0x{b:02x}")
    if end - pos[0] < <size_t>width:
        raise _Malformed("record ends early")
    u = _be(p + 1, width)
    pos[0] += width
    if b in (0xcc, 0xcd, 0xce, 0xcf):
        return u
    if b in (0xd0, 0xd1, 0xd2, 0xd3):
        if width < 8:
            u = (u ^ (1ULL << (8 * width - 1))) - (1ULL << (8 * width - 1))
        return <int64_t>u
    if b == 0xca:
        u32 = <uint32_t>u
        memcpy(&f, &u32, 4)
        return <double>f
    if b == 0xcb:
        memcpy(&d, &u, 8)
        return d
    if b in (0xd9, 0xda, 0xdb):
        return _text(buf, pos, end, u)
    if b in (0xc4, 0xc5, 0xc6):
        if end - pos[0] < u:
            raise _Malformed("record ends early")
        pos[0] += u
        return (<const char *>(buf + pos[0] - u))[:u]
    if b in (0xdc, 0xdd):
        return _list(buf, pos, end, u, depth)
    return _map(buf, pos, end, u, depth)


cdef object _text(const uint8_t *buf, size_t *pos, size_t end, uint64_t n):
    if end - pos[0] < n:
        raise _Malformed("record ends early")
    cdef const char *s = <const char *>(buf + pos[0])
    pos[0] += n
    return s[:n].decode("utf-8", "replace")


cdef list _list(const uint8_t *buf, size_t *pos, size_t end, uint64_t n, int depth):
    if n > end - pos[0]:
        raise _Malformed("record ends early")
    cdef list out = []
    cdef uint64_t i
    for i in range(n):
        out.append(_decode(buf, pos, end, depth + 1))
    return out


cdef dict _map(const uint8_t *buf, size_t *pos, size_t end, uint64_t n, int depth):
    if n > end - pos[0]:
        raise _Malformed("record ends early")
    cdef dict out = {}
    cdef uint64_t i
    for i in range(n):
        key = _decode(buf, pos, end, depth + 1)
        value = _decode(buf, pos, end, depth + 1)
        try:
            out[key] = value
        except TypeError:
            raise _Malformed("unhashable map key") from None
    return out


def _is_int(v) -> bool:
    return type(v) is int


def _is_num(v) -> bool:
    return type(v) in (int, float)


def maps_snapshot(bytes data) -> list:
    """A MAPS snapshot (a msgpack array of MAPS entries, docs/FORMAT.md) decoded as the
    stream's MAPS records are; the tracer gives one at the end of a recording
    (tracer/_tracer.pyx: native_summary). CaptureError when it is not one."""
    cdef size_t pos = 0
    cdef const uint8_t *buf = data
    try:
        maps = _decode(buf, &pos, len(data), 0)
        if pos != <size_t>len(data) or type(maps) is not list or not all(
            type(m) is list and len(m) == 4 for m in maps
        ):
            raise _Malformed("not a MAPS snapshot")
    except _Malformed as exc:
        raise CaptureError(f"bad maps snapshot: {exc}") from None
    return maps


cdef class StreamReader:
    """Incremental reader: feed() it bytes from a file or a pipe, read the aggregates."""

    def __cinit__(self):
        if mt_state_init(&self.s) < 0:
            raise MemoryError()
        self._ready = True
        self._tail = b""
        self._tail_pos = 0
        self._magic_done = False
        self._failed = None
        self._offset = 0
        self._stop_at_us = -1
        self.stopped = False
        self.decode_without_gil = False
        self.header = {}
        self.trailer = None
        self.truncated = False
        self.codes = {}
        self.threads = {}
        self.maps = []
        self.maps_history = []
        self.history = []
        self.untraced_children = 0  # so far (TICK), or at the end (TRAILER)

    def __dealloc__(self):
        if self._ready:
            mt_state_free(&self.s)

    # ---- input ----

    def feed(self, data) -> int:
        """Decode every complete record in data (after any kept tail); keep the rest."""
        if self._failed is not None:
            raise CaptureError(self._failed)
        cdef int64_t before = self.s.records
        cdef size_t start = 0  # where this call's bytes begin in buf
        if len(self._tail) > self._tail_pos:
            if len(data) == 0:  # resuming after a stop: the kept chunk, not a copy of it
                buf = self._tail
                start = <size_t>self._tail_pos
            else:
                buf = self._tail[self._tail_pos:] + bytes(data)
        else:
            buf = data
        cdef const uint8_t[::1] view = buf
        self._tail = b""
        self._tail_pos = 0
        cdef size_t n = <size_t>view.shape[0]
        cdef size_t pos = start
        cdef size_t rec_end = 0
        cdef int kind = 0
        cdef int r
        if n == start:
            return 0
        cdef const uint8_t *p = &view[0]
        if not self._magic_done:  # (start is 0 here: only a stop leaves a start)
            if memcmp(p, <const char *>_MAGIC, n if n < 8 else 8) != 0:
                self._fail("not a memtrace capture (bad magic)", -1)
            if n < 8:
                self._tail = bytes(view)
                return 0
            self._magic_done = True
            pos = 8
        cdef bint free_gil = self.decode_without_gil
        while True:
            if free_gil:
                with nogil:
                    r = mt_decode(&self.s, p, n, &pos, &kind, &rec_end)
            else:
                r = mt_decode(&self.s, p, n, &pos, &kind, &rec_end)
            if r == MT_DONE:
                break
            if r == MT_OTHER:
                try:
                    self._other(kind, p, pos, rec_end)
                except (_Malformed, ValueError, TypeError, OverflowError) as exc:
                    self._offset += pos - start
                    self._fail(str(exc), self._offset)
                pos = rec_end
                self.s.records += 1
                if kind == MT_REC_TICK and 0 <= self._stop_at_us <= self.s.last_time_us:
                    self._stop_at_us = -1
                    self.stopped = True  # the state of this instant; the rest waits
                    break
                continue
            self._offset += pos - start
            if r == MT_NOMEM:
                self._failed = "out of memory while reading the capture"
                raise MemoryError(self._failed)
            self._fail(self.s.error.decode(), self._offset)
        if pos < n:
            if self.stopped and type(buf) is bytes:  # most of a chunk: kept as it is
                self._tail = buf
                self._tail_pos = <Py_ssize_t>pos
            else:  # an unfinished record (or a caller's buffer, which may change)
                self._tail = bytes(view[pos:n])
        self._offset += pos - start
        return self.s.records - before

    def read_nodes_only(self) -> None:
        """From now on, read the stack tries and the other records but count no ALLOC or
        FREE: what naming a capture's native frames needs (native_ips), at a fraction of
        the cost of aggregating every allocation."""
        self.s.nodes_only = 1

    def stop_at(self, int64_t t_us) -> None:
        """Make feed() stop right after the first TICK whose time is t_us or later (the
        records after it are kept for the next feed()): the aggregates are then those of
        that instant. Once, until called again; feed(b"") resumes with the kept bytes."""
        self._stop_at_us = t_us
        self.stopped = False

    def set_temporary_threshold(self, n: int) -> None:
        """Count as temporary an allocation freed by its thread before that thread made
        more than n other allocations (memray's and heaptrack's definition; 1 by default).
        Only before the first ALLOC record is read."""
        if not 0 <= n <= MT_TEMP_MAX:
            raise ValueError(f"the temporary threshold must be 0 to {MT_TEMP_MAX}")
        if mt_set_temp_threshold(&self.s, <uint32_t>n) < 0:
            raise ValueError("the temporary threshold is set before reading allocations")

    def finish(self) -> None:
        """End of input: bytes of an unfinished record left over mean a truncated stream."""
        if len(self._tail) > self._tail_pos:
            self.truncated = True

    def mark_corrupt(self, str reason) -> None:
        """Record corruption found outside the record decoder (e.g. in the zlib layer)."""
        if self._failed is None:
            self._failed = reason

    cdef _fail(self, str reason, int64_t offset):
        if offset >= 0:
            self._failed = f"corrupt capture at byte {offset}: {reason}"
        else:
            self._failed = reason
        raise CaptureError(self._failed)

    cdef _other(self, int kind, const uint8_t *buf, size_t start, size_t end):
        cdef size_t pos = start
        rec = _decode(buf, &pos, end, 0)
        if pos != end:
            raise _Malformed("record has trailing bytes")
        n = len(rec)
        if kind == MT_REC_HEADER:
            if n != 2 or type(rec[1]) is not dict:
                raise _Malformed("HEADER is not [0, map]")
            version = rec[1].get("format")
            if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
                raise _Malformed(f"unsupported format version {version!r}")
            if self.s.header_seen:
                raise _Malformed("second HEADER")
            sample = rec[1].get("sample_bytes", 0)
            if sample is not None and (type(sample) is not int or not 0 <= sample < (1 << 62)):
                raise _Malformed("bad sample_bytes in HEADER")
            self.header = rec[1]
            self.s.sample_mean = sample or 0
            self.s.format = version
            self.s.ordinals = bool(sample) and version >= MT_FORMAT_SAMPLED_ORDINALS
            self.s.header_seen = 1
        elif kind == MT_REC_CODE:
            if n != 5 or not (_is_int(rec[1]) and type(rec[2]) is str and type(rec[3]) is str
                              and _is_int(rec[4])):
                raise _Malformed("bad CODE record")
            self.codes[rec[1]] = (rec[2], rec[3], rec[4])
        elif kind == MT_REC_THREAD:
            if n != 4 or not (_is_int(rec[1]) and _is_int(rec[2]) and type(rec[3]) is str):
                raise _Malformed("bad THREAD record")
            self.threads[rec[1]] = (rec[2], rec[3])
        elif kind == MT_REC_MAPS:
            if n != 2 or type(rec[1]) is not list or not all(
                type(m) is list and len(m) == 4 for m in rec[1]
            ):
                raise _Malformed("bad MAPS record")
            self.maps = rec[1]
            self.maps_history.append(rec[1])
        elif kind == MT_REC_MAPS_DELTA:
            self._maps_delta(rec)
        elif kind == MT_REC_TICK:
            if n not in (3, 4) or not (_is_int(rec[1]) and _is_int(rec[2])) or not (
                -(1 << 63) <= rec[1] < (1 << 63)
            ) or (n == 4 and not (_is_int(rec[3]) and rec[3] >= 0)):
                raise _Malformed("bad TICK record")
            if n == 4:
                self.untraced_children = rec[3]
            self.s.last_time_us = rec[1]
            if self.s.peak_by_us < 0:
                self.s.peak_by_us = rec[1]
            self.history.append((rec[1], self.s.heap_bytes, rec[2]))
        elif kind == MT_REC_TRAILER:
            if n not in (3, 4) or not _is_num(rec[1]) or not (
                rec[2] is None or _is_int(rec[2])
            ) or (n == 4 and not (_is_int(rec[3]) and rec[3] >= 0)):
                raise _Malformed("bad TRAILER record")
            self.trailer = {"end_time": float(rec[1]), "exit_code": rec[2]}
            if n == 4:
                self.trailer["untraced_children"] = rec[3]
                self.untraced_children = rec[3]
            self.s.trailer_seen = 1
        else:
            raise _Malformed(f"unexpected record type {kind}")

    cdef _maps_delta(self, list rec):
        """MAPS_DELTA: the previous snapshot without the objects at the listed load bases,
        then the added objects; the result is a full snapshot, as a MAPS would give."""
        if len(rec) != 3 or type(rec[1]) is not list or type(rec[2]) is not list or not all(
            type(m) is list and len(m) == 4 for m in rec[2]
        ) or not all(_is_int(b) for b in rec[1]):
            raise _Malformed("bad MAPS_DELTA record")
        if not self.maps_history:
            raise _Malformed("MAPS_DELTA before any MAPS")
        removed = set(rec[1])
        kept = [m for m in self.maps if m[1] not in removed]
        if len(removed) != len(rec[1]) or len(self.maps) - len(kept) != len(removed):
            raise _Malformed("MAPS_DELTA removes an object that is not exactly one of the "
                             "previous snapshot")
        snapshot = kept + rec[2]
        self.maps = snapshot
        self.maps_history.append(snapshot)

    # ---- metadata ----

    @property
    def complete(self) -> bool:
        """TRAILER seen: the traced program ended normally."""
        return self.trailer is not None

    @property
    def error(self):
        """The corruption message once feed() raised CaptureError, else None."""
        return self._failed

    @property
    def sample_bytes(self) -> int:
        """The capture's sampling mean in bytes; 0 for an exact capture. When sampled, every
        count and byte figure is an estimate (docs/FORMAT.md)."""
        return <int64_t>self.s.sample_mean

    @property
    def records(self) -> int:
        return self.s.records

    @property
    def bytes_read(self) -> int:
        """Bytes of the stream consumed by complete records (magic included)."""
        return self._offset

    def py_stack(self, pynode: int) -> list:
        """[(code_id, line, is_entry), ...] innermost first; [] for node 0."""
        out = []
        cdef uint64_t node = self._py_node(pynode)
        while node:
            out.append((self.s.py_code[node], self.s.py_line[node],
                        bool(self.s.py_flags[node] & 2)))
            node = self.s.py_parent[node]
        return out

    def py_frame(self, pynode: int):
        """(code_id, line, is_entry) of one node, or None for node 0."""
        cdef uint64_t node = self._py_node(pynode)
        if node == 0:
            return None
        return (self.s.py_code[node], self.s.py_line[node], bool(self.s.py_flags[node] & 2))

    def native_stack(self, nativenode: int) -> list:
        """[ip, ...] innermost first; [] for node 0. A cut marker (docs/FORMAT.md), sent as
        the innermost node, is given last: it stands for the frames beyond the outermost."""
        out = []
        cdef uint64_t node = self._nat_node(nativenode)
        while node:
            out.append(self.s.nat_ip[node])
            node = self.s.nat_parent[node]
        if out and out[0] >= CUT_MARKER_BASE:
            out.append(out.pop(0))
        return out

    def native_ips(self) -> set:
        """Every address of the native stack trie (cut markers included). The tracer defines
        a node only for a stack it records an allocation with, so these are the addresses
        of every native stack an allocation was recorded with."""
        cdef uint64_t node
        out = set()
        for node in range(1, self.s.nat_cap):
            if self.s.nat_flags[node] & 1:
                out.add(self.s.nat_ip[node])
        return out

    def take_new_native_ips(self) -> list:
        """The addresses of the native nodes read since the last call (each node once; an
        address shared by several nodes may repeat): `view` has them named by the worker
        while the rest of the capture is read."""
        out = []
        cdef size_t i
        for i in range(1, self.s.nat_cap):
            if self.s.nat_flags[i] == 1:  # defined, not taken yet
                self.s.nat_flags[i] = 3
                out.append(self.s.nat_ip[i])
        return out

    cdef uint64_t _py_node(self, node) except? 0:
        if node == 0:
            return 0
        if not (0 < node < self.s.py_cap) or not (self.s.py_flags[<uint64_t>node] & 1):
            raise IndexError(f"unknown Python node {node}")
        return node

    cdef uint64_t _nat_node(self, node) except? 0:
        if node == 0:
            return 0
        if not (0 < node < self.s.nat_cap) or not (self.s.nat_flags[<uint64_t>node] & 1):
            raise IndexError(f"unknown native node {node}")
        return node

    # ---- totals ----

    @property
    def total_allocated_bytes(self) -> int:
        return self.s.total_bytes

    @property
    def total_allocations(self) -> int:
        return self.s.total_allocs

    @property
    def total_frees(self) -> int:
        """FREE records that released (all or part of) a known allocation."""
        return self.s.total_frees

    @property
    def ignored_frees(self) -> int:
        """FREE records of addresses not live (allocated before tracing, e.g. attach)."""
        return self.s.ignored_frees

    @property
    def implicit_frees(self) -> int:
        """ALLOCs of an address still live (its free was never seen): the old block dropped."""
        return self.s.implicit_frees

    @property
    def temporary_threshold(self) -> int:
        return self.s.temp_threshold

    @property
    def temporary_allocations(self) -> int:
        """Allocations freed by their own thread within the threshold (see
        set_temporary_threshold)."""
        return self.s.temp_allocs

    @property
    def temporary_bytes(self) -> int:
        return self.s.temp_bytes

    @property
    def heap_bytes(self) -> int:
        return self.s.heap_bytes

    @property
    def heap_allocations(self) -> int:
        return self.s.heap_allocs

    @property
    def peak_bytes(self) -> int:
        return self.s.peak_bytes

    @property
    def peak_allocations(self) -> int:
        return self.s.peak_allocs

    @property
    def peak_time_us(self) -> int:
        return self.s.peak_time_us

    @property
    def peak_by_us(self) -> int:
        """The first TICK's time after the peak: it was reached between peak_time_us and
        this (the last time seen, when no TICK came after it)."""
        return self.s.peak_by_us if self.s.peak_by_us >= 0 else self.s.last_time_us

    @property
    def last_time_us(self) -> int:
        return self.s.last_time_us

    @property
    def allocator_stats(self) -> dict:
        """allocator code -> (count, bytes) of the allocations it made."""
        cdef int i
        return {
            i: (self.s.allocator_count[i], self.s.allocator_bytes[i])
            for i in range(256)
            if self.s.allocator_count[i]
        }

    @property
    def reserved_bytes(self) -> int:
        """Address space reserved (MMAP_RESERVE: docs/FORMAT.md) and still mapped:
        not heap, in no other figure; memory only where the program touches its pages."""
        return self.s.reserved_bytes

    @property
    def reserved_mappings(self) -> int:
        return self.s.reserved_count

    @property
    def reserved_peak_bytes(self) -> int:
        """The most address space reserved at once."""
        return self.s.reserved_peak

    @property
    def total_reserved_bytes(self) -> int:
        return self.s.reserved_total_bytes

    @property
    def total_reservations(self) -> int:
        return self.s.reserved_total_count

    def reserved_stacks(self) -> list:
        """(sid, bytes, mappings) of every stack with address space reserved there and
        still mapped."""
        cdef size_t i
        return [(i, self.s.stacks[i].reserved_bytes, self.s.stacks[i].reserved_count)
                for i in range(self.s.n_stacks) if self.s.stacks[i].reserved_count]

    @property
    def size_histogram(self) -> list:
        """(power-of-two lower bound, count) of allocation sizes; the bound of size 0 is 0."""
        cdef int i
        return [
            (0 if i == 0 else (<uint64_t>1) << (i - 1), self.s.hist[i])
            for i in range(MT_HIST_BUCKETS)
            if self.s.hist[i]
        ]

    # ---- stacks ----

    @property
    def n_stacks(self) -> int:
        return self.s.n_stacks

    cdef mt_stack *_stack(self, sid) except NULL:
        if not (0 <= sid < <int64_t>self.s.n_stacks):
            raise IndexError(f"unknown stack id {sid}")
        return &self.s.stacks[<size_t>sid]

    def stack_key(self, sid: int) -> tuple:
        """(pynode, nativenode, thread) of a stack id."""
        cdef mt_stack *st = self._stack(sid)
        return (st.py, st.nat, st.thread)

    def stack_counters(self, sid: int) -> tuple:
        """(alloc_bytes, alloc_count, live_bytes, live_count, peak_bytes, peak_count)."""
        cdef mt_stack *st = self._stack(sid)
        return (st.alloc_bytes, st.alloc_count, st.live_bytes, st.live_count,
                st.peak_bytes, st.peak_count)

    def live_snapshot(self) -> bytes:
        """Every stack's (live bytes, live count) now, as native int64 pairs by stack id
        (what the timeline keeps per instant)."""
        cdef size_t i, n = self.s.n_stacks
        cdef bytes buf = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(16 * n))
        cdef int64_t *out = <int64_t *>PyBytes_AS_STRING(buf)  # filled before it is shared
        for i in range(n):
            out[2 * i] = self.s.stacks[i].live_bytes
            out[2 * i + 1] = self.s.stacks[i].live_count
        return buf

    def peak_snapshot(self) -> bytes:
        """Every stack's (bytes, count) in use at the heap's peak, as live_snapshot()
        gives them (the timeline's peak instant)."""
        cdef size_t i, n = self.s.n_stacks
        cdef bytes buf = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(16 * n))
        cdef int64_t *out = <int64_t *>PyBytes_AS_STRING(buf)  # filled before it is shared
        for i in range(n):
            out[2 * i] = self.s.stacks[i].peak_bytes
            out[2 * i + 1] = self.s.stacks[i].peak_count
        return buf

    def stack_temporary(self, sid: int) -> tuple:
        """(temporary bytes, temporary count) of a stack id."""
        cdef mt_stack *st = self._stack(sid)
        return (st.temp_bytes, st.temp_count)

    def stacks(self) -> list:
        """Every stack at once: (pynode, nativenode, thread, alloc_bytes, alloc_count,
        live_bytes, live_count, peak_bytes, peak_count), index = stack id."""
        cdef size_t i
        cdef mt_stack *st
        out = []
        for i in range(self.s.n_stacks):
            st = &self.s.stacks[i]
            out.append((st.py, st.nat, st.thread, st.alloc_bytes, st.alloc_count,
                        st.live_bytes, st.live_count, st.peak_bytes, st.peak_count))
        return out

    def take_changed(self) -> list:
        """Stack ids whose counters changed since the previous call (new ones included)."""
        cdef size_t i
        cdef uint32_t sid
        out = []
        for i in range(self.s.n_changed):
            sid = self.s.changed[i]
            self.s.stacks[sid].flags &= ~MT_STACK_CHANGED
            out.append(sid)
        self.s.n_changed = 0
        return out

    def live_allocations(self) -> list:
        """(address, size, sid, allocator) of every allocation in use now, one per allocation:
        an mmap that a partial munmap split or trimmed gives the address of its first mapped
        byte and the bytes still mapped (its exact ranges: mmap_pieces()). A sampled capture
        of format 5 on has no heap addresses: a heap block gives its ALLOC's ordinal."""
        cdef size_t i
        cdef mt_live *e
        cdef mt_piece *piece
        out = []
        for i in range(self.s.live.cap):
            e = &self.s.live.slots[i]
            if e.addr != MT_NO_ADDR:
                out.append((e.addr, e.size, e.sid, e.allocator))
        mappings = {}
        for i in range(self.s.n_pieces):
            piece = &self.s.pieces[i]
            if piece.reserved:
                continue
            have = mappings.get(piece.mapping)
            if have is None:
                mappings[piece.mapping] = [piece.start, piece.end - piece.start, piece.sid, 9]
            else:
                have[1] += piece.end - piece.start
        out.extend(tuple(m) for m in mappings.values())
        return out

    def mmap_pieces(self) -> list:
        """(address, size, sid) of every mapped range of the live mmap allocations, sorted
        (reservations are not allocations: reserved_pieces() gives theirs)."""
        return self._pieces(0)

    def reserved_pieces(self) -> list:
        """(address, size, sid) of every range of address space reserved and still mapped,
        sorted."""
        return self._pieces(1)

    def _pieces(self, uint32_t reserved) -> list:
        cdef size_t i
        return [
            (self.s.pieces[i].start, self.s.pieces[i].end - self.s.pieces[i].start,
             self.s.pieces[i].sid)
            for i in range(self.s.n_pieces) if self.s.pieces[i].reserved == reserved
        ]
