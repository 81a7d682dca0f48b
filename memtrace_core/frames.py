"""The frame type every layer above the reader speaks: reporters, model and TUI."""

from memtrace_core.strenum import StrEnum

# A native "address" at or above this is not one: the tracer cut a stack deeper than its
# limit, and `ip - CUT_MARKER_BASE` frames beyond the outermost kept one were left out
# (docs/FORMAT.md). Bit 31 of the count is never set by the tracer.
CUT_MARKER_BASE = 0xFFFFFFFF00000000


class FrameKind(StrEnum):
    """Where a frame comes from; colour and a text mark show it in every output."""

    PYTHON = "python"
    NATIVE = "native"
    INLINE = "inline"
    UNRESOLVED = "unresolved"  # a name is on its way: shown as `lib+0xoffset` meanwhile
    NO_SYMBOL = "nosymbol"  # no name anywhere (no symbol, library changed or gone)

    @property
    def mark(self) -> str:
        """Short tag that tells the kind apart without colour."""
        return {"python": "[py]", "native": "[c]", "inline": "[inl]", "unresolved": "[?]",
                "nosymbol": "[-]"}[self.value]


class Frame:
    """One frame of a call path, outermost-first lists of these form a stack. Immutable,
    compared and hashed by value, like a frozen dataclass; written out by hand because
    `dataclasses` (with inspect, ast, tokenize) costs the exit-time naming of every
    `run --native` several milliseconds of import (issue 14)."""

    __slots__ = ("function", "file", "line", "kind", "module")
    __match_args__ = ("function", "file", "line", "kind", "module")

    function: str
    file: str
    line: int
    kind: FrameKind
    module: str  # shared library path for native/inline/unresolved frames

    def __init__(self, function: str, file: str, line: int, kind: FrameKind,
                 module: str = "") -> None:
        setter = object.__setattr__
        setter(self, "function", function)
        setter(self, "file", file)
        setter(self, "line", line)
        setter(self, "kind", kind)
        setter(self, "module", module)

    def _key(self) -> tuple:
        return (self.function, self.file, self.line, self.kind, self.module)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Frame(function={self.function!r}, file={self.file!r}, line={self.line!r}, "
                f"kind={self.kind!r}, module={self.module!r})")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple:
        return (Frame, self._key())

    def label(self) -> str:
        """`function (file:line)` as reports print it."""
        if self.file:
            return f"{self.function} ({self.file}:{self.line})" if self.line else (
                f"{self.function} ({self.file})"
            )
        return self.function


def cut_frames(ip: int) -> int | None:
    """How many frames a cut marker stands for; None for a real address."""
    return ip - CUT_MARKER_BASE if ip >= CUT_MARKER_BASE else None


def cut_frame(count: int) -> Frame:
    """The frame reports show where the tracer cut a deep native stack."""
    return Frame(f"… {count:,} frames cut", "", 0, FrameKind.UNRESOLVED)


def is_cut_frame(frame: Frame) -> bool:
    """Whether a frame is the marker made by cut_frame()."""
    return (frame.kind is FrameKind.UNRESOLVED and not frame.module and not frame.file
            and frame.function.startswith("… ") and frame.function.endswith(" frames cut"))
