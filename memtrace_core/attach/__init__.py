"""Attach to a running CPython process: target checks (target.py), the private FIFO channel
(channel.py), gdb injection (inject.py + gdb_inject.py, run by gdb's own Python), the helper
library gdb loads (spawn.c), the agent that runs inside the target (agent.py), and the
attach/detach sequence (session.py).

Importing this package must stay cheap: the agent imports it inside the target.
"""
