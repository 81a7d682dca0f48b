/* The attach helper's native half: the injector (memtrace's own, or gdb) dlopen()s this
 * module in the target and calls memtrace_attach_spawn() from a thread it stopped. That call
 * only starts a detached thread (no Python, no waiting), so the injector never blocks inside
 * the target. The new thread takes the
 * GIL the ordinary way - the interpreter hands it over only at a safe point, also while the
 * program sleeps in a syscall with the GIL released - runs the agent's code, releases the
 * GIL and unmaps the page the injector wrote the code into. */
#define _GNU_SOURCE
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>

struct spawn_job {
    void *page;
    unsigned long page_size;
    const char *code;
};

static void *spawn_main(void *arg) {
    struct spawn_job job = *(struct spawn_job *)arg;
    if (Py_IsInitialized()) {
        PyGILState_STATE state = PyGILState_Ensure();
        /* The code catches every exception itself and reports through the channel. */
        PyRun_SimpleString(job.code);
        PyGILState_Release(state);
    }
    munmap(job.page, job.page_size);
    return NULL;
}

/* Start the agent thread; 0 or an errno. `code` lies inside [page, page + page_size) and the
 * page's first MEMTRACE_SPAWN_RESERVED bytes are ours: the job lives there, so this call
 * never allocates (with tracing active, malloc here would enter the tracer's hooks from a
 * thread gdb stopped at an arbitrary point). */
#define MEMTRACE_SPAWN_RESERVED 64
__attribute__((visibility("default"))) int memtrace_attach_spawn(void *page,
                                                                 unsigned long page_size,
                                                                 const char *code) {
    _Static_assert(sizeof(struct spawn_job) <= MEMTRACE_SPAWN_RESERVED, "job too large");
    struct spawn_job *job = page;
    job->page = page;
    job->page_size = page_size;
    job->code = code;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Signals stay with the program's own threads (SIGINT must still reach the main one). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, spawn_main, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}
