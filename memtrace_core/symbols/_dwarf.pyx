# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Hot DWARF decoding in C speed: abbrev tables, unit headers, the function/inline
DIE scan of one compile unit, line programs and range lists.

pyelftools builds a Python object per DIE and per line row, which costs seconds on a
cold compile unit of libpython; here a unit becomes a few flat C arrays instead.
Only little-endian 64/32-bit DWARF 2-5 is decoded (what x86-64/aarch64 Linux emits).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcpy

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int CLOCK_MONOTONIC


class DwarfError(Exception):
    """Malformed or unsupported DWARF; the caller falls back to the symbol table."""


class TimeBoxExceeded(DwarfError):
    """A compile unit took longer than its time box to decode."""


# --- value classes returned by read_form --------------------------------------------
cdef enum:
    V_NONE = 0
    V_ADDR = 1
    V_ADDRX = 2
    V_CONST = 3
    V_REF = 4
    V_SECOFF = 5
    V_STRP = 6
    V_LINESTRP = 7
    V_STRX = 8
    V_STRING = 9
    V_RNGLISTX = 10
    V_FLAG = 11
    V_ALTREF = 12
    V_ALTSTRP = 13
    V_SCONST = 14

# attributes
cdef enum:
    AT_sibling = 0x01
    AT_name = 0x03
    AT_stmt_list = 0x10
    AT_low_pc = 0x11
    AT_high_pc = 0x12
    AT_comp_dir = 0x1b
    AT_abstract_origin = 0x31
    AT_declaration = 0x3c
    AT_specification = 0x47
    AT_ranges = 0x55
    AT_call_file = 0x58
    AT_call_line = 0x59
    AT_linkage_name = 0x6e
    AT_str_offsets_base = 0x72
    AT_addr_base = 0x73
    AT_rnglists_base = 0x74
    AT_MIPS_linkage_name = 0x2007
    AT_GNU_ranges_base = 0x2132
    AT_GNU_addr_base = 0x2133

# forms (DWARF 5, 7.5.6; and the GNU extensions)
cdef enum:
    FORM_addr = 0x01
    FORM_block2 = 0x03
    FORM_block4 = 0x04
    FORM_data2 = 0x05
    FORM_data4 = 0x06
    FORM_data8 = 0x07
    FORM_string = 0x08
    FORM_block = 0x09
    FORM_block1 = 0x0a
    FORM_data1 = 0x0b
    FORM_flag = 0x0c
    FORM_sdata = 0x0d
    FORM_strp = 0x0e
    FORM_udata = 0x0f
    FORM_ref_addr = 0x10
    FORM_ref1 = 0x11
    FORM_ref2 = 0x12
    FORM_ref4 = 0x13
    FORM_ref8 = 0x14
    FORM_ref_udata = 0x15
    FORM_indirect = 0x16
    FORM_sec_offset = 0x17
    FORM_exprloc = 0x18
    FORM_flag_present = 0x19
    FORM_strx = 0x1a
    FORM_addrx = 0x1b
    FORM_ref_sup4 = 0x1c
    FORM_strp_sup = 0x1d
    FORM_data16 = 0x1e
    FORM_line_strp = 0x1f
    FORM_ref_sig8 = 0x20
    FORM_implicit_const = 0x21
    FORM_loclistx = 0x22
    FORM_rnglistx = 0x23
    FORM_ref_sup8 = 0x24
    FORM_strx1 = 0x25
    FORM_strx2 = 0x26
    FORM_strx3 = 0x27
    FORM_strx4 = 0x28
    FORM_addrx1 = 0x29
    FORM_addrx2 = 0x2a
    FORM_addrx3 = 0x2b
    FORM_addrx4 = 0x2c
    FORM_GNU_addr_index = 0x1f01
    FORM_GNU_str_index = 0x1f02
    FORM_GNU_ref_alt = 0x1f20
    FORM_GNU_strp_alt = 0x1f21

# tags
cdef enum:
    TAG_subprogram = 0x2e
    TAG_inlined_subroutine = 0x1d
    TAG_lexical_block = 0x0b
    TAG_compile_unit = 0x11
    TAG_partial_unit = 0x3c
    TAG_namespace = 0x39
    TAG_class_type = 0x02
    TAG_structure_type = 0x13
    TAG_try_block = 0x32
    TAG_catch_block = 0x25

TAG_SUBPROGRAM = TAG_subprogram
TAG_INLINED = TAG_inlined_subroutine
VALUE_ALT_STRP = V_ALTSTRP
VALUE_STRP = V_STRP


cdef struct Cur:
    const uint8_t *p
    const uint8_t *end
    int err


cdef inline uint64_t rd_n(Cur *c, int n) noexcept nogil:
    cdef uint64_t v = 0
    if n < 0 or n > 8 or c.end - c.p < n:
        c.err = 1
        c.p = c.end
        return 0
    memcpy(&v, c.p, n)
    c.p += n
    return v


cdef inline uint64_t rd_uleb(Cur *c) noexcept nogil:
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef uint8_t b
    while c.p < c.end:
        b = c.p[0]
        c.p += 1
        if shift < 64:
            v |= (<uint64_t>(b & 0x7f)) << shift
        shift += 7
        if not (b & 0x80):
            return v
    c.err = 1
    return v


cdef inline int64_t rd_sleb(Cur *c) noexcept nogil:
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef uint8_t b = 0
    while c.p < c.end:
        b = c.p[0]
        c.p += 1
        if shift < 64:
            v |= (<uint64_t>(b & 0x7f)) << shift
        shift += 7
        if not (b & 0x80):
            if shift < 64 and (b & 0x40):
                v |= (~(<uint64_t>0)) << shift
            return <int64_t>v
    c.err = 1
    return <int64_t>v


cdef inline void skip(Cur *c, uint64_t n) noexcept nogil:
    if <uint64_t>(c.end - c.p) < n:
        c.err = 1
        c.p = c.end
    else:
        c.p += n


cdef inline void skip_cstr(Cur *c) noexcept nogil:
    cdef const uint8_t *z = <const uint8_t *>memchr(c.p, 0, c.end - c.p)
    if z == NULL:
        c.err = 1
        c.p = c.end
    else:
        c.p = z + 1


cdef inline double now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef str cstr_at(const uint8_t *base, Py_ssize_t size, uint64_t off):
    """A NUL-terminated string at `off` of a section, decoded leniently."""
    if off >= <uint64_t>size:
        return ""
    cdef const uint8_t *z = <const uint8_t *>memchr(base + off, 0, size - off)
    cdef Py_ssize_t n = (z - (base + off)) if z != NULL else (size - off)
    return (<const char *>(base + off))[:n].decode("utf-8", "replace")


# --- abbreviation tables ---------------------------------------------------------------
cdef class Abbrevs:
    """One .debug_abbrev table as flat arrays, indexed by abbrev code."""

    cdef int32_t *code_idx
    cdef uint64_t ncodes
    cdef uint32_t *tag
    cdef uint8_t *children
    cdef int32_t *attr_start
    cdef int32_t *attr_count
    cdef uint32_t *at_name
    cdef uint32_t *at_form
    cdef int64_t *at_const
    cdef int n_abbrev

    def __dealloc__(self):
        free(self.code_idx)
        free(self.tag)
        free(self.children)
        free(self.attr_start)
        free(self.attr_count)
        free(self.at_name)
        free(self.at_form)
        free(self.at_const)


cdef Abbrevs parse_abbrevs(const uint8_t[::1] sec, uint64_t offset):
    cdef Abbrevs a = Abbrevs()
    cdef Cur c
    cdef uint64_t code, max_code = 0, name, form
    cdef int cap_ab = 64, cap_at = 512, n_at = 0, i
    cdef int64_t ic
    if offset >= <uint64_t>sec.shape[0]:
        raise DwarfError("abbrev offset out of range")
    c.p = &sec[0] + offset
    c.end = &sec[0] + sec.shape[0]
    c.err = 0
    a.tag = <uint32_t *>malloc(cap_ab * sizeof(uint32_t))
    a.children = <uint8_t *>malloc(cap_ab)
    a.attr_start = <int32_t *>malloc(cap_ab * sizeof(int32_t))
    a.attr_count = <int32_t *>malloc(cap_ab * sizeof(int32_t))
    a.at_name = <uint32_t *>malloc(cap_at * sizeof(uint32_t))
    a.at_form = <uint32_t *>malloc(cap_at * sizeof(uint32_t))
    a.at_const = <int64_t *>malloc(cap_at * sizeof(int64_t))
    codes = []
    while not c.err:
        code = rd_uleb(&c)
        if code == 0:
            break
        if a.n_abbrev == cap_ab:
            cap_ab *= 2
            a.tag = <uint32_t *>realloc(a.tag, cap_ab * sizeof(uint32_t))
            a.children = <uint8_t *>realloc(a.children, cap_ab)
            a.attr_start = <int32_t *>realloc(a.attr_start, cap_ab * sizeof(int32_t))
            a.attr_count = <int32_t *>realloc(a.attr_count, cap_ab * sizeof(int32_t))
        codes.append(code)
        if code > max_code:
            max_code = code
        a.tag[a.n_abbrev] = <uint32_t>rd_uleb(&c)
        a.children[a.n_abbrev] = <uint8_t>rd_n(&c, 1)
        a.attr_start[a.n_abbrev] = n_at
        while not c.err:
            name = rd_uleb(&c)
            form = rd_uleb(&c)
            ic = 0
            if form == FORM_implicit_const:
                ic = rd_sleb(&c)
            if name == 0 and form == 0:
                break
            if n_at == cap_at:
                cap_at *= 2
                a.at_name = <uint32_t *>realloc(a.at_name, cap_at * sizeof(uint32_t))
                a.at_form = <uint32_t *>realloc(a.at_form, cap_at * sizeof(uint32_t))
                a.at_const = <int64_t *>realloc(a.at_const, cap_at * sizeof(int64_t))
            a.at_name[n_at] = <uint32_t>name
            a.at_form[n_at] = <uint32_t>form
            a.at_const[n_at] = ic
            n_at += 1
        a.attr_count[a.n_abbrev] = n_at - a.attr_start[a.n_abbrev]
        a.n_abbrev += 1
    if c.err:
        raise DwarfError("truncated abbrev table")
    if max_code > 1 << 22:
        raise DwarfError("abbrev codes too sparse")
    a.ncodes = max_code + 1
    a.code_idx = <int32_t *>malloc(a.ncodes * sizeof(int32_t))
    for i in range(<int>a.ncodes):
        a.code_idx[i] = -1
    for i in range(a.n_abbrev):
        a.code_idx[<uint64_t>codes[i]] = i
    return a


# --- forms -----------------------------------------------------------------------------
cdef struct UnitCtx:
    int version
    int addr_size
    int offset_size
    uint64_t cu_off
    const uint8_t *info


cdef int read_form(UnitCtx *u, Cur *c, uint64_t form, int64_t ic, uint64_t *out) noexcept nogil:
    """Decode one attribute value; return its value class (V_*)."""
    cdef uint64_t n
    while True:
        if form == FORM_addr:
            out[0] = rd_n(c, u.addr_size)
            return V_ADDR
        elif form == FORM_data1:
            out[0] = rd_n(c, 1)
            return V_CONST
        elif form == FORM_data2:
            out[0] = rd_n(c, 2)
            return V_CONST
        elif form == FORM_data4:
            out[0] = rd_n(c, 4)
            return V_CONST
        elif form == FORM_data8:
            out[0] = rd_n(c, 8)
            return V_CONST
        elif form == FORM_udata:
            out[0] = rd_uleb(c)
            return V_CONST
        elif form == FORM_sdata:
            out[0] = <uint64_t>rd_sleb(c)
            return V_SCONST
        elif form == FORM_implicit_const:
            out[0] = <uint64_t>ic
            return V_SCONST
        elif form == FORM_data16:
            skip(c, 16)
            return V_NONE
        elif form == FORM_string:
            out[0] = <uint64_t>(c.p - u.info)
            skip_cstr(c)
            return V_STRING
        elif form == FORM_strp:
            out[0] = rd_n(c, u.offset_size)
            return V_STRP
        elif form == FORM_line_strp:
            out[0] = rd_n(c, u.offset_size)
            return V_LINESTRP
        elif form == FORM_strx or form == FORM_GNU_str_index:
            out[0] = rd_uleb(c)
            return V_STRX
        elif form == FORM_strx1:
            out[0] = rd_n(c, 1)
            return V_STRX
        elif form == FORM_strx2:
            out[0] = rd_n(c, 2)
            return V_STRX
        elif form == FORM_strx3:
            out[0] = rd_n(c, 3)
            return V_STRX
        elif form == FORM_strx4:
            out[0] = rd_n(c, 4)
            return V_STRX
        elif form == FORM_addrx or form == FORM_GNU_addr_index:
            out[0] = rd_uleb(c)
            return V_ADDRX
        elif form == FORM_addrx1:
            out[0] = rd_n(c, 1)
            return V_ADDRX
        elif form == FORM_addrx2:
            out[0] = rd_n(c, 2)
            return V_ADDRX
        elif form == FORM_addrx3:
            out[0] = rd_n(c, 3)
            return V_ADDRX
        elif form == FORM_addrx4:
            out[0] = rd_n(c, 4)
            return V_ADDRX
        elif form == FORM_ref1:
            out[0] = rd_n(c, 1) + u.cu_off
            return V_REF
        elif form == FORM_ref2:
            out[0] = rd_n(c, 2) + u.cu_off
            return V_REF
        elif form == FORM_ref4:
            out[0] = rd_n(c, 4) + u.cu_off
            return V_REF
        elif form == FORM_ref8:
            out[0] = rd_n(c, 8) + u.cu_off
            return V_REF
        elif form == FORM_ref_udata:
            out[0] = rd_uleb(c) + u.cu_off
            return V_REF
        elif form == FORM_ref_addr:
            out[0] = rd_n(c, u.addr_size if u.version == 2 else u.offset_size)
            return V_REF
        elif form == FORM_ref_sig8:
            skip(c, 8)
            return V_NONE
        elif form == FORM_ref_sup4:
            skip(c, 4)
            return V_NONE
        elif form == FORM_ref_sup8:
            skip(c, 8)
            return V_NONE
        elif form == FORM_GNU_ref_alt:
            out[0] = rd_n(c, u.offset_size)
            return V_ALTREF
        elif form == FORM_GNU_strp_alt or form == FORM_strp_sup:
            out[0] = rd_n(c, u.offset_size)
            return V_ALTSTRP
        elif form == FORM_sec_offset:
            out[0] = rd_n(c, u.offset_size)
            return V_SECOFF
        elif form == FORM_loclistx:
            out[0] = rd_uleb(c)
            return V_NONE
        elif form == FORM_rnglistx:
            out[0] = rd_uleb(c)
            return V_RNGLISTX
        elif form == FORM_flag:
            out[0] = rd_n(c, 1)
            return V_FLAG
        elif form == FORM_flag_present:
            out[0] = 1
            return V_FLAG
        elif form == FORM_block1:
            n = rd_n(c, 1)
            skip(c, n)
            return V_NONE
        elif form == FORM_block2:
            n = rd_n(c, 2)
            skip(c, n)
            return V_NONE
        elif form == FORM_block4:
            n = rd_n(c, 4)
            skip(c, n)
            return V_NONE
        elif form == FORM_block or form == FORM_exprloc:
            n = rd_uleb(c)
            skip(c, n)
            return V_NONE
        elif form == FORM_indirect:
            form = rd_uleb(c)
            continue
        else:
            c.err = 2
            return V_NONE


# --- one unit ----------------------------------------------------------------------------
cdef class Unit:
    """Header and top-DIE facts of one compile unit."""

    cdef public uint64_t offset, end, die_offset, abbrev_offset
    cdef public int version, addr_size, offset_size, unit_type, tag
    cdef public uint64_t low_pc, high_pc, stmt_list, str_offsets_base, addr_base
    cdef public uint64_t rnglists_base
    cdef public int has_low, has_high, high_is_offset, has_stmt, has_ranges
    cdef public int ranges_class
    cdef public uint64_t ranges_val
    cdef public object name_ref, comp_dir_ref  # (class, value) pairs, decoded later
    cdef public Abbrevs abbrevs

    cdef void ctx(self, UnitCtx *u, const uint8_t *info) noexcept:
        u.version = self.version
        u.addr_size = self.addr_size
        u.offset_size = self.offset_size
        u.cu_off = self.offset
        u.info = info


def read_units(const uint8_t[::1] info, const uint8_t[::1] abbrev, bint load=True):
    """Every unit of .debug_info: list[Unit]. With load False only the headers are read;
    load_unit() reads a unit's abbrev table and top DIE when it is first needed."""
    cdef Cur c
    cdef uint64_t length, off = 0
    cdef Py_ssize_t size = info.shape[0]
    cdef Unit un
    abbrev_cache = {}
    units = []
    if size == 0:
        return units
    while off + 11 <= <uint64_t>size:
        c.p = &info[0] + off
        c.end = &info[0] + size
        c.err = 0
        un = Unit()
        un.offset = off
        un.offset_size = 4
        length = rd_n(&c, 4)
        if length == 0xffffffff:
            length = rd_n(&c, 8)
            un.offset_size = 8
        un.end = <uint64_t>(c.p - &info[0]) + length
        if un.end > <uint64_t>size or length == 0:
            raise DwarfError("unit length out of range")
        c.end = &info[0] + un.end
        un.version = <int>rd_n(&c, 2)
        if un.version >= 5:
            un.unit_type = <int>rd_n(&c, 1)
            un.addr_size = <int>rd_n(&c, 1)
            un.abbrev_offset = rd_n(&c, un.offset_size)
            if un.unit_type in (4, 5):  # skeleton / split_compile: dwo id
                skip(&c, 8)
            elif un.unit_type in (2, 6):  # type units: signature + type offset
                skip(&c, 8 + un.offset_size)
        elif un.version >= 2:
            un.unit_type = 1
            un.abbrev_offset = rd_n(&c, un.offset_size)
            un.addr_size = <int>rd_n(&c, 1)
        else:
            raise DwarfError(f"unsupported DWARF version {un.version}")
        if c.err:
            raise DwarfError("truncated unit header")
        un.die_offset = <uint64_t>(c.p - &info[0])
        if load:
            load_unit(un, info, abbrev, abbrev_cache)
        units.append(un)
        off = un.end
    return units


def load_unit(Unit un, const uint8_t[::1] info, const uint8_t[::1] abbrev,
              dict abbrev_cache):
    """Read a unit's abbrev table and its top DIE's attributes (once)."""
    cdef Cur c
    cdef uint64_t code, val = 0
    cdef UnitCtx u
    cdef int i, idx, k, cls
    cdef uint32_t at
    if un.abbrevs is not None:
        return
    a = abbrev_cache.get(un.abbrev_offset)
    if a is None:
        a = parse_abbrevs(abbrev, un.abbrev_offset)
        abbrev_cache[un.abbrev_offset] = a
    un.ctx(&u, &info[0])
    c.p = &info[0] + un.die_offset
    c.end = &info[0] + un.end
    c.err = 0
    code = rd_uleb(&c)
    if code != 0 and code < (<Abbrevs>a).ncodes and (<Abbrevs>a).code_idx[code] >= 0:
        idx = (<Abbrevs>a).code_idx[code]
        un.tag = (<Abbrevs>a).tag[idx]
        for k in range((<Abbrevs>a).attr_count[idx]):
            i = (<Abbrevs>a).attr_start[idx] + k
            at = (<Abbrevs>a).at_name[i]
            cls = read_form(&u, &c, (<Abbrevs>a).at_form[i], (<Abbrevs>a).at_const[i], &val)
            if c.err:
                raise DwarfError("bad top DIE")
            if at == AT_low_pc:
                un.low_pc = val
                un.has_low = cls
            elif at == AT_high_pc:
                un.high_pc = val
                un.has_high = cls
                un.high_is_offset = cls != V_ADDR and cls != V_ADDRX
            elif at == AT_ranges:
                un.has_ranges = 1
                un.ranges_class = cls
                un.ranges_val = val
            elif at == AT_stmt_list:
                un.stmt_list = val
                un.has_stmt = 1
            elif at == AT_name:
                un.name_ref = (cls, val)
            elif at == AT_comp_dir:
                un.comp_dir_ref = (cls, val)
            elif at == AT_str_offsets_base:
                un.str_offsets_base = val
            elif at == AT_addr_base or at == AT_GNU_addr_base:
                un.addr_base = val
            elif at == AT_rnglists_base or at == AT_GNU_ranges_base:
                un.rnglists_base = val
    un.abbrevs = a


def read_aranges(const uint8_t[::1] sec):
    """.debug_aranges as a list of (start, end, cu_offset)."""
    cdef Cur c
    cdef uint64_t off = 0, length, cu_off, start, ln, set_end, hdr
    cdef int osz, asz, ssz
    cdef Py_ssize_t size = sec.shape[0]
    out = []
    while off + 16 <= <uint64_t>size:
        c.p = &sec[0] + off
        c.end = &sec[0] + size
        c.err = 0
        osz = 4
        length = rd_n(&c, 4)
        if length == 0xffffffff:
            length = rd_n(&c, 8)
            osz = 8
        set_end = <uint64_t>(c.p - &sec[0]) + length
        if set_end > <uint64_t>size:
            raise DwarfError("aranges set out of range")
        c.end = &sec[0] + set_end
        rd_n(&c, 2)
        cu_off = rd_n(&c, osz)
        asz = <int>rd_n(&c, 1)
        ssz = <int>rd_n(&c, 1)
        if asz not in (4, 8) or ssz != 0:
            raise DwarfError("unsupported aranges")
        hdr = <uint64_t>(c.p - &sec[0]) - off
        if hdr % (2 * asz):
            skip(&c, 2 * asz - hdr % (2 * asz))
        while not c.err and c.p < c.end:
            start = rd_n(&c, asz)
            ln = rd_n(&c, asz)
            if c.err or (start == 0 and ln == 0):
                break
            if ln:
                out.append((start, start + ln, cu_off))
        off = set_end
    return out


# --- range lists -----------------------------------------------------------------------
cdef class Sections:
    """The raw (decompressed) DWARF sections of one file."""

    cdef public object info, abbrev, line, str_, line_str, str_offsets, addr, ranges
    cdef public object rnglists

    def __init__(self, info, abbrev, line, str_, line_str, str_offsets, addr, ranges,
                 rnglists):
        self.info = info
        self.abbrev = abbrev
        self.line = line
        self.str_ = str_
        self.line_str = line_str
        self.str_offsets = str_offsets
        self.addr = addr
        self.ranges = ranges
        self.rnglists = rnglists


cdef uint64_t read_addrx(const uint8_t[::1] addr, Unit un, uint64_t idx) except? 0xffffffffffffffff:
    cdef uint64_t base = un.addr_base
    cdef uint64_t pos, v = 0
    if base == 0 and un.version >= 5:
        base = 8  # DWARF 5 header of .debug_addr when no DW_AT_addr_base
    pos = base + idx * un.addr_size
    if pos + un.addr_size > <uint64_t>addr.shape[0]:
        raise DwarfError("addrx out of range")
    memcpy(&v, &addr[pos], un.addr_size)
    return v


cdef list decode_ranges(Sections s, Unit un, int cls, uint64_t val, uint64_t base):
    """A DIE's DW_AT_ranges as [(lo, hi), ...]."""
    cdef const uint8_t[::1] sec
    cdef const uint8_t[::1] addrs
    cdef Cur c
    cdef uint64_t a, b, off, allones
    cdef uint8_t kind
    out = []
    if un.version < 5:
        sec = s.ranges
        off = val
        if cls == V_RNGLISTX or off >= <uint64_t>sec.shape[0]:
            return out
        allones = 0xffffffffffffffff if un.addr_size == 8 else 0xffffffff
        c.p = &sec[0] + off
        c.end = &sec[0] + sec.shape[0]
        c.err = 0
        while not c.err:
            a = rd_n(&c, un.addr_size)
            b = rd_n(&c, un.addr_size)
            if c.err or (a == 0 and b == 0):
                break
            if a == allones:
                base = b
                continue
            if b > a:
                out.append((a + base, b + base))
        return out
    sec = s.rnglists
    addrs = s.addr
    if sec.shape[0] == 0:
        return out
    if cls == V_RNGLISTX:
        off = un.rnglists_base + val * un.offset_size
        if off + un.offset_size > <uint64_t>sec.shape[0]:
            return out
        a = 0
        memcpy(&a, &sec[off], un.offset_size)
        off = un.rnglists_base + a
    else:
        off = val
    if off >= <uint64_t>sec.shape[0]:
        return out
    c.p = &sec[0] + off
    c.end = &sec[0] + sec.shape[0]
    c.err = 0
    while not c.err:
        kind = <uint8_t>rd_n(&c, 1)
        if kind == 0:
            break
        elif kind == 1:
            base = read_addrx(addrs, un, rd_uleb(&c))
        elif kind == 2:
            a = read_addrx(addrs, un, rd_uleb(&c))
            b = read_addrx(addrs, un, rd_uleb(&c))
            if b > a:
                out.append((a, b))
        elif kind == 3:
            a = read_addrx(addrs, un, rd_uleb(&c))
            b = a + rd_uleb(&c)
            if b > a:
                out.append((a, b))
        elif kind == 4:
            a = rd_uleb(&c)
            b = rd_uleb(&c)
            if b > a:
                out.append((base + a, base + b))
        elif kind == 5:
            base = rd_n(&c, un.addr_size)
        elif kind == 6:
            a = rd_n(&c, un.addr_size)
            b = rd_n(&c, un.addr_size)
            if b > a:
                out.append((a, b))
        elif kind == 7:
            a = rd_n(&c, un.addr_size)
            b = a + rd_uleb(&c)
            if b > a:
                out.append((a, b))
        else:
            break
    return out


def unit_ranges(Sections s, Unit un):
    """The pc ranges a unit's top DIE claims: [(lo, hi), ...]."""
    cdef uint64_t lo = un.low_pc, hi
    if un.has_low == V_ADDRX:
        lo = read_addrx(s.addr, un, un.low_pc)
    if un.has_ranges:
        return decode_ranges(s, un, un.ranges_class, un.ranges_val, lo)
    if un.has_low and un.has_high:
        hi = un.high_pc
        if un.has_high == V_ADDRX:
            hi = read_addrx(s.addr, un, un.high_pc)
        elif un.high_is_offset:
            hi = lo + un.high_pc
        if hi > lo:
            return [(lo, hi)]
    return []


def string_value(Sections s, Unit un, int cls, uint64_t val):
    """Decode a string-class attribute value of a unit."""
    cdef const uint8_t[::1] sec
    cdef uint64_t off = 0, pos
    if cls == V_STRING:
        sec = s.info
        return cstr_at(&sec[0], sec.shape[0], val)
    if cls == V_STRP:
        sec = s.str_
    elif cls == V_LINESTRP:
        sec = s.line_str
    elif cls == V_STRX:
        sec = s.str_offsets
        off = un.str_offsets_base + val * un.offset_size
        if sec.shape[0] == 0 or off + un.offset_size > <uint64_t>sec.shape[0]:
            return ""
        pos = off
        off = 0
        memcpy(&off, &sec[pos], un.offset_size)
        sec = s.str_
        val = off
    else:
        return ""
    if sec.shape[0] == 0:
        return ""
    return cstr_at(&sec[0], sec.shape[0], val)


# --- DIE scan of one unit: functions and inlined calls with their pc ranges ----------------
cdef class ScopeIndex:
    """The subprograms and inlined subroutines of one unit that own pc ranges.

    Entries are in DIE order with their nesting depth; rows are their (lo, hi) pieces.
    A lookup scans the rows (a few thousand at most) and returns the chain of entries
    containing the address, outermost first.
    """

    cdef uint64_t *lo
    cdef uint64_t *hi
    cdef int32_t *row_entry
    cdef public int nrows
    cdef public list entries  # (tag, depth, die_offset, call_file, call_line)

    def __dealloc__(self):
        free(self.lo)
        free(self.hi)
        free(self.row_entry)

    def chain(self, uint64_t addr):
        """Entries containing addr, outermost first: list of entry tuples."""
        cdef int i
        hits = []
        for i in range(self.nrows):
            if self.lo[i] <= addr < self.hi[i]:
                hits.append(self.row_entry[i])
        if not hits:
            return []
        found = [self.entries[e] for e in sorted(set(hits))]
        found.sort(key=lambda e: e[1])
        # keep one entry per depth (the last one in DIE order) forming a chain
        by_depth = {}
        for e in found:
            by_depth[e[1]] = e
        return [by_depth[d] for d in sorted(by_depth)]

    def all_ranges(self):
        """[(lo, hi, entry_index), ...] for tests and tools."""
        return [(self.lo[i], self.hi[i], self.row_entry[i]) for i in range(self.nrows)]


def scan_unit(Sections s, Unit un, double deadline):
    """Scan every DIE of a unit once; return its ScopeIndex (raises TimeBoxExceeded)."""
    cdef const uint8_t[::1] info = s.info
    cdef Abbrevs ab = un.abbrevs
    cdef UnitCtx u
    cdef Cur c
    cdef uint64_t code, val, low = 0, high = 0, sibling = 0, rv = 0, cfile, cline, die_off
    cdef int idx, k, i, cls, depth = 0, has_low, has_high, high_cls = 0, has_rng, rng_cls = 0
    cdef int has_sib, n_dies = 0, cap = 256, interesting
    cdef uint32_t at, tag
    cdef uint64_t base = un.low_pc
    cdef ScopeIndex si = ScopeIndex()
    si.entries = []
    si.lo = <uint64_t *>malloc(cap * sizeof(uint64_t))
    si.hi = <uint64_t *>malloc(cap * sizeof(uint64_t))
    si.row_entry = <int32_t *>malloc(cap * sizeof(int32_t))
    if un.has_low == V_ADDRX:
        base = read_addrx(s.addr, un, un.low_pc)
    un.ctx(&u, &info[0])
    c.p = &info[0] + un.die_offset
    c.end = &info[0] + un.end
    c.err = 0
    while c.p < c.end and not c.err:
        die_off = <uint64_t>(c.p - &info[0])
        code = rd_uleb(&c)
        if code == 0:
            depth -= 1
            if depth <= 0:
                break
            continue
        if code >= ab.ncodes or ab.code_idx[code] < 0:
            raise DwarfError(f"unknown abbrev code {code} at DIE 0x{die_off:x}")
        n_dies += 1
        if (n_dies & 0xfff) == 0 and deadline > 0 and now() > deadline:
            raise TimeBoxExceeded(f"unit at 0x{un.offset:x} exceeded its time box")
        idx = ab.code_idx[code]
        tag = ab.tag[idx]
        interesting = tag == TAG_subprogram or tag == TAG_inlined_subroutine
        has_low = has_high = has_rng = has_sib = 0
        cfile = cline = 0
        for k in range(ab.attr_count[idx]):
            i = ab.attr_start[idx] + k
            at = ab.at_name[i]
            cls = read_form(&u, &c, ab.at_form[i], ab.at_const[i], &val)
            if at == AT_sibling:
                has_sib = 1
                sibling = val
            elif not interesting:
                continue
            elif at == AT_low_pc:
                has_low = cls
                low = val
            elif at == AT_high_pc:
                has_high = 1
                high_cls = cls
                high = val
            elif at == AT_ranges:
                has_rng = 1
                rng_cls = cls
                rv = val
            elif at == AT_call_file:
                cfile = val
            elif at == AT_call_line:
                cline = val
        if c.err:
            raise DwarfError(f"truncated DIE at 0x{die_off:x}")
        if interesting and (has_low or has_rng):
            pieces = None
            if has_rng:
                pieces = decode_ranges(s, un, rng_cls, rv, base)
            elif has_high:
                if has_low == V_ADDRX:
                    low = read_addrx(s.addr, un, low)
                if high_cls == V_ADDRX:
                    high = read_addrx(s.addr, un, high)
                elif high_cls != V_ADDR:
                    high = low + high
                if high > low:
                    pieces = [(low, high)]
            if pieces:
                e = len(si.entries)
                si.entries.append((tag, depth, die_off, cfile, cline))
                for p in pieces:
                    if si.nrows == cap:
                        cap *= 2
                        si.lo = <uint64_t *>realloc(si.lo, cap * sizeof(uint64_t))
                        si.hi = <uint64_t *>realloc(si.hi, cap * sizeof(uint64_t))
                        si.row_entry = <int32_t *>realloc(si.row_entry, cap * sizeof(int32_t))
                    si.lo[si.nrows] = p[0]
                    si.hi[si.nrows] = p[1]
                    si.row_entry[si.nrows] = e
                    si.nrows += 1
        elif ab.children[idx] and has_sib and depth > 0 and not (
                tag == TAG_lexical_block or tag == TAG_namespace or tag == TAG_try_block
                or tag == TAG_catch_block):
            # nothing with code below this DIE: jump over its children
            if un.offset + 0 < sibling <= un.end and sibling > die_off:
                c.p = &info[0] + sibling
                continue
        if ab.children[idx]:
            depth += 1
        elif depth == 0:
            break
    if c.err:
        raise DwarfError("truncated unit")
    return si


def die_names(Sections s, Unit un, uint64_t die_off):
    """(linkage_name_ref, name_ref, origin_offset) of one DIE; refs are (cls, value)."""
    cdef const uint8_t[::1] info = s.info
    cdef Abbrevs ab = un.abbrevs
    cdef UnitCtx u
    cdef Cur c
    cdef uint64_t code, val
    cdef int idx, k, i, cls
    cdef uint32_t at
    if die_off < un.die_offset or die_off >= un.end:
        raise DwarfError("DIE outside its unit")
    un.ctx(&u, &info[0])
    c.p = &info[0] + die_off
    c.end = &info[0] + un.end
    c.err = 0
    code = rd_uleb(&c)
    if code == 0 or code >= ab.ncodes or ab.code_idx[code] < 0:
        raise DwarfError(f"bad DIE at 0x{die_off:x}")
    idx = ab.code_idx[code]
    linkage = name = origin = None
    for k in range(ab.attr_count[idx]):
        i = ab.attr_start[idx] + k
        at = ab.at_name[i]
        cls = read_form(&u, &c, ab.at_form[i], ab.at_const[i], &val)
        if c.err:
            raise DwarfError("truncated DIE")
        if at == AT_linkage_name or at == AT_MIPS_linkage_name:
            linkage = (cls, val)
        elif at == AT_name:
            name = (cls, val)
        elif at == AT_abstract_origin or at == AT_specification:
            if cls == V_REF and origin is None:
                origin = val
            elif cls == V_ALTREF and origin is None:
                origin = ("alt", val)
    return linkage, name, origin


# --- line programs -----------------------------------------------------------------------
cdef class LineTable:
    """One decoded line program: rows grouped in sequences, sorted by address."""

    cdef uint64_t *addr
    cdef uint32_t *line
    cdef uint32_t *file
    cdef public int nrows
    cdef public list files  # file index -> path ("" for index 0 in DWARF < 5)
    cdef public list seqs  # sorted (start, end, first_row, last_row_excl)
    cdef public list seq_starts

    def __dealloc__(self):
        free(self.addr)
        free(self.line)
        free(self.file)

    def lookup(self, uint64_t target):
        """(file_index, line) of the row covering target, or None."""
        cdef int lo, hi, mid, first, last
        cdef Py_ssize_t i = _bisect_right(self.seq_starts, target) - 1, j
        first = last = -1
        for j in range(i, max(i - 4, -1), -1):  # overlapping sequences are rare
            start, end, f, l = self.seqs[j]
            if start <= target < end:
                first = f
                last = l
                break
        if first < 0:
            return None
        lo = first
        hi = last  # find last row in [first, last) with addr <= target
        while lo < hi:
            mid = (lo + hi) // 2
            if self.addr[mid] <= target:
                lo = mid + 1
            else:
                hi = mid
        if lo == first:
            return None
        return self.file[lo - 1], self.line[lo - 1]

    def rows(self):
        """[(addr, file, line), ...] for tests and tools."""
        return [(self.addr[i], self.file[i], self.line[i]) for i in range(self.nrows)]


def _bisect_right(list a, x):
    cdef Py_ssize_t lo = 0, hi = len(a), mid
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


cdef object read_lnct(Sections s, Unit un, Cur *c, uint64_t form, int osz):
    """One value of a DWARF 5 file/directory entry: str, int or None."""
    cdef UnitCtx u
    cdef uint64_t val = 0
    cdef const uint8_t *start = c.p
    cdef int cls
    u.version = 5
    u.addr_size = un.addr_size
    u.offset_size = osz
    u.cu_off = 0
    u.info = c.p
    if form == FORM_string:
        skip_cstr(c)
        if c.err:
            return None
        return (<const char *>start)[:c.p - start - 1].decode("utf-8", "replace")
    cls = read_form(&u, c, form, 0, &val)
    if cls in (V_STRP, V_LINESTRP, V_STRX):
        return string_value(s, un, cls, val)
    if cls in (V_CONST, V_SCONST, V_FLAG):
        return val
    return None


def _join(a, b):
    if not a or b.startswith("/"):
        return b
    return a + b if a.endswith("/") else a + "/" + b


def decode_lines(Sections s, Unit un, str comp_dir, double deadline):
    """Decode the unit's line program into a LineTable (raises TimeBoxExceeded)."""
    cdef const uint8_t[::1] sec = s.line
    cdef Cur c, h
    cdef uint64_t off = un.stmt_list, length, hlen, end, addr = 0, op, n, ext_len
    cdef const uint8_t *ext_end
    cdef const uint8_t *prog
    cdef int osz = 4, version, min_inst, max_ops, line_base, line_range, opcode_base
    cdef int i, j, fmt_n, adj
    cdef int64_t line = 1
    cdef uint32_t file = 1
    cdef uint8_t std_len[256]
    cdef int cap = 1024, nrows = 0, seq_first = 0, nops = 0
    cdef const uint8_t *sp
    cdef uint64_t seq_start = 0
    cdef int emit, end_seq
    cdef LineTable lt = LineTable()
    if off >= <uint64_t>sec.shape[0]:
        raise DwarfError("stmt_list out of range")
    c.p = &sec[0] + off
    c.end = &sec[0] + sec.shape[0]
    c.err = 0
    length = rd_n(&c, 4)
    if length == 0xffffffff:
        length = rd_n(&c, 8)
        osz = 8
    end = <uint64_t>(c.p - &sec[0]) + length
    if end > <uint64_t>sec.shape[0]:
        raise DwarfError("line program out of range")
    c.end = &sec[0] + end
    version = <int>rd_n(&c, 2)
    if version < 2 or version > 5:
        raise DwarfError(f"unsupported line table version {version}")
    if version >= 5:
        rd_n(&c, 1)  # address_size
        rd_n(&c, 1)  # seg_sel_size
    hlen = rd_n(&c, osz)
    prog = c.p + hlen
    min_inst = <int>rd_n(&c, 1)
    max_ops = <int>rd_n(&c, 1) if version >= 4 else 1
    default_is_stmt = rd_n(&c, 1)
    line_base = <int>(<signed char>rd_n(&c, 1))
    line_range = <int>rd_n(&c, 1)
    opcode_base = <int>rd_n(&c, 1)
    if line_range == 0 or c.err:
        raise DwarfError("bad line program header")
    for i in range(1, opcode_base):
        std_len[i] = <uint8_t>rd_n(&c, 1)
    dirs = []
    files = []
    if version >= 5:
        fmt_n = <int>rd_n(&c, 1)
        fmts = [(rd_uleb(&c), rd_uleb(&c)) for j in range(fmt_n)]
        n = rd_uleb(&c)
        for j in range(<int>n):
            d = ""
            for ct, form in fmts:
                v = read_lnct(s, un, &c, form, osz)
                if ct == 1 and isinstance(v, str):
                    d = v
            if c.err:
                raise DwarfError("bad directory table")
            dirs.append(d)
        # relative directories (entry 0 included) hang off the unit's DW_AT_comp_dir,
        # as elfutils joins them
        for j in range(len(dirs)):
            dirs[j] = _join(comp_dir, dirs[j])
        fmt_n = <int>rd_n(&c, 1)
        fmts = [(rd_uleb(&c), rd_uleb(&c)) for j in range(fmt_n)]
        n = rd_uleb(&c)
        for j in range(<int>n):
            name = ""
            di = 0
            for ct, form in fmts:
                v = read_lnct(s, un, &c, form, osz)
                if ct == 1 and isinstance(v, str):
                    name = v
                elif ct == 2 and isinstance(v, int):
                    di = v
            if c.err:
                raise DwarfError("bad file table")
            files.append(_join(dirs[di] if di < len(dirs) else "", name))
    else:
        dirs.append(comp_dir)
        while not c.err and c.p < c.end and c.p[0] != 0:
            sp = c.p
            skip_cstr(&c)
            d = (<const char *>sp)[:c.p - sp - 1].decode("utf-8", "replace")
            dirs.append(_join(comp_dir, d))
        skip(&c, 1)
        files.append("")
        while not c.err and c.p < c.end and c.p[0] != 0:
            sp = c.p
            skip_cstr(&c)
            name = (<const char *>sp)[:c.p - sp - 1].decode("utf-8", "replace")
            di = rd_uleb(&c)
            rd_uleb(&c)
            rd_uleb(&c)
            files.append(_join(dirs[di] if di < len(dirs) else "", name))
        if c.err:
            raise DwarfError("bad file table")
    # the program
    c.p = prog
    lt.files = files
    lt.addr = <uint64_t *>malloc(cap * sizeof(uint64_t))
    lt.line = <uint32_t *>malloc(cap * sizeof(uint32_t))
    lt.file = <uint32_t *>malloc(cap * sizeof(uint32_t))
    seqs = []
    while c.p < c.end and not c.err:
        op = c.p[0]
        c.p += 1
        emit = 0
        end_seq = 0
        nops += 1
        if (nops & 0xffff) == 0 and deadline > 0 and now() > deadline:
            raise TimeBoxExceeded("line program exceeded its time box")
        if op >= <uint64_t>opcode_base:
            adj = <int>op - opcode_base
            addr += (adj // line_range) * min_inst
            line += line_base + adj % line_range
            emit = 1
        elif op == 0:
            ext_len = rd_uleb(&c)
            if ext_len == 0 or <uint64_t>(c.end - c.p) < ext_len:
                break
            ext_end = c.p + ext_len
            op = c.p[0]
            c.p += 1
            if op == 1:
                emit = 1
                end_seq = 1
            elif op == 2:
                addr = rd_n(&c, <int>(ext_len - 1))
            c.p = ext_end
        elif op == 1:
            emit = 1
        elif op == 2:
            addr += rd_uleb(&c) * min_inst
        elif op == 3:
            line += rd_sleb(&c)
        elif op == 4:
            file = <uint32_t>rd_uleb(&c)
        elif op == 5:
            rd_uleb(&c)
        elif op == 8:
            addr += ((255 - opcode_base) // line_range) * min_inst
        elif op == 9:
            addr += rd_n(&c, 2)
        elif op == 6 or op == 7 or op == 10 or op == 11:
            pass
        else:
            for j in range(std_len[op]):
                rd_uleb(&c)
        if emit:
            if nrows == cap:
                cap *= 2
                lt.addr = <uint64_t *>realloc(lt.addr, cap * sizeof(uint64_t))
                lt.line = <uint32_t *>realloc(lt.line, cap * sizeof(uint32_t))
                lt.file = <uint32_t *>realloc(lt.file, cap * sizeof(uint32_t))
            if nrows == seq_first:
                seq_start = addr
            lt.addr[nrows] = addr
            lt.line[nrows] = <uint32_t>line
            lt.file[nrows] = file
            nrows += 1
            if end_seq:
                # rows [seq_first, nrows-1) describe [seq_start, addr)
                if addr > seq_start and nrows - 1 > seq_first:
                    seqs.append((seq_start, addr, seq_first, nrows - 1))
                seq_first = nrows
                addr = 0
                line = 1
                file = 1
    lt.nrows = nrows
    seqs.sort()
    lt.seqs = seqs
    lt.seq_starts = [q[0] for q in seqs]
    return lt
