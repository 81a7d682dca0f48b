"""The frame type every layer above the reader speaks: reporters, model and TUI."""

from dataclasses import dataclass

from memtrace_core.strenum import StrEnum


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


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of a call path, outermost-first lists of these form a stack."""

    function: str
    file: str
    line: int
    kind: FrameKind
    module: str = ""  # shared library path for native/inline/unresolved frames

    def label(self) -> str:
        """`function (file:line)` as reports print it."""
        if self.file:
            return f"{self.function} ({self.file}:{self.line})" if self.line else (
                f"{self.function} ({self.file})"
            )
        return self.function
