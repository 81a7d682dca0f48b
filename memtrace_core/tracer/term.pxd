# term.h: the C exit paths and fatal signals (term.c), for Cython.

cdef extern from "term.h" nogil:
    void mt_term_install()
    void mt_term_uninstall()
    void mt_term_stop_begin()
    void mt_term_stop_end()
