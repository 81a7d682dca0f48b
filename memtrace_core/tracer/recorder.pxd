# recorder.h: the recorder (recorder.c), for Cython.

from libc.stdint cimport uint8_t, uint64_t


cdef extern from "recorder.h" nogil:
    int mt_tracking
    int MT_DEFAULT_NATIVE_DEPTH
    enum mt_start_result:
        MT_START_OK, MT_START_RUNNING, MT_START_NOMEM, MT_START_NO_WRITER
    int mt_recorder_start(int fd, int native, int native_depth, int compress, const char *header,
                          size_t header_len, unsigned long long sample_mean,
                          unsigned long long sample_seed)
    void mt_recorder_stop(int exit_code, int has_code)
    void mt_set_untraced_children(long n)
    int mt_recorder_failed()
    int mt_recorder_running()
    void mt_recorder_python_gone()
    int mt_recorder_native_summary(uint64_t **ips, size_t *n_ips, uint8_t **maps,
                                   size_t *maps_len)
    void mt_set_thread_name(long os_tid, const char *name, int rename)
    int mt_recorder_rings()
    long mt_recorder_packed_bytes()
    long mt_recorder_ring_resident()
    long mt_recorder_memo_resident()
    void mt_recorder_release()
    long mt_recorder_held_bytes()
