"""DWARF of one module, decoded lazily: address -> compile unit through .debug_aranges
(or the units' own ranges, built once), and per unit, on first use, one DIE scan for
functions/inlined calls and one line-program decode, both in C (see _dwarf.pyx).
"""

from __future__ import annotations

import bisect
import time

from . import _dwarf
from .elf import ElfImage

SECTION_NAMES = (".debug_info", ".debug_abbrev", ".debug_line", ".debug_str",
                 ".debug_line_str", ".debug_str_offsets", ".debug_addr", ".debug_ranges",
                 ".debug_rnglists")

# (function name, file, line, is_inline); innermost first
RawFrame = tuple[str, str, int, bool]


class DwarfModule:
    """DWARF of one ELF image; resolve(vaddr) gives the inline chain at an address."""

    def __init__(self, image: ElfImage, time_box_s: float = 0.25,
                 alt: DwarfModule | None = None):
        self.image = image
        self.alt = alt  # dwz's common file (.gnu_debugaltlink), for GNU_ref/strp_alt
        self.time_box_s = time_box_s
        secs = [image.section(n) for n in SECTION_NAMES]
        self.s = _dwarf.Sections(*secs)
        # headers only: a unit's abbrevs and top DIE are read when it is first used
        self.units = _dwarf.read_units(self.s.info, self.s.abbrev, False)
        self.unit_offsets = [u.offset for u in self.units]
        self._unit_by_off = {u.offset: u for u in self.units}
        self._abbrev_cache: dict = {}
        self._build_cu_index()
        self._scopes: dict[int, object] = {}  # unit offset -> ScopeIndex | None
        self._lines: dict[int, object] = {}  # unit offset -> LineTable | None
        self._names: dict[int, str] = {}  # DIE offset -> linkage or plain name
        self._comp_dir: dict[int, str] = {}
        self.failed_units: dict[int, str] = {}  # unit offset -> why (time box, bad DWARF)

    # -- address -> unit ------------------------------------------------------------
    def _build_cu_index(self) -> None:
        ranges: list[tuple[int, int, int]] = []
        covered: set[int] = set()
        aranges = self.image.section(".debug_aranges")
        if aranges:
            try:
                for lo, hi, cu in _dwarf.read_aranges(aranges):
                    if cu in self._unit_by_off:
                        ranges.append((lo, hi, cu))
                        covered.add(cu)
            except _dwarf.DwarfError:
                ranges, covered = [], set()
        for u in self.units:
            if u.offset in covered or u.unit_type not in (1, 3, 4):  # compile/partial/skeleton
                continue
            try:
                self.unit(u.offset)
                if u.tag not in (0x11, 0x3C, 0x4A):
                    continue
                for lo, hi in _dwarf.unit_ranges(self.s, u):
                    ranges.append((lo, hi, u.offset))
            except _dwarf.DwarfError:
                continue
        ranges.sort()
        self._cu_lo = [r[0] for r in ranges]
        self._cu_ranges = ranges

    def unit(self, off: int):
        """The unit at this offset, its abbrevs and top DIE read (raises DwarfError)."""
        u = self._unit_by_off[off]
        if u.abbrevs is None:
            _dwarf.load_unit(u, self.s.info, self.s.abbrev, self._abbrev_cache)
        return u

    def units_at(self, vaddr: int) -> list[int]:
        """Offsets of units whose ranges contain vaddr (usually one)."""
        i = bisect.bisect_right(self._cu_lo, vaddr)
        out = []
        for j in range(i - 1, max(i - 64, -1), -1):
            lo, hi, cu = self._cu_ranges[j]
            if lo <= vaddr < hi and cu not in out:
                out.append(cu)
        return out

    # -- per unit, decoded once ------------------------------------------------------
    def _string(self, u, ref) -> str:
        if ref is None:
            return ""
        if ref[0] == _dwarf.VALUE_ALT_STRP:
            if self.alt is None:
                return ""
            return _dwarf.string_value(self.alt.s, u, _dwarf.VALUE_STRP, ref[1])
        return _dwarf.string_value(self.s, u, ref[0], ref[1])

    def comp_dir(self, u) -> str:
        d = self._comp_dir.get(u.offset)
        if d is None:
            d = self._comp_dir[u.offset] = self._string(u, u.comp_dir_ref)
        return d

    def scopes(self, cu: int):
        if cu not in self._scopes:
            try:
                u = self.unit(cu)
                self._scopes[cu] = _dwarf.scan_unit(
                    self.s, u, time.monotonic() + self.time_box_s if self.time_box_s else 0)
            except _dwarf.DwarfError as e:
                self._scopes[cu] = None
                self.failed_units[cu] = str(e)
        return self._scopes[cu]

    def lines(self, cu: int):
        if cu not in self._lines:
            lt = None
            try:
                u = self.unit(cu)
            except _dwarf.DwarfError as e:
                self.failed_units[cu] = str(e)
                u = None
            if u is not None and u.has_stmt:
                try:
                    lt = _dwarf.decode_lines(
                        self.s, u, self.comp_dir(u),
                        time.monotonic() + self.time_box_s if self.time_box_s else 0)
                except _dwarf.DwarfError as e:
                    self.failed_units[cu] = str(e)
            self._lines[cu] = lt
        return self._lines[cu]

    def unit_of_die(self, off: int):
        i = bisect.bisect_right(self.unit_offsets, off) - 1
        return self.unit(self.units[i].offset) if i >= 0 else None

    def die_name(self, off: int) -> str:
        """Linkage name along abstract_origin/specification, else the plain name
        (what elfutils' dwarf_attr_integrate gives)."""
        got = self._names.get(off)
        if got is not None:
            return got
        linkage = name = ""
        cur: int | None = off
        mod: DwarfModule | None = self
        for _ in range(16):
            if cur is None or mod is None:
                break
            try:
                u = mod.unit_of_die(cur)
                if u is None:
                    break
                lref, nref, origin = _dwarf.die_names(mod.s, u, cur)
            except _dwarf.DwarfError:
                break
            if lref is not None and not linkage:
                linkage = mod._string(u, lref)
            if nref is not None and not name:
                name = mod._string(u, nref)
            if linkage:
                break
            if isinstance(origin, tuple):  # ("alt", offset): into the dwz common file
                mod, cur = mod.alt, origin[1]
            else:
                cur = origin
        result = linkage or name
        self._names[off] = result
        return result

    # -- lookup ----------------------------------------------------------------------
    def resolve(self, vaddr: int) -> list[RawFrame] | None:
        """Innermost-first frames at vaddr; None when no unit covers it or its unit
        could not be decoded (the caller then uses the symbol table)."""
        for cu in self.units_at(vaddr):
            si = self.scopes(cu)
            if si is None:
                return None
            chain = si.chain(vaddr)
            lt = self.lines(cu)
            file, line = "", 0
            if lt is not None:
                hit = lt.lookup(vaddr)
                if hit is not None:
                    fi, line = hit
                    file = lt.files[fi] if fi < len(lt.files) else ""
            if not chain:
                if file:
                    return [("", file, line, False)]
                continue
            out: list[RawFrame] = []
            files = lt.files if lt is not None else []
            for k in range(len(chain) - 1, -1, -1):
                tag, depth, die_off, cfile, cline = chain[k]
                out.append((self.die_name(die_off), file, line, tag == _dwarf.TAG_INLINED))
                # the caller's position: where this inlined call sits
                file = files[cfile] if cfile < len(files) else ""
                line = cline
            return out
        return None
