/* Ground-truth C extension for the tracer tests.
 *
 * Every function allocates exactly known sizes through exactly known allocators and keeps an
 * exactly known subset alive until exit, so a capture can be checked to the byte. Functions
 * are METH_NOARGS returning None: the CPython call itself then allocates nothing, so every
 * allocation attributed to the calling Python line comes from here. The expected figures
 * live in tests/tracer/tracer_support.py (keep the two in step).
 *
 * Built by tests/conftest.py with: gcc -g -O1 -fPIC -shared -pthread.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define PAGE 4096

/* Pointers stored here stay allocated until exit: the "leaks" the tests expect. */
static void *volatile kept[4096];
static volatile int n_kept;
/* Every pointer passes through here so the compiler cannot elide a malloc/free pair. */
static void *volatile sink;

static void keep(void *p) {
    kept[__atomic_fetch_add(&n_kept, 1, __ATOMIC_SEQ_CST)] = p;
}

/* ---- nested pattern: outer -> middle -> (inline helper | leaf) -> malloc ------------ */

static inline __attribute__((always_inline)) void *mt_inline_alloc(size_t n) {
    void *p = malloc(n);
    sink = p;
    return p;
}

NOINLINE void *mt_leaf(size_t n) {
    void *p = malloc(n);
    sink = p;
    return p;
}

NOINLINE void mt_middle(int i) {
    void *a = mt_inline_alloc(4000037 + 1009 * (size_t)i); /* freed */
    void *b = mt_leaf(5000011 + 1013 * (size_t)i);         /* kept */
    free(a);
    keep(b);
    sink = b;
}

NOINLINE void mt_outer(void) {
    for (int i = 0; i < 3; i++) {
        mt_middle(i);
    }
    sink = NULL;
}

static PyObject *leak_pattern(PyObject *self, PyObject *unused) {
    mt_outer();
    Py_RETURN_NONE;
}

static PyObject *noop(PyObject *self, PyObject *unused) {
    Py_RETURN_NONE;
}

/* ---- allocator families --------------------------------------------------------------- */

static PyObject *calloc_test(PyObject *self, PyObject *unused) {
    void *a = calloc(3, 10007); /* kept */
    void *b = calloc(7, 1001);  /* freed */
    sink = b;
    free(b);
    keep(a);
    Py_RETURN_NONE;
}

static PyObject *realloc_test(PyObject *self, PyObject *unused) {
    /* chain 1: NULL -> 11003 -> 15013 (grow) -> 3001 (shrink) -> 0 (frees) */
    void *p = realloc(NULL, 11003);
    p = realloc(p, 15013);
    p = realloc(p, 3001);
    sink = p;
    p = realloc(p, 0);
    sink = p;
    /* chain 2: NULL -> 2003 -> 17011, kept */
    void *q = realloc(NULL, 2003);
    q = realloc(q, 17011);
    keep(q);
    Py_RETURN_NONE;
}

static PyObject *reallocarray_test(PyObject *self, PyObject *unused) {
    void *r = reallocarray(NULL, 5, 1001);
    r = reallocarray(r, 9, 1001); /* kept: 9009 */
    keep(r);
    Py_RETURN_NONE;
}

static PyObject *aligned_test(PyObject *self, PyObject *unused) {
    void *p = NULL;
    if (posix_memalign(&p, 64, 12345) != 0) { /* kept */
        return PyErr_NoMemory();
    }
    keep(p);
    void *a = aligned_alloc(256, 256 * 41); /* freed */
    sink = a;
    free(a);
    void *m = memalign(128, 23456); /* kept */
    keep(m);
    void *v = valloc(13579); /* freed */
    sink = v;
    free(v);
    Py_RETURN_NONE;
}

static PyObject *pvalloc_test(PyObject *self, PyObject *unused) {
    void *p = pvalloc(5000); /* kept; glibc rounds the size up to a page multiple */
    keep(p);
    Py_RETURN_NONE;
}

static void *anon_map(size_t len) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static PyObject *mmap_test(PyObject *self, PyObject *unused) {
    char *a = anon_map(8 * PAGE); /* tail unmapped: 6 pages stay, one mapping */
    char *b = anon_map(3 * PAGE); /* fully unmapped */
    if (a == NULL || b == NULL) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    a[0] = 1;
    munmap(a + 6 * PAGE, 2 * PAGE);
    munmap(b, 3 * PAGE);
    Py_RETURN_NONE;
}

static PyObject *mmap_split_test(PyObject *self, PyObject *unused) {
    char *c = anon_map(5 * PAGE); /* middle page unmapped: 4 pages stay, in two pieces */
    if (c == NULL) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    munmap(c + 2 * PAGE, PAGE);
    Py_RETURN_NONE;
}

static PyObject *mmap64_test(PyObject *self, PyObject *unused) {
    void *p = mmap64(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { /* kept: 4 pages */
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* ---- threads ------------------------------------------------------------------------- */

#define CHURN 20000

/* CHURN malloc/free of (1000 + i) bytes, then one kept block of (7000 + i) bytes. */
static void churn(long i) {
    for (int k = 0; k < CHURN; k++) {
        void *p = malloc(1000 + (size_t)i);
        sink = p;
        free(p);
    }
    keep(malloc(7000 + (size_t)i));
}

static PyObject *py_churn(PyObject *self, PyObject *arg) {
    long i = PyLong_AsLong(arg);
    if (i == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    churn(i);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static pthread_barrier_t start_line;

static void *pthread_main(void *arg) {
    long i = (long)arg;
    char name[16];
    snprintf(name, sizeof name, "mtpth-%ld", i);
    pthread_setname_np(pthread_self(), name);
    pthread_barrier_wait(&start_line);
    for (int k = 0; k < CHURN; k++) {
        void *p = malloc(3000 + (size_t)i);
        sink = p;
        free(p);
    }
    keep(malloc(9000 + (size_t)i));
    return NULL;
}

/* 8 pthreads named mtpth-0..7, started together, each CHURN malloc/free of (3000 + i)
 * bytes and one kept block of (9000 + i) bytes. */
static PyObject *pthreads_test(PyObject *self, PyObject *unused) {
    pthread_t t[8];
    int rc = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_barrier_init(&start_line, NULL, 8);
    for (long i = 0; i < 8; i++) {
        rc |= pthread_create(&t[i], NULL, pthread_main, (void *)i);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
    }
    pthread_barrier_destroy(&start_line);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        PyErr_SetString(PyExc_RuntimeError, "pthread_create failed");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *set_os_thread_name(PyObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL) {
        return NULL;
    }
    pthread_setname_np(pthread_self(), name);
    Py_RETURN_NONE;
}

/* ---- misc ---------------------------------------------------------------------------- */

/* n blocks of the given size, kept: for the fork and SIGKILL tests. */
static PyObject *keep_blocks(PyObject *self, PyObject *args) {
    Py_ssize_t n, size;
    if (!PyArg_ParseTuple(args, "nn", &n, &size)) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        keep(malloc((size_t)size));
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"noop", noop, METH_NOARGS, NULL},
    {"leak_pattern", leak_pattern, METH_NOARGS, NULL},
    {"calloc_test", calloc_test, METH_NOARGS, NULL},
    {"realloc_test", realloc_test, METH_NOARGS, NULL},
    {"reallocarray_test", reallocarray_test, METH_NOARGS, NULL},
    {"aligned_test", aligned_test, METH_NOARGS, NULL},
    {"pvalloc_test", pvalloc_test, METH_NOARGS, NULL},
    {"mmap_test", mmap_test, METH_NOARGS, NULL},
    {"mmap_split_test", mmap_split_test, METH_NOARGS, NULL},
    {"mmap64_test", mmap64_test, METH_NOARGS, NULL},
    {"churn", py_churn, METH_O, NULL},
    {"pthreads_test", pthreads_test, METH_NOARGS, NULL},
    {"set_os_thread_name", set_os_thread_name, METH_O, NULL},
    {"keep_blocks", keep_blocks, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "mtext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_mtext(void) {
    return PyModule_Create(&module);
}
