"""The zstd frames of a capture file, decompressed one after the other (docs/FORMAT.md,
"Layout"): the writer ends a compressed frame where it starts storing the stream, and a
stored frame where a probe compresses again, so a capture holds one frame or several.

python-zstandard's decompressobj stops at the end of one frame; this goes on with the next
one when the bytes after a frame begin with a frame's magic, and stops for good otherwise
(what follows the stream, like a names section, is not stream), whatever the library's
version. It also says whether the input so far ends exactly where a frame ends."""

from __future__ import annotations

FRAME_MAGIC = b"\x28\xb5\x2f\xfd"  # RFC 8878


class FramesDecompressor:
    """decompress(data) -> the plain stream those bytes complete, across frame ends."""

    def __init__(self) -> None:
        import zstandard

        self._new = zstandard.ZstdDecompressor().decompressobj
        self._d = self._new()
        self._between = b""  # the start of what follows a frame, shorter than a magic
        self.ended = False
        """Something other than a frame followed a frame: the rest is ignored."""
        self.at_frame_end = False
        """The input so far ends exactly where a frame ends."""

    def decompress(self, data: bytes) -> bytes:
        if not data or self.ended:
            return b""
        data, self._between = self._between + data, b""
        if self.at_frame_end and not self._next_frame(data):
            return b""
        out = self._d.decompress(data)
        self.at_frame_end = False
        while self._d.eof:
            rest = self._d.unused_data
            self._d = self._new()
            self.at_frame_end = True
            if not rest or not self._next_frame(rest):
                break
            self.at_frame_end = False
            out += self._d.decompress(rest)
        return out

    def _next_frame(self, rest: bytes) -> bool:
        """Whether rest (after a frame's end) starts the next frame now."""
        if len(rest) < len(FRAME_MAGIC):
            if FRAME_MAGIC.startswith(rest):
                self._between = rest  # wait for the rest of the magic
            else:
                self.ended = True
            return False
        if not rest.startswith(FRAME_MAGIC):
            self.ended = True
            return False
        return True
