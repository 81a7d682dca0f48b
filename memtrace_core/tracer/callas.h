/* Calling a loader function on behalf of the hook's caller.
 *
 * glibc's dlopen, dlmopen, dlsym and dlvsym look at their return address to find the object
 * that called them: its DT_RPATH/DT_RUNPATH and $ORIGIN for a bare soname, its namespace,
 * and what RTLD_NEXT is next to. A hook that simply calls the real function makes memtrace's
 * own module the caller. mt_call_as() calls the real function with a return address inside
 * the caller's object instead: a `ret` instruction (0xC3 byte) found in the caller's
 * executable segment, which returns at once to the trampoline. So the loader sees the real
 * caller, and the hook still gets control back afterwards (to re-patch, record the maps).
 *
 * Unwinding through that borrowed return address would read the stack with the wrong
 * rules, so a hook that uses it pushes an mt_dlcall with a libunwind context of its own
 * frame: when the recorder's unwinder meets the borrowed address it resumes from there
 * (recorder.c, unwind_steps). */
#ifndef MEMTRACE_CALLAS_H
#define MEMTRACE_CALLAS_H

#include <stdint.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

typedef struct mt_dlcall {
    unw_context_t context;   /* taken in the hook's own frame, before the call */
    uintptr_t gadget;        /* the borrowed return address */
    struct mt_dlcall *prev;  /* an outer call of this thread (dlopen from a constructor) */
    uint64_t id;             /* this thread's calls numbered: the unwinder's cache key */
} mt_dlcall;

/* The calls in progress on this thread, innermost first (initial-exec TLS), and the number
 * of the thread's last call. */
extern __thread mt_dlcall *mt_t_dlcall __attribute__((tls_model("initial-exec")));
extern __thread uint64_t mt_t_dlcalls __attribute__((tls_model("initial-exec")));

/* An address holding a `ret` in the executable segment of the object containing `ra`, or
 * 0 when there is none or borrowing is unsafe here (shadow stacks are enabled). */
uintptr_t mt_caller_gadget(uintptr_t ra);

/* fn(a, b, c) entered with `gadget` as its return address (fn returns a pointer). */
void *mt_call_as(void *fn, uintptr_t gadget, uintptr_t a, uintptr_t b, uintptr_t c);

#endif
