# writer.h: the capture file writer (writer.c), for Cython.

from libc.stdint cimport uint64_t


cdef extern from "writer.h" nogil:
    unsigned long long MT_CAPTURE_FLUSH_NS
    unsigned int MT_CAPTURE_BLOCK_BYTES
    int MT_CAPTURE_LEVEL
    int MT_CAPTURE_STORE_RATIO
    double MT_CAPTURE_STORE_RATE
    unsigned int MT_CAPTURE_JUDGE_BYTES
    unsigned int MT_CAPTURE_PROBE_BYTES
    unsigned int MT_CAPTURE_PROBE_MAX_BYTES
    ctypedef struct mt_capture:
        int fd
        int error
        int pending
        int store_ratio
        int storing
        uint64_t stored
    void mt_capture_take_lock(int fd)
    int mt_capture_writer_alive(int fd)
    int mt_capture_open(mt_capture *c, int fd, uint64_t flush_ns, size_t block_bytes)
    int mt_capture_sampled(mt_capture *c)
    int mt_capture_write(mt_capture *c, const void *data, size_t length)
    int mt_capture_flush_due(const mt_capture *c)
    int mt_capture_flush(mt_capture *c)
    int mt_capture_finish(mt_capture *c)
    void mt_capture_release(mt_capture *c)
