/* Python stacks read from the interpreter's frame chain at allocation time.
 *
 * Why this design (issue 2, item 7): reading the current thread's _PyInterpreterFrame chain
 * costs nothing per Python call and O(depth) per traced allocation, while a shadow stack kept
 * by a profile hook costs on every call, including the many calls that never allocate through
 * malloc (pymalloc serves small objects). The chain of the *current* thread is only changed by
 * that thread, which is inside our hook, so it is stable without the GIL. Frame objects are
 * never created; strings are read from the code object's compact unicode data. */
#ifndef MEMTRACE_PYSTACK_H
#define MEMTRACE_PYSTACK_H

#include <stdint.h>
#include <stddef.h>

#define MT_MAX_PY_DEPTH 512

typedef struct {
    void *code;       /* PyCodeObject*, borrowed: alive while its frame is on the stack */
    void *linetable;  /* co_linetable, part of the code's identity (addresses get reused) */
    int32_t lasti;    /* instruction index in the code */
    int32_t is_entry; /* first frame run by one C call of the evaluation loop */
} mt_pyframe;

/* Fill frames innermost first; returns the depth (0 when the thread runs no Python). */
int mt_capture_python(mt_pyframe *frames, int max);

/* Where the frames of a Python stack found unchanged lay (mt_python_unchanged): the
 * thread state, its frames' addresses and what each held. The next test loads each frame
 * through the address kept here rather than through the link it follows, so the loads need
 * not wait for each other (a walk is one chain of loads, each after the one before; a C
 * library writing megabytes between two allocations pushes the frames out of the first
 * cache levels, and the walk then waited for ~5 misses in a row: 11 M mallocs through
 * ctypes, 6% of the traced run). Each address is still only read once it has been found
 * in the live chain (the frame before points to it). */
#define MT_PYKEY_FRAMES 16 /* deeper stacks are walked */
typedef struct {
    const void *frame;     /* the _PyInterpreterFrame */
    const void *code;      /* its code (3.13: f_executable) */
    const void *instr;     /* its instruction pointer */
    const void *linetable; /* its code's co_linetable; NULL: none read */
    intptr_t tag;          /* 3.11: is_entry; 3.12 on: owner */
} mt_pykey_frame;

typedef struct {
    int n;              /* frames kept; -1: no key (deeper, or nothing found unchanged) */
    const void *ts;     /* the thread state */
    const void *cframe; /* 3.11, 3.12: the thread state's cframe */
    const void *end;    /* what the outermost kept frame links to: the root's frame, or NULL */
    mt_pykey_frame fr[MT_PYKEY_FRAMES];
} mt_pykey;

/* 1 when the thread's Python stack is prev's (root first, depth > 0 frames, as
 * mt_capture_python would give them innermost first): key (NULL: none) is tested first;
 * else one walk that stops at the first frame that differs, and keeps in key where the
 * frames lay when they are prev's. key must be reset (n = -1) whenever prev changes. Why:
 * a C library's allocations come from one Python stack, call after call (11 M mallocs
 * through ctypes: the capture and its comparison were a fifth of the tracer's time). */
int mt_python_unchanged(const mt_pyframe *prev, int depth, mt_pykey *key);

/* Frames from this code object outwards are memtrace's own runner: never reported. */
void mt_set_root_code(void *code);

/* The program's first call: fn(*args) with the thread's Python frames on a stack of their
 * own, laid out as under plain python, and the thread's recursion depths so far lent back,
 * plus call_levels: the C call levels that calling fn takes and python's own start of a
 * program does not (1 for exec, 0 for a Python function). See pystack.c. A new reference,
 * or NULL with the exception set. */
struct _object;
struct _object *mt_call_on_own_stack(struct _object *fn, struct _object *args, int call_levels);

/* mt_call_on_own_stack as a builtin function call_on_own_stack(fn, args, call_levels): a C
 * function, so the program's tracebacks get no entry for it. */
struct _object *mt_own_stack_function(void);

/* Line number of an instruction index. */
int mt_code_line(void *code, int32_t lasti);
int mt_code_firstline(void *code);

/* Write a code object's qualified name / filename as UTF-8 into out (at most cap bytes);
 * returns the length written. Never allocates. */
size_t mt_code_qualname(void *code, char *out, size_t cap);
size_t mt_code_filename(void *code, char *out, size_t cap);

#endif
