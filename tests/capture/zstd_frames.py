"""The layout of a capture file's zstd frames (RFC 8878), read independently of the writer:
which blocks are stored (Raw), which compressed, and how much stream each holds."""

from __future__ import annotations

from dataclasses import dataclass, field

MAGIC = 0xFD2FB528
RAW, RLE, COMPRESSED = 0, 1, 2
# the header of the writer's stored frames: no content size, checksum or dictionary; a
# window of 128 KiB (zstd's own frames at level 2 say a larger window)
STORED_HEADER = b"\x28\xb5\x2f\xfd\x00\x38"


@dataclass
class Frame:
    start: int  # offset in the file of the frame's magic
    header: bytes = b""  # its magic, header descriptor and window descriptor
    end: int = 0  # offset just after its last block (0: the file ends inside it)
    blocks: list[tuple[int, int]] = field(default_factory=list)  # (type, size field)

    @property
    def stored(self) -> bool:
        """A stored stretch of the stream: the writer's stored frame, every block Raw."""
        return self.header == STORED_HEADER and all(kind == RAW for kind, _ in self.blocks)

    @property
    def raw_bytes(self) -> int:
        return sum(size for kind, size in self.blocks if kind == RAW)


def frames(data: bytes, start: int = 8) -> list[Frame]:
    """The frames after the 8-byte "MEMTRACZ" magic, up to the end of data (the last one may
    be cut off, as in a file being written)."""
    out = []
    pos = start
    while pos + 6 <= len(data):
        assert int.from_bytes(data[pos : pos + 4], "little") == MAGIC, f"no frame at {pos}"
        frame = Frame(pos, data[pos : pos + 6])
        fhd = data[pos + 4]
        single = (fhd >> 5) & 1
        fcs_size = (1 if single else 0, 2, 4, 8)[fhd >> 6]
        did_size = (0, 1, 2, 4)[fhd & 3]
        assert not fhd & 4, "no checksum expected"
        pos += 5 + (0 if single else 1) + did_size + fcs_size
        out.append(frame)
        while pos + 3 <= len(data):
            header = int.from_bytes(data[pos : pos + 3], "little")
            last, kind, size = header & 1, (header >> 1) & 3, header >> 3
            length = 1 if kind == RLE else size
            if pos + 3 + length > len(data):
                return out
            frame.blocks.append((kind, size))
            pos += 3 + length
            if last:
                frame.end = pos
                break
        else:
            return out
    return out
