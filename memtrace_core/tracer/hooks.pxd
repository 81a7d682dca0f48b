# hooks.h: the GOT/PLT hooks (hooks.c), for Cython.

cdef extern from "hooks.h" nogil:
    int mt_hooks_init()
    int mt_hooks_install()
    void mt_hooks_uninstall()
    void mt_pymem_install()
    void mt_pymem_uninstall()
