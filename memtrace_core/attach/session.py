"""One attachment to a running process: check it, open the channel, inject the agent (with
memtrace's own ptrace injector, or gdb with `--method gdb`), hand out the stream's read end;
later detach through the same method.

Used by `memtrace attach` (capture file) and `memtrace live --attach` (TUI). Detach prefers a
second short injection that runs the tracer's own stop in the target (trailer written, hooks
restored, writer thread joined, fd closed); if that fails, closing our end of the FIFO is the
fallback: the tracer sees EPIPE and removes its hooks by itself.
"""

from __future__ import annotations

import os
import time
from typing import Any

from memtrace_core.attach import agent, channel, inject, injector, target, trust
from memtrace_core.errors import UserError

TIMEOUT = 15.0  # seconds for a whole attach or detach, gdb included
# Once the helper thread runs, the agent's work is bounded (imports, starting the tracer):
# it gets this much more to finish rather than be left half done on a loaded machine.
AGENT_GRACE = 30.0
METHODS = ("ptrace", "gdb")


def _timeout() -> float:
    """$MEMTRACE_ATTACH_TIMEOUT shortens the limit (tests of the hang path)."""
    try:
        return min(TIMEOUT, float(os.environ.get("MEMTRACE_ATTACH_TIMEOUT", TIMEOUT)))
    except ValueError:
        return TIMEOUT


def helper_library() -> str:
    """The compiled helper (attach/_spawn*.so) gdb loads into the target."""
    from memtrace_core.attach import _spawn

    return os.path.abspath(_spawn.__file__)


class Attachment:
    """begin() -> fd (drain it at once), wait_ready(), ... detach() once, close()."""

    def __init__(self, pid: int, native: bool = False, python_allocators: bool = False,
                 method: str = "ptrace", allow_untrusted_paths: bool = False,
                 sample_bytes: int = 0) -> None:
        if method not in METHODS:
            raise UserError(f"unknown attach method {method!r} (choose {' or '.join(METHODS)})")
        self.pid = pid
        self.method = method
        self.stopped_ms: list[float] = []  # how long the target's thread was held, per call
        self.allow_untrusted_paths = allow_untrusted_paths
        self.trust_problems: list[str] = []  # found and overridden (--allow-untrusted-paths)
        self.native = native
        self.python_allocators = python_allocators
        self.sample_bytes = sample_bytes  # 0: exact; the seed comes from our environment
        self.target: target.Target | None = None
        self.channel: channel.Channel | None = None
        self.attach_seconds = 0.0
        self.attached = False
        self.note = ""  # the agent's last note about what the figures cannot show (pools.py)
        self._requests = 0
        self._t0 = 0.0
        self._pending: tuple[str, str, float, float] | None = None
        self._helper = ""
        self._injected_after = 0.0  # seconds the last injection took, retries included

    def alive(self) -> bool:
        return target.alive(self.pid)

    def begin(self) -> int:
        """Check, open the channel and inject the agent; returns the stream's read end, which
        the caller must start draining at once (the tracer writes before the agent reports:
        a full FIFO nobody reads would stall the target), then call wait_ready(). The fd is
        non-blocking and polls silent until the agent opens the FIFO (poll before reading;
        a read before that returns b""); the caller closes it."""
        self._t0 = time.monotonic()
        self.target = target.inspect(self.pid)
        if self.method == "gdb":
            inject.check_gdb(inject.find_gdb())
        sources = trust.agent_sources(helper_library())
        self.channel = channel.Channel(self.target.uid, self.pid)
        try:
            self.trust_problems = trust.check_and_copy(
                sources, self.channel.dir, self.target.uid, self.channel.chown_to,
                self.allow_untrusted_paths)
            self._helper = os.path.join(self.channel.dir, sources[0].relative)
            from memtrace_core.sampling import seed_from_env

            self._pending = self._inject("attach", native=self.native,
                                         python_allocators=self.python_allocators,
                                         sample_bytes=self.sample_bytes,
                                         sample_seed=seed_from_env())
        except BaseException:
            self.close()
            raise
        fd = self.channel.read_fd
        self.channel.read_fd = -1
        return fd

    def wait_ready(self) -> None:
        """Wait for the agent's report: tracing runs, or a UserError (channel removed)."""
        assert self._pending is not None
        try:
            self._await(*self._pending)
        except BaseException:
            self.close()
            raise
        finally:
            self._pending = None
        self.attached = True
        self.attach_seconds = time.monotonic() - self._t0

    def detach(self) -> bool:
        """Stop tracing in the target through gdb; False when it could not (the caller then
        closes the stream's read end, and the tracer stops on the closed channel)."""
        if not self.attached:
            return False
        self.attached = False
        if not self.alive():
            return False
        try:
            self._await(*self._inject("detach"))
        except UserError:
            return False
        return True

    def close(self) -> None:
        """Remove the channel directory."""
        if self.channel is not None:
            self.channel.close()

    def _inject(self, action: str, **fields: Any) -> tuple[str, str, float, float]:
        """Start one agent action in the target: (action, status name, limit, deadline)."""
        assert self.channel is not None
        limit = _timeout()
        deadline = time.monotonic() + limit
        self._requests += 1
        name = f"{action}-{self._requests}"
        request = {"action": action, "fifo": self.channel.fifo,
                   "status": self.channel.status_path(name),
                   "started": self.channel.started_path(name), **fields}
        job = {"helper": self._helper, "symbol": "memtrace_attach_spawn",
               "code": agent.bootstrap_code(os.path.join(self.channel.dir, "lib"), request)}
        # gdb gets the time left minus what stopping it may take (SIGINT, then SIGKILL).
        gdb_deadline = deadline - min(4.0, limit / 3)
        while True:
            if self.method == "ptrace":
                result = injector.inject(self.pid, job, gdb_deadline)
            else:
                try:
                    result = inject.run_gdb(self.pid, job, gdb_deadline)
                except inject.GdbTimeout:
                    raise UserError(
                        f"gdb did not finish within {limit:g} s; gave up and left process "
                        f"{self.pid} running untraced"
                    ) from None
            if result.get("ok"):
                if "stopped_ms" in result:
                    self.stopped_ms.append(result["stopped_ms"])
                self._injected_after = limit - (deadline - time.monotonic())
                return action, name, limit, deadline
            if result.get("kind") == "busy" and time.monotonic() < gdb_deadline - 0.5:
                time.sleep(0.05)  # every thread was inside malloc/dlopen: try again
                continue
            if not self.alive():
                raise UserError(f"process {self.pid} exited during {action}")
            if result.get("kind") == "busy":
                raise UserError(f"could not {action}: every thread of process {self.pid} "
                                f"stayed inside the allocator or loader for {limit:g} s")
            raise UserError(f"could not {action}: {result.get('message')}")

    def _await(self, action: str, name: str, limit: float, deadline: float) -> None:
        """Wait for the agent's status of one action."""
        assert self.channel is not None
        try:
            status = self.channel.wait_status(name, deadline, self.alive)
            if status is None and self.channel.started(name):
                status = self.channel.wait_status(name, time.monotonic() + AGENT_GRACE,
                                                  self.alive)
                if status is None:
                    raise UserError(
                        f"memtrace's agent started in process {self.pid} but did not finish "
                        f"its {action} within {limit + AGENT_GRACE:g} s; gave up")
        except channel.TargetGone:
            raise UserError(f"process {self.pid} exited during {action}") from None
        if status is None:
            raise UserError(
                f"process {self.pid} did not run memtrace's helper thread within {limit:g} s "
                f"(started {self._injected_after:.1f} s in; a thread holds the GIL without "
                f"releasing it); gave up, the process runs on untraced"
            )
        if not status.get("ok"):
            raise UserError(str(status.get("message") or f"{action} failed in the target"))
        if status.get("message"):  # an ok status's message is a note (agent.py)
            self.note = str(status["message"])
