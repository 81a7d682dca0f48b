"""Attach runs memtrace's code inside someone else's process, with that process's privileges:
the helper library and the Python modules the agent imports. If another user could write any
of those files, or a directory above them, that user could plant code in the target (root
attaching to a service with memtrace in a shared virtualenv, a group-writable checkout,
/tmp). So, before anything is injected:

- every such file, and every directory above it up to `/`, must be owned by root or by the
  target's user, and not writable by group or others (a directory may be, when it is sticky
  and owned by root or that user, as /tmp is);
- the checked files are copied into the private 0700 channel directory (read through the
  descriptor whose owner and mode were checked), and the target loads and imports only
  those copies: nothing can be swapped between the check and the use.

`--allow-untrusted-paths` turns a refusal into a warning, for people who know what they do.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import stat
from dataclasses import dataclass

from memtrace_core.errors import UserError

# What the agent imports inside the target: these, and every module of the tracer package
# (the runner's helpers change; the whole package is copied and checked).
# tests/attach/test_trust.py checks it against what a real attach imports in the target.
AGENT_MODULES = (
    "memtrace_core",
    "memtrace_core.errors",
    "memtrace_core.sizes",  # tracer/pools.py formats its note
    "memtrace_core.attach",
    "memtrace_core.attach.agent",
    "memtrace_core.tracer",
)


def agent_modules() -> list[str]:
    """AGENT_MODULES and every module of memtrace_core.tracer."""
    import pkgutil

    import memtrace_core.tracer as tracer

    return list(AGENT_MODULES) + sorted(
        f"memtrace_core.tracer.{m.name}" for m in pkgutil.iter_modules(tracer.__path__))


@dataclass(frozen=True)
class Source:
    """A file the target will load: where it is, and where its copy goes in the channel."""

    path: str
    relative: str


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _describe(path: str, st: os.stat_result) -> str:
    return f"{path} (owner {_owner(st.st_uid)}, mode {stat.filemode(st.st_mode)})"


def problem_with(path: str, st: os.stat_result, uid: int) -> str | None:
    """Why another user could change this file or directory, or None when nobody can."""
    trusted_owner = st.st_uid in (0, uid)
    if not trusted_owner:
        return f"{_describe(path, st)} belongs to another user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
            return None  # sticky: only an entry's owner may replace it
        who = "group" if st.st_mode & stat.S_IWGRP else "others"
        return f"{_describe(path, st)} is writable by {who}"
    return None


def directory_problems(path: str, uid: int) -> list[str]:
    """Problems of every directory above path, up to /."""
    problems = []
    directory = os.path.dirname(path)
    while True:
        try:
            st = os.stat(directory)
        except OSError as exc:
            problems.append(f"{directory}: {exc.strerror}")
        else:
            problem = problem_with(directory, st, uid)
            if problem:
                problems.append(problem)
        parent = os.path.dirname(directory)
        if parent == directory:
            return problems
        directory = parent


def agent_sources(helper: str) -> list[Source]:
    """The helper library and the agent's modules, with their places in the copy."""
    sources = [Source(os.path.realpath(helper), "helper" + _suffix(helper))]
    for name in agent_modules():
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise UserError(f"memtrace is incomplete: cannot find {name}")
        relative = os.path.join("lib", *name.split("."))
        if spec.submodule_search_locations is not None:
            relative = os.path.join(relative, os.path.basename(spec.origin))
        else:
            relative += _suffix(spec.origin)
        sources.append(Source(os.path.realpath(spec.origin), relative))
    return sources


def _suffix(path: str) -> str:
    """`.py`, or an extension module's whole suffix (`.cpython-311-x86_64-linux-gnu.so`)."""
    base = os.path.basename(path)
    return base[base.index("."):] if "." in base else ""


def check_and_copy(sources: list[Source], dest_root: str, uid: int, chown_to: int | None,
                   allow_untrusted: bool) -> list[str]:
    """Check each source (file and directories) for `uid`, copy it under dest_root from the
    descriptor that was checked, and return the problems found (only when allowed; else the
    first problem is raised as a UserError, and nothing is copied)."""
    problems: list[str] = []
    opened: list[tuple[Source, int]] = []
    try:
        for source in sources:
            try:
                fd = os.open(source.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError as exc:
                raise UserError(f"cannot read {source.path}: {exc.strerror}") from None
            opened.append((source, fd))
            st = os.fstat(fd)
            found = [problem_with(source.path, st, uid)] + directory_problems(source.path, uid)
            for problem in found:
                if problem and problem not in problems:
                    problems.append(problem)
        if problems and not allow_untrusted:
            raise UserError(f"refusing to attach: {problems[0]}; another user could run code "
                            f"inside the target (fix the permissions, or pass "
                            f"--allow-untrusted-paths)")
        for source, fd in opened:
            _copy(fd, os.path.join(dest_root, source.relative), dest_root, chown_to)
    finally:
        for _, fd in opened:
            os.close(fd)
    return problems


def _copy(fd: int, dest: str, root: str, chown_to: int | None) -> None:
    directory = os.path.dirname(dest)
    missing = []
    while directory != root and not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for d in reversed(missing):
        os.mkdir(d, 0o700)
        if chown_to is not None:
            os.chown(d, chown_to, -1)
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        offset = 0
        while True:
            chunk = os.pread(fd, 1 << 20, offset)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view):]
            offset += len(chunk)
        if chown_to is not None:
            os.fchown(out, chown_to, -1)
    finally:
        os.close(out)
