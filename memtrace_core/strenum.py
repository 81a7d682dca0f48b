"""`StrEnum` on every supported Python: enum's own since 3.11, an equivalent on 3.10
(members are str, and str()/format() give the value, as with enum.StrEnum)."""

from __future__ import annotations

import sys
from enum import Enum

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:

    class StrEnum(str, Enum):
        """A str whose str() and format() are its value."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return format(str(self.value), spec)


__all__ = ["StrEnum"]
