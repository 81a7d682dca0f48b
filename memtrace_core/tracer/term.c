/* SIGTERM while tracing (see term.h). Everything here runs in signal handlers too: only
 * async-signal-safe calls, plain flags. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "recorder.h"
#include "term.h"

#define MT_TERM_RETRY_US 10000      /* a SIGTERM that landed inside the tracer: look again */
#define MT_TERM_DEADLINE_TICKS 300  /* ... for at most 3 s, then the process ends anyway */

static volatile sig_atomic_t g_pending;   /* a SIGTERM waits for the tracer to be left */
static volatile sig_atomic_t g_dying;     /* flushing for SIGTERM: the watchdog is armed */
static volatile sig_atomic_t g_ticks;
static volatile int g_stopping;           /* a stop of the recorder is under way */

static void die_by_sigterm(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGTERM, &dfl, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(SIGTERM);
    _exit(128 + SIGTERM); /* not reached: the default action ends the process */
}

static void on_alarm(int sig);

static void arm(long usec) {
    struct sigaction timer;
    memset(&timer, 0, sizeof timer);
    timer.sa_handler = on_alarm;
    sigemptyset(&timer.sa_mask);
    sigaction(SIGALRM, &timer, NULL);
    struct itimerval when;
    memset(&when, 0, sizeof when);
    when.it_value.tv_sec = usec / 1000000;
    when.it_value.tv_usec = usec % 1000000;
    setitimer(ITIMER_REAL, &when, NULL);
}

/* This thread is outside the tracer: write what is buffered and the trailer, then end. */
static void flush_and_die(void) {
    if (__sync_bool_compare_and_swap(&g_stopping, 0, 1)) {
        g_dying = 1;
        arm((long)MT_TERM_DEADLINE_TICKS * MT_TERM_RETRY_US); /* the watchdog */
        mt_recorder_stop(-SIGTERM, 1);
        die_by_sigterm();
    }
    /* Another thread is stopping the recorder: it ends the process when done. */
    g_pending = 1;
    arm(MT_TERM_RETRY_US);
}

static void try_now(void) {
    if (!mt_recorder_running()) die_by_sigterm();
    if (!mt_guard) flush_and_die();
    g_pending = 1;
    arm(MT_TERM_RETRY_US);
}

static void on_alarm(int sig) {
    (void)sig;
    if (g_dying || ++g_ticks > MT_TERM_DEADLINE_TICKS) die_by_sigterm();
    try_now();
}

static void on_term(int sig) {
    (void)sig;
    g_ticks = 0;
    try_now();
}

void mt_term_install(void) {
    g_pending = g_dying = g_ticks = 0;
    g_stopping = 0;
    struct sigaction old;
    if (sigaction(SIGTERM, NULL, &old) != 0) return;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == on_term) return;
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) return; /* the program's */
    struct sigaction ours;
    memset(&ours, 0, sizeof ours);
    ours.sa_handler = on_term;
    sigemptyset(&ours.sa_mask);
    ours.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &ours, NULL);
}

void mt_term_uninstall(void) {
    struct sigaction now;
    if (sigaction(SIGTERM, NULL, &now) != 0) return;
    if ((now.sa_flags & SA_SIGINFO) || now.sa_handler != on_term) return; /* replaced since */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGTERM, &dfl, NULL);
}

void mt_term_stop_begin(void) {
    while (!__sync_bool_compare_and_swap(&g_stopping, 0, 1)) {
        /* a SIGTERM is flushing on another thread: it ends the process */
        usleep(1000);
    }
}

void mt_term_stop_end(void) {
    g_stopping = 0;
    if (g_pending) die_by_sigterm();
}
