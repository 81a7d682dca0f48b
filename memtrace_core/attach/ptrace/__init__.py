"""memtrace's own ptrace injector (C): see remote.h."""
