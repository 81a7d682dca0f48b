/* Ground-truth C extension for the reporter tests (module `mtreport`).
 *
 * leak():  rep_entry -> rep_outer -> rep_middle -> rep_inline_alloc (static, forced inline)
 *          -> malloc: 3 blocks of REP_LEAK_BASE + REP_LEAK_STEP*i bytes, all kept until exit;
 *          rep_middle also calls rep_scratch (not inlined) -> malloc, freed at once.
 * spike(): rep_spike -> malloc(REP_SPIKE), written, then freed: the run's heap peak.
 * churn(n): n rounds of rep_churn's pattern (see there): temporary allocations whose
 *          count depends on the threshold, between allocations that are not temporary.
 * `# @name` style markers (C comments) let the tests find line numbers.
 * Built by tests/report/conftest.py with gcc -g -O1 -fPIC -shared; -DREP_REBUILT gives a
 * library with other code and another build-id (the stale-library test).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define REP_LEAK_BASE 3000017
#define REP_LEAK_STEP 1009
#define REP_SCRATCH 2000003
#define REP_SPIKE 67108879

static void *volatile kept[16];
static volatile int n_kept;
static void *volatile sink;

#ifdef REP_REBUILT
NOINLINE int rep_padding(int x) { /* shifts every function below */
    volatile int acc = x;
    for (int i = 0; i < 100; i++) acc = acc * 31 + i;
    return acc;
}
#endif

static inline __attribute__((always_inline)) void *rep_inline_alloc(size_t n) {
    void *p = malloc(n); /* @inline_malloc */
    sink = p;
    return p;
}

NOINLINE void *rep_scratch(size_t n) {
    void *p = malloc(n); /* @scratch_malloc */
    sink = p;
    return p;
}

NOINLINE void rep_middle(int i) {
    void *p = rep_inline_alloc(REP_LEAK_BASE + REP_LEAK_STEP * (size_t)i); /* @inline_call */
    kept[n_kept++] = p;
    void *q = rep_scratch(REP_SCRATCH); /* @scratch_call */
    free(q);
    sink = p;
}

NOINLINE void rep_outer(void) {
    for (int i = 0; i < 3; i++) {
        rep_middle(i); /* @middle_call */
    }
    sink = NULL;
}

NOINLINE void rep_entry(void) {
    rep_outer(); /* @outer_call */
    sink = NULL;
}

NOINLINE void rep_spike(void) {
    char *p = malloc(REP_SPIKE); /* @spike_malloc */
    if (p != NULL) {
        memset(p, 1, REP_SPIKE);
    }
    sink = p;
    free(p);
    sink = NULL;
}

#define REP_T_NOW 1111   /* freed at once: temporary for every threshold */
#define REP_T_KEEP 2221  /* kept until the next round frees it late: never temporary */
#define REP_T_TWO 3331   /* 2 other allocations before its free: temporary from N = 2 */
#define REP_T_ONE 4441   /* 1 other before its free: temporary from N = 1 */
#define REP_T_ZERO 5551  /* none: temporary for every threshold */
static void *volatile held;

NOINLINE void rep_churn(void) {
    void *t = malloc(REP_T_NOW); /* @t_now */
    sink = t;
    free(t);
    void *k = malloc(REP_T_KEEP); /* @t_keep */
    sink = k;
    void *c = malloc(REP_T_TWO); /* @t_two */
    void *d = malloc(REP_T_ONE); /* @t_one */
    void *e = malloc(REP_T_ZERO); /* @t_zero */
    sink = c; sink = d; sink = e;
    free(c);
    free(d);
    free(e);
    free(held); /* the previous round's kept block: many allocations ago */
    held = k;
}

static PyObject *churn(PyObject *self, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n < 0 && PyErr_Occurred()) return NULL;
    for (long i = 0; i < n; i++) rep_churn(); /* @churn_call */
    Py_RETURN_NONE;
}

static PyObject *leak(PyObject *self, PyObject *unused) {
    rep_entry(); /* @entry_call */
    Py_RETURN_NONE;
}

static PyObject *spike(PyObject *self, PyObject *unused) {
    rep_spike();
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"leak", leak, METH_NOARGS, "leak 3 blocks through nested C functions"},
    {"spike", spike, METH_NOARGS, "allocate and free one big block (the peak)"},
    {"churn", churn, METH_O, "n rounds of temporary and kept allocations"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "mtreport", NULL, -1, methods};

PyMODINIT_FUNC PyInit_mtreport(void) {
    return PyModule_Create(&module);
}
