"""What every report starts from: a capture read and its stacks built into the one call
tree of memtrace (model.CallTree, the same builder and names as `live` and `view`), read
for one selection (all allocations, leaks or the peak).

Names are resolved at once, in this process (symbols.Namer in sync mode, with the
persistent cache), and only the stacks with something to show for the selection are
built, so a `--leaks` report of a program that freed most of its memory names only the
stacks that still hold memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from memtrace_core.frames import Frame, FrameKind
from memtrace_core.model.calltree import CallTree
from memtrace_core.model.metrics import Metric
from memtrace_core.strenum import StrEnum

NO_STACK = Frame("<no stack>", "", 0, FrameKind.NO_SYMBOL)


class Selection(StrEnum):
    """Which allocations a report counts."""

    ALL = "all"  # every allocation made
    LEAKS = "leaks"  # still allocated at the end
    PEAK = "peak"  # allocated at the high-water mark
    TEMPORARY = "temporary"  # freed by their thread within a few of its allocations

    @property
    def metric(self) -> Metric:
        return {"all": Metric.TOTAL, "leaks": Metric.IN_USE, "peak": Metric.PEAK,
                "temporary": Metric.TEMPORARY}[self.value]

    @property
    def title(self) -> str:
        return {"all": "all allocations", "leaks": "still allocated at the end",
                "peak": "allocated at the peak",
                "temporary": "temporary allocations"}[self.value]


def selection_from_args(args) -> Selection:
    if getattr(args, "leaks", False):
        return Selection.LEAKS
    if getattr(args, "peak", False):
        return Selection.PEAK
    if getattr(args, "temporary", False):
        return Selection.TEMPORARY
    return Selection.ALL


class Branch:
    """One node of the tree as a report reads it: the selection's bytes and count."""

    __slots__ = ("id", "frame", "bytes", "count", "own_bytes", "own_count")

    def __init__(self, node_id: int, frame: Frame | None, nbytes: int, count: int,
                 own_bytes: int, own_count: int) -> None:
        self.id = node_id
        self.frame = frame
        self.bytes = nbytes
        self.count = count
        self.own_bytes = own_bytes
        self.own_count = own_count

    def __repr__(self) -> str:
        return f"Branch({self.frame.function if self.frame else '<root>'}, {self.bytes})"


@dataclass(frozen=True, slots=True)
class Location:
    """A frame's figures: own = stacks ending there, total = stacks passing through."""

    frame: Frame
    own_bytes: int
    own_count: int
    total_bytes: int
    total_count: int


@dataclass
class Profile:
    """A capture summed for one selection, with what the reports must say about it."""

    path: str
    reader: object
    selection: Selection
    tree: CallTree
    native: bool
    stale_libraries: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    instant: bool = False  # read up to an instant (load_profile's at_us), not to its end

    @property
    def sample_bytes(self) -> int:
        """The sampling mean of the capture (0: exact figures)."""
        from memtrace_core.sampling import sample_bytes

        return sample_bytes(getattr(self.reader, "header", None) or {})

    @property
    def approx(self) -> str:
        """`≈ ` before every figure of a sampled capture, else nothing."""
        from memtrace_core.sampling import ESTIMATE_MARK

        return f"{ESTIMATE_MARK} " if self.sample_bytes else ""

    @property
    def sampling_note(self) -> str:
        """` (sampled every ~512 KiB)` after a sampled report's title, else nothing."""
        from memtrace_core.sampling import describe

        return f" ({describe(self.sample_bytes)})" if self.sample_bytes else ""

    def _index(self) -> tuple[int, int]:
        m = self.selection.metric
        return m.bytes_index, m.count_index

    @property
    def root(self) -> Branch:
        bi, ci = self._index()
        _fid, nbytes, count, own_b, own_c = self.tree.core.branch(0, bi, ci)
        return Branch(0, None, nbytes, count, own_b, own_c)

    @property
    def total_bytes(self) -> int:
        return self.root.bytes

    @property
    def total_count(self) -> int:
        return self.root.count

    def children(self, node: Branch) -> list[Branch]:
        """Children with something selected, biggest first (bytes, then count)."""
        bi, ci = self._index()
        frames = self.tree.core.frames
        kids = [Branch(nid, frames[fid], nb, nc, ob, oc)
                for nid, fid, nb, nc, ob, oc in self.tree.core.branches(node.id, bi, ci)]
        kids.sort(key=lambda c: (-c.bytes, -c.count, c.frame.function, c.frame.file,
                                 c.frame.line))
        return kids

    def locations(self) -> list[Location]:
        """Every frame's own and total figures; `<no stack>` for stacks without frames."""
        bi, ci = self._index()
        core = self.tree.core
        out = []
        for fid in core.locations(1, bi):
            own, total, _user = core.location(fid)
            if total[bi] or total[ci]:
                out.append(Location(core.frames[fid], own[bi], own[ci], total[bi], total[ci]))
        root = self.root
        if root.own_bytes or root.own_count:
            out.append(Location(NO_STACK, root.own_bytes, root.own_count, root.own_bytes,
                                root.own_count))
        return out

    def stacks(self) -> Iterator[tuple[tuple[Frame, ...], int, int]]:
        """(frames outermost first, bytes, count) for every distinct call path, depth first
        with the biggest branches first; stacks with no frame at all appear as the single
        frame `<no stack>`."""
        root = self.root
        if root.own_bytes or root.own_count:
            yield (NO_STACK,), root.own_bytes, root.own_count
        todo: list[tuple[Branch, tuple[Frame, ...]]] = [(root, ())]
        while todo:
            node, path = todo.pop()
            for child in reversed(self.children(node)):
                cpath = (*path, child.frame)
                if child.own_bytes or child.own_count:
                    yield cpath, child.own_bytes, child.own_count
                todo.append((child, cpath))

    def warnings(self) -> list[str]:
        """Lines to show the user: stale libraries first, then symbolizer notes."""
        out = [stale_message(self.stale_libraries)] if self.stale_libraries else []
        if self.sample_bytes:
            from memtrace_core.sampling import describe

            out.insert(0, f"{describe(self.sample_bytes)}: every figure is an estimate (≈)")
            if self.selection is Selection.TEMPORARY:
                out.insert(1, "a sampled capture does not count temporary allocations "
                           "(they need every allocation): record without --sample")
        stopped_early = self.instant and getattr(self.reader, "stopped", False)
        if not getattr(self.reader, "complete", True) and not stopped_early and not getattr(
                self.reader, "error", None):
            out.append("the capture is incomplete (the program was killed or the stream "
                       "cut): numbers cover what was recorded")
        out.extend(self.notes)
        return out


def load_profile(path: str | Path, selection: Selection = Selection.ALL,
                 show_internal: bool = False, cache_dir: Path | None = None,
                 progress=None, at_us: int | None = None,
                 temporary_threshold: int = 1, all_processes: bool = False) -> Profile:
    """Read, name (native captures, auto-detected from the header) and sum a capture; with
    at_us, the capture as it stood at that instant (its first TICK at or after it).

    With all_processes, the capture and its children's (`--follow-fork`'s FILE.PID) merged
    by frame (model.processes).

    Raises UserError (one line) for a missing, foreign or corrupt file."""
    from memtrace_core.model.build import call_tree
    from memtrace_core.reader import read_capture, read_capture_at, read_names

    notes: list[str] = []
    if all_processes:
        from memtrace_core.errors import UserError
        from memtrace_core.model.processes import read_processes

        if at_us is not None:
            raise UserError("--all-processes reads the captures to their end (no instant)")
        reader, embedded = read_processes(path, progress, temporary_threshold)
        notes = [f"skipped {line}" for line in reader.skipped]
    else:
        if at_us is None:
            reader = read_capture(path, progress=progress,
                                  temporary_threshold=temporary_threshold)
        else:
            reader = read_capture_at(path, at_us, temporary_threshold)
        embedded = read_names(path) if (reader.header or {}).get("native") else None
    tree = call_tree(reader, names="sync", cache_dir=cache_dir, embedded=embedded)
    tree.set_metric(selection.metric)
    if show_internal:
        tree.core.set_show_internal(True)
    bi, ci = selection.metric.bytes_index, selection.metric.count_index
    tree.core.begin_all(bi, ci)
    tree.core.step()
    profile = Profile(str(path), reader, selection, tree, tree.native,
                      instant=at_us is not None)
    if tree.namer is not None:
        tree.namer.flush()
        profile.stale_libraries = shown_stale_libraries(profile, tree.namer.stale_libraries())
        profile.notes = tree.namer.notes()
    profile.notes.extend(notes)
    return profile


STALE_ADVICE = ("native reports must be made on the machine that ran the program, "
                "with the same library builds")


def stale_message(paths: list[str]) -> str:
    """One line naming the libraries whose frames could not be named, and what to do."""
    names = ", ".join(paths)
    return (f"{len(paths)} librar{'y' if len(paths) == 1 else 'ies'} changed or missing since "
            f"the capture ({names}): their frames show as <library changed: ...>; "
            f"{STALE_ADVICE}")


def shown_stale_libraries(profile: Profile, stale: list[str]) -> list[str]:
    """The stale libraries with a frame in the report (memtrace's own, hidden by
    default, or ones whose stacks were not selected, would only be noise)."""
    if not stale:
        return []
    stale_set = set(stale)
    shown = {loc.frame.module for loc in profile.locations()
             if loc.frame.kind is FrameKind.NO_SYMBOL and loc.frame.module in stale_set}
    return sorted(shown)
