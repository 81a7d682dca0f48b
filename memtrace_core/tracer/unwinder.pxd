# unwinder.h: libunwind's system calls while memtrace unwinds (unwinder.c), for Cython.

cdef extern from "unwinder.h" nogil:
    void mt_unwind_mask_counts(long *blocks, long *answered, long *checked)
