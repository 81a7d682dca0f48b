# pystack.h: the Python frame-chain reader (pystack.c), for Cython.

cdef extern from "pystack.h":
    void mt_set_root_code(void *code)
    object mt_own_stack_function()
