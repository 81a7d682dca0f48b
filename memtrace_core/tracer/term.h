/* SIGTERM while tracing: a process ended by SIGTERM's default action (a Pool's terminate(),
 * `kill`, a container stopping) would lose what is still buffered and its trailer. While a
 * recording is open and the program has not chosen its own disposition, a handler writes
 * both (exit code -15: ended by that signal) and then lets the default action end the
 * process, exactly as without memtrace. A SIGTERM that lands inside the tracer (a record
 * being written, or the final flush of an exit already under way) is acted on as soon as
 * the tracer is left, or when that flush is done; a watchdog ends the process anyway after
 * a few seconds, so SIGTERM never hangs. */
#ifndef MEMTRACE_TERM_H
#define MEMTRACE_TERM_H

/* Take SIGTERM if its disposition is the default one (a program's own handler or SIG_IGN is
 * left alone); already ours (inherited over fork): kept. */
void mt_term_install(void);
/* Give SIGTERM back to the default action if our handler is still the one installed. */
void mt_term_uninstall(void);
/* Every stop of the recorder goes through these two: only one stop runs at a time (a
 * SIGTERM during another stop waits for it), and a SIGTERM that came meanwhile ends the
 * process once the stop is done. */
void mt_term_stop_begin(void);
void mt_term_stop_end(void);

#endif
