# The wire format's one definition (format.h), for Cython modules: the reader decodes with
# these names and builds its Python constants from them.

cdef extern from "format.h":
    const char *MT_MAGIC
    const char *MT_COMPRESSED_MAGIC
    int MT_MAGIC_LEN, MT_FORMAT_VERSION, MT_FORMAT_SAMPLED_ORDINALS
    enum mt_record_type:
        MT_REC_HEADER, MT_REC_CODE, MT_REC_PYNODE, MT_REC_NATIVENODE, MT_REC_ALLOC,
        MT_REC_FREE, MT_REC_THREAD, MT_REC_MAPS, MT_REC_TICK, MT_REC_TRAILER,
        MT_REC_ALLOC_SAME, MT_REC_FREE_SAME, MT_REC_MAPS_DELTA,
        MT_REC_PYNODE_NEXT, MT_REC_NATIVENODE_NEXT, MT_REC_ALLOC_AGAIN
    int MT_REC_LAST, MT_ALLOCATOR_LAST
    const char *mt_allocator_name(int code)
