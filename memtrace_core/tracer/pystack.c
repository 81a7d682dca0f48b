/* Python frame-chain walking for CPython 3.10-3.13 (see pystack.h for why).
 *
 * 3.11+: the thread's _PyInterpreterFrame chain; one C call of the evaluation loop runs
 * frames up to the next entry frame. 3.10: the PyFrameObject chain (ts->frame, f_back);
 * every Python frame has its own C call of the evaluation loop, so each one is an entry. */
#define Py_BUILD_CORE 1
#include <Python.h>
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#else
#include <frameobject.h>
#endif

#include <pthread.h>

#include "internal/pycore_runtime.h" /* _PyRuntime: the thread-state key */
#include "pystack.h"
#include "recorder.h" /* mt_guard */

#if PY_VERSION_HEX < 0x030A0000 || PY_VERSION_HEX >= 0x030E0000
#error "memtrace's tracer supports CPython 3.10 to 3.13"
#endif

static void *g_root_code;

/* The calling thread's thread state, as PyGILState_GetThisThreadState finds it (the GIL may
 * be released: a ctypes call), read from its thread-specific key directly: that function
 * reaches pthread_getspecific through two more calls, on every allocation (11 M malloc/free
 * through ctypes: ~2% of the traced run's CPU). Only while the interpreter runs (the
 * tracer's callers test g_python_gone first): the key is made at start-up, deleted at exit. */
#if PY_VERSION_HEX >= 0x030C0000
#define MT_AUTO_TSS (_PyRuntime.autoTSSkey)
#else
#define MT_AUTO_TSS (_PyRuntime.gilstate.autoTSSkey)
#endif
static inline PyThreadState *this_thread_state(void) {
    return (PyThreadState *)pthread_getspecific(MT_AUTO_TSS._key);
}

void mt_set_root_code(void *code) { g_root_code = code; }

#if PY_VERSION_HEX < 0x030B0000
int mt_capture_python(mt_pyframe *frames, int max) {
    PyThreadState *ts = this_thread_state();
    if (ts == NULL) return 0;
    int depth = 0;
    for (PyFrameObject *f = ts->frame; f != NULL && depth < max; f = f->f_back) {
        PyCodeObject *co = f->f_code;
        if (co == NULL) continue;
        if ((void *)co == g_root_code) break;
        frames[depth].code = co;
        frames[depth].linetable = co->co_linetable;
        frames[depth].lasti = f->f_lasti; /* an instruction index since 3.10; -1: not started */
        frames[depth].is_entry = 1;
        depth++;
    }
    return depth;
}

int mt_python_unchanged(const mt_pyframe *prev, int depth, mt_pykey *key) {
    if (key) key->n = -1; /* 3.10: no key, a walk every time */
    PyThreadState *ts = this_thread_state();
    if (ts == NULL) return 0;
    int k = depth; /* prev[k - 1] is the next frame to match, walking outwards */
    for (PyFrameObject *f = ts->frame; f != NULL; f = f->f_back) {
        PyCodeObject *co = f->f_code;
        if (co == NULL) continue;
        if ((void *)co == g_root_code) break;
        if (--k < 0) return 0;
        const mt_pyframe *p = &prev[k];
        if (p->code != (void *)co || p->lasti != f->f_lasti ||
            p->linetable != co->co_linetable || !p->is_entry)
            return 0;
    }
    return k == 0;
}
#else

static inline PyCodeObject *frame_code(_PyInterpreterFrame *f) {
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *exe = f->f_executable;
    if (exe == NULL || !PyCode_Check(exe)) return NULL;
    return (PyCodeObject *)exe;
#else
    return f->f_code;
#endif
}

static inline _PyInterpreterFrame *current_frame(PyThreadState *ts) {
#if PY_VERSION_HEX >= 0x030D0000
    return ts->current_frame;
#else
    return ts->cframe ? ts->cframe->current_frame : NULL;
#endif
}

int mt_capture_python(mt_pyframe *frames, int max) {
    PyThreadState *ts = this_thread_state();
    if (ts == NULL) return 0;
    _PyInterpreterFrame *f = current_frame(ts);
    int depth = 0;
    while (f != NULL && depth < max) {
#if PY_VERSION_HEX >= 0x030C0000
        if (f->owner == FRAME_OWNED_BY_CSTACK) {
            /* A shim frame: the Python frame just inside it was entered from C. */
            if (depth > 0) frames[depth - 1].is_entry = 1;
            f = f->previous;
            continue;
        }
#endif
        PyCodeObject *co = frame_code(f);
        if ((void *)co == g_root_code && co != NULL) break;
        if (co == NULL || _PyFrame_IsIncomplete(f)) {
            f = f->previous;
            continue;
        }
        frames[depth].code = co;
        frames[depth].linetable = co->co_linetable;
        frames[depth].lasti = _PyInterpreterFrame_LASTI(f);
#if PY_VERSION_HEX >= 0x030C0000
        frames[depth].is_entry = 0;
#else
        frames[depth].is_entry = f->is_entry ? 1 : 0;
#endif
        depth++;
        f = f->previous;
    }
    return depth;
}

/* A value the compiler may not take for another it equals (a loaded link, once compared):
 * the key's addresses are loaded from the key, not from the chain. */
#define MT_OPAQUE(v) __asm__("" : "+r"(v))

#if PY_VERSION_HEX >= 0x030D0000
#define FRAME_EXE(f) ((const void *)(f)->f_executable)
#define FRAME_INSTR(f) ((const void *)(f)->instr_ptr)
#else
#define FRAME_EXE(f) ((const void *)(f)->f_code)
#define FRAME_INSTR(f) ((const void *)(f)->prev_instr)
#endif
#if PY_VERSION_HEX >= 0x030C0000
#define FRAME_TAG(f) ((intptr_t)(f)->owner)
#else
#define FRAME_TAG(f) ((intptr_t)(f)->is_entry)
#endif

/* The thread's frames are where the key saw them, each as it was: the same stack. */
static inline int key_holds(PyThreadState *ts, const mt_pykey *k) {
    int n = k->n;
    if (n < 0 || (const void *)ts != k->ts) return 0;
#if PY_VERSION_HEX >= 0x030D0000
    const void *top = ts->current_frame;
#else
    _PyCFrame *cf = (_PyCFrame *)k->cframe;
    MT_OPAQUE(cf);
    if ((const void *)ts->cframe != cf) return 0;
    const void *top = cf->current_frame;
#endif
    if (top != (n ? k->fr[0].frame : k->end)) return 0;
    for (int i = 0; i < n; i++) {
        const mt_pykey_frame *e = &k->fr[i];
        const _PyInterpreterFrame *f = e->frame;
        MT_OPAQUE(f);
        if (FRAME_EXE(f) != e->code || FRAME_INSTR(f) != e->instr || FRAME_TAG(f) != e->tag)
            return 0;
        if (e->linetable != NULL) {
            const PyCodeObject *co = e->code;
            MT_OPAQUE(co);
            if ((const void *)co->co_linetable != e->linetable) return 0;
        }
        if ((const void *)f->previous != (i + 1 < n ? k->fr[i + 1].frame : k->end)) return 0;
    }
    /* The root's frame, when the walk ended at it, is still the root's. */
    const _PyInterpreterFrame *root = k->end;
    MT_OPAQUE(root);
    return root == NULL || FRAME_EXE(root) == (const void *)g_root_code;
}

int mt_python_unchanged(const mt_pyframe *prev, int depth, mt_pykey *key) {
    PyThreadState *ts = this_thread_state();
    if (ts == NULL) return 0;
    if (key != NULL) {
        if (key_holds(ts, key)) return 1;
        key->n = -1;
    }
    _PyInterpreterFrame *f = current_frame(ts);
    int k = depth; /* prev[k - 1] is the next frame to match, walking outwards */
    int kept = 0;  /* frames put in the key so far; -1: too many */
#if PY_VERSION_HEX >= 0x030C0000
    int entry = 0; /* a shim came after the frame matched last */
#endif
    for (; f != NULL; f = f->previous) {
        mt_pykey_frame *e = NULL;
        if (key != NULL && kept >= 0) {
            if (kept == MT_PYKEY_FRAMES) {
                kept = -1;
            } else {
                e = &key->fr[kept++];
                e->frame = f;
                e->code = FRAME_EXE(f);
                e->instr = FRAME_INSTR(f);
                e->linetable = NULL;
                e->tag = FRAME_TAG(f);
            }
        }
#if PY_VERSION_HEX >= 0x030C0000
        if (f->owner == FRAME_OWNED_BY_CSTACK) {
            entry = 1;
            continue;
        }
#endif
        PyCodeObject *co = frame_code(f);
        if ((void *)co == g_root_code && co != NULL) {
            if (e != NULL) kept--; /* the root's frame is where the key ends */
            break;
        }
        if (e != NULL && co != NULL) e->linetable = co->co_linetable;
        /* An incomplete frame is not tested for (its code is read once more): it never
         * matches, as its instruction is before any a complete frame of its code has. */
        if (co == NULL) continue;
#if PY_VERSION_HEX >= 0x030C0000
        /* The frame matched last was entered from C when a shim came after it. */
        if (k < depth && prev[k].is_entry != entry) return 0;
        entry = 0;
#endif
        if (--k < 0) return 0;
        const mt_pyframe *p = &prev[k];
        if (p->code != (void *)co || p->lasti != _PyInterpreterFrame_LASTI(f) ||
            p->linetable != co->co_linetable)
            return 0;
#if PY_VERSION_HEX < 0x030C0000
        if (p->is_entry != (f->is_entry ? 1 : 0)) return 0;
#endif
    }
#if PY_VERSION_HEX >= 0x030C0000
    if (k < depth && prev[k].is_entry != entry) return 0;
#endif
    if (k != 0) return 0;
    if (key != NULL && kept >= 0) {
        key->ts = ts;
#if PY_VERSION_HEX < 0x030D0000
        key->cframe = ts->cframe;
#endif
        key->end = f;
        key->n = kept;
    }
    return 1;
}
#endif


/* What the program's first call is lent (mt_call_on_own_stack): the thread's recursion depth
 * so far, as counted against sys.getrecursionlimit() (Python frames, and before 3.12 C calls
 * too), and from 3.12 its C recursion depth, counted on its own against a fixed limit. */
typedef struct {
    int py, c;
} recursion_loan;

static recursion_loan recursion_lend(int call_levels) {
    PyThreadState *ts = PyThreadState_Get();
    recursion_loan loan = {0, 0};
#if PY_VERSION_HEX >= 0x030D0000
    loan.py = ts->py_recursion_limit - ts->py_recursion_remaining;
    loan.c = Py_C_RECURSION_LIMIT - ts->c_recursion_remaining + call_levels;
#elif PY_VERSION_HEX >= 0x030C0000
    loan.py = ts->py_recursion_limit - ts->py_recursion_remaining;
    loan.c = C_RECURSION_LIMIT - ts->c_recursion_remaining + call_levels;
#elif PY_VERSION_HEX >= 0x030B0000
    loan.py = ts->recursion_limit - ts->recursion_remaining + call_levels;
#else
    loan.py = ts->recursion_depth + call_levels;
#endif
#if PY_VERSION_HEX >= 0x030C0000
    ts->py_recursion_remaining += loan.py;
    ts->c_recursion_remaining += loan.c;
#elif PY_VERSION_HEX >= 0x030B0000
    ts->recursion_remaining += loan.py;
#else
    ts->recursion_depth -= loan.py;
#endif
    return loan;
}

static void recursion_repay(recursion_loan loan) {
    PyThreadState *ts = PyThreadState_Get();
#if PY_VERSION_HEX >= 0x030C0000
    ts->py_recursion_remaining -= loan.py;
    ts->c_recursion_remaining -= loan.c;
#elif PY_VERSION_HEX >= 0x030B0000
    ts->recursion_remaining -= loan.py;
#else
    ts->recursion_depth += loan.py;
#endif
}

/* Since 3.11 CPython keeps a thread's frames in chunks (16 KiB, or the size of a larger
 * frame): a call that finds no room in the current chunk maps a new one, and its return, the
 * new chunk's first frame popped, unmaps it at once. So how deep a program starts decides
 * where its calls cross chunk ends, and a loop whose calls cross one maps and unmaps a chunk
 * at every call. Under plain python a script's first frame is the first of the thread's root
 * chunk (whose first slot stays unused, so that it is never unmapped); memtrace's frames
 * below it would move every crossing and change the program's own allocations (a
 * scikit-learn training run: 11,227 chunk maps under memtrace, 4,493 under python). So the
 * program starts on a root chunk of its own, made as CPython makes one, and the thread's
 * stack is put back when it returns. Made and freed with the guard set: it stands for the
 * root chunk the interpreter made before the program, which no capture records either. */
struct _object *mt_call_on_own_stack(struct _object *fn, struct _object *args, int call_levels) {
    recursion_loan loan = recursion_lend(call_levels);
#if PY_VERSION_HEX >= 0x030B0000
    PyThreadState *ts = PyThreadState_Get();
    _PyStackChunk *saved = ts->datastack_chunk;
    PyObject **saved_top = ts->datastack_top, **saved_limit = ts->datastack_limit;
    size_t size = 16 * 1024; /* CPython's chunk size; the thread's root chunk has it */
    for (_PyStackChunk *c = saved; c != NULL; c = c->previous)
        if (c->previous == NULL && c->size >= size) size = c->size;
    PyObjectArenaAllocator arena;
    PyObject_GetArenaAllocator(&arena);
    int guard = mt_guard;
    mt_guard = 1;
    _PyStackChunk *own = arena.alloc(arena.ctx, size);
    mt_guard = guard;
    if (own != NULL) {
        own->previous = NULL;
        own->size = size;
        own->top = 0;
        ts->datastack_chunk = own;
        ts->datastack_top = &own->data[1];
        ts->datastack_limit = (PyObject **)((char *)own + size);
    }
#endif
    PyObject *result = PyObject_Call((PyObject *)fn, (PyObject *)args, NULL);
#if PY_VERSION_HEX >= 0x030B0000
    if (own != NULL) {
        /* Every frame the call pushed is popped, so its chunk is ours again, empty (were it
         * not, the chunks are left as they are: never freed under a frame). */
        int empty = ts->datastack_chunk == own && ts->datastack_top == &own->data[1];
        ts->datastack_chunk = saved;
        ts->datastack_top = saved_top;
        ts->datastack_limit = saved_limit;
        if (empty) {
            guard = mt_guard;
            mt_guard = 1;
            arena.free(arena.ctx, own, size);
            mt_guard = guard;
        }
    }
#endif
    recursion_repay(loan);
    return result;
}

static PyObject *own_stack_call(PyObject *self, PyObject *args) {
    PyObject *fn, *fn_args;
    int call_levels;
    (void)self;
    if (!PyArg_ParseTuple(args, "OO!i:call_on_own_stack", &fn, &PyTuple_Type, &fn_args,
                          &call_levels))
        return NULL;
    return mt_call_on_own_stack(fn, fn_args, call_levels);
}

static PyMethodDef own_stack_def = {
    "call_on_own_stack", own_stack_call, METH_VARARGS,
    "call_on_own_stack(fn, args, call_levels): fn(*args) on a frame stack of its own and "
    "with the recursion depth so far lent back, as python starts a program; call_levels: "
    "the C call levels calling fn takes that python's own start does not (1 for exec) "
    "(memtrace_core/tracer/pystack.c)."};

struct _object *mt_own_stack_function(void) { return PyCFunction_New(&own_stack_def, NULL); }

int mt_code_line(void *code, int32_t lasti) {
    PyCodeObject *co = (PyCodeObject *)code;
    if (lasti < 0) return co->co_firstlineno;
    return PyCode_Addr2Line(co, lasti * (int)sizeof(_Py_CODEUNIT));
}

int mt_code_firstline(void *code) { return ((PyCodeObject *)code)->co_firstlineno; }

/* UTF-8 of a str object from its canonical representation, without allocating. */
static size_t unicode_utf8(PyObject *s, char *out, size_t cap) {
    if (s == NULL || !PyUnicode_Check(s)) return 0;
#if PY_VERSION_HEX < 0x030C0000
    if (!PyUnicode_IS_READY(s)) return 0;
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    size_t w = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        if (ch < 0x80) {
            if (w + 1 > cap) break;
            out[w++] = (char)ch;
        } else if (ch < 0x800) {
            if (w + 2 > cap) break;
            out[w++] = (char)(0xC0 | (ch >> 6));
            out[w++] = (char)(0x80 | (ch & 0x3F));
        } else if (ch < 0x10000) {
            if (ch >= 0xD800 && ch <= 0xDFFF) ch = 0xFFFD; /* lone surrogate */
            if (w + 3 > cap) break;
            out[w++] = (char)(0xE0 | (ch >> 12));
            out[w++] = (char)(0x80 | ((ch >> 6) & 0x3F));
            out[w++] = (char)(0x80 | (ch & 0x3F));
        } else {
            if (w + 4 > cap) break;
            out[w++] = (char)(0xF0 | (ch >> 18));
            out[w++] = (char)(0x80 | ((ch >> 12) & 0x3F));
            out[w++] = (char)(0x80 | ((ch >> 6) & 0x3F));
            out[w++] = (char)(0x80 | (ch & 0x3F));
        }
    }
    return w;
}

size_t mt_code_qualname(void *code, char *out, size_t cap) {
#if PY_VERSION_HEX >= 0x030B0000
    return unicode_utf8(((PyCodeObject *)code)->co_qualname, out, cap);
#else
    /* 3.10 code objects have no qualified name: the plain name, as 3.10's tracebacks */
    return unicode_utf8(((PyCodeObject *)code)->co_name, out, cap);
#endif
}

size_t mt_code_filename(void *code, char *out, size_t cap) {
    return unicode_utf8(((PyCodeObject *)code)->co_filename, out, cap);
}
