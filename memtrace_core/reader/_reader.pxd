"""The reader's C state, for Cython modules that read its stack tries and counters
directly (the model's tree builder): no Python object per node or stack."""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "aggregate.h":
    ctypedef struct mt_stack:
        int64_t alloc_bytes, alloc_count, live_bytes, live_count, peak_bytes, peak_count
        int64_t temp_bytes, temp_count
        int64_t reserved_bytes, reserved_count
        uint32_t py, nat, thread, flags

    ctypedef struct mt_piece:
        uint64_t start, end
        uint32_t sid, mapping, reserved

    ctypedef struct mt_live:
        uint64_t addr, size
        uint32_t sid, allocator

    ctypedef struct mt_addrmap:
        mt_live *slots
        size_t cap, count

    ctypedef struct mt_state:
        uint32_t *py_parent
        uint64_t *py_code
        int64_t *py_line
        uint8_t *py_flags
        size_t py_cap
        uint32_t *nat_parent
        uint64_t *nat_ip
        uint8_t *nat_flags
        size_t nat_cap
        mt_stack *stacks
        size_t n_stacks
        uint32_t *changed
        size_t n_changed
        mt_addrmap live
        mt_piece *pieces
        size_t n_pieces
        int64_t total_bytes, total_allocs, total_frees, ignored_frees, implicit_frees
        int64_t heap_bytes, heap_allocs, peak_bytes, peak_allocs, peak_time_us, last_time_us
        int64_t peak_by_us
        int64_t allocator_count[256]
        int64_t allocator_bytes[256]
        int64_t reserved_bytes, reserved_count, reserved_peak, reserved_total_bytes
        int64_t reserved_total_count
        int64_t hist[66]
        int64_t records
        uint32_t temp_threshold
        int64_t temp_bytes, temp_allocs
        int header_seen, trailer_seen, format, nodes_only
        const char *error
        double sample_mean
        int ordinals

    int MT_DONE, MT_OTHER, MT_CORRUPT, MT_NOMEM, MT_STACK_CHANGED, MT_HIST_BUCKETS
    int MT_TEMP_MAX
    uint64_t MT_NO_ADDR
    int mt_state_init(mt_state *s)
    void mt_state_free(mt_state *s)
    int mt_set_temp_threshold(mt_state *s, uint32_t n)
    int mt_decode(mt_state *s, const uint8_t *buf, size_t n, size_t *pos, int *type,
                  size_t *rec_end) nogil


cdef class StreamReader:
    cdef mt_state s
    cdef bint _ready
    cdef bytes _tail  # bytes kept for the next feed(): _tail[_tail_pos:]
    cdef Py_ssize_t _tail_pos  # (after a stop, the rest of a whole chunk: not copied)
    cdef bint _magic_done
    cdef object _failed
    cdef int64_t _offset
    cdef int64_t _stop_at_us  # stop feeding after the first TICK at or after it (-1: never)
    cdef readonly bint stopped  # feed() stopped there: the rest of its data is kept
    cdef public bint decode_without_gil  # feed() lets other threads run while it decodes
    cdef readonly dict header
    cdef readonly object trailer
    cdef readonly bint truncated
    cdef readonly dict codes
    cdef readonly dict threads
    cdef readonly list maps
    cdef readonly list maps_history
    cdef readonly list history
    cdef readonly object untraced_children  # child processes run untraced, so far

    cdef _fail(self, str reason, int64_t offset)
    cdef _other(self, int kind, const uint8_t *buf, size_t start, size_t end)
    cdef _maps_delta(self, list rec)
    cdef uint64_t _py_node(self, node) except? 0
    cdef uint64_t _nat_node(self, node) except? 0
    cdef mt_stack *_stack(self, sid) except NULL
