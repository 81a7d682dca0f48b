# treecore.h: the call-tree builder's C helpers (hash map, node record), for Cython.

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "treecore.h":
    enum: MT_NC
    ctypedef struct mt_u64map:
        size_t count
    ctypedef struct mt_node:
        int64_t total[MT_NC]
        uint32_t parent, frame, first_child, next_sibling, prev_sibling
        uint32_t refs, depth, pend
        uint8_t alive, repeat
    uint32_t MT_NONE
    int mt_map_init(mt_u64map *m)
    void mt_map_free(mt_u64map *m)
    void mt_map_clear(mt_u64map *m)
    uint32_t mt_map_get(const mt_u64map *m, uint64_t key)
    int mt_map_put(mt_u64map *m, uint64_t key, uint32_t val)
    void mt_map_del(mt_u64map *m, uint64_t key)
    double mt_now()
    void mt_prefetch(const void *p) nogil
