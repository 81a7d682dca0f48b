# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""An ELF file's function symbols sorted by address, in one flat C array.

As Python tuples, libllvmlite's 143,000 symbols took 1.3 s to parse, sort and index; `run
--native` paid that at exit whenever one address in such a library was not in the
persistent cache yet. Here they take milliseconds: names stay bytes in their string tables
and become str only when a lookup returns one.
"""

from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, qsort, realloc
from libc.string cimport memchr, memcmp

cdef enum:
    STT_FUNC = 2
    STT_GNU_IFUNC = 10

cdef struct Sym:
    uint64_t addr
    uint64_t size
    int32_t rank       # at one address: global over weak over local, exported over not
    uint32_t table     # index of its string table
    uint64_t name      # offset of its name in that table
    uint64_t length    # bytes of the name (up to a version's '@')

# the string tables of the table being sorted (qsort's comparator has no context)
cdef const char **_sort_bases = NULL


cdef int _compare(const void *pa, const void *pb) noexcept nogil:
    """(addr, rank, name, size): the order the Python table had, made total."""
    cdef const Sym *a = <const Sym *>pa
    cdef const Sym *b = <const Sym *>pb
    if a.addr != b.addr:
        return -1 if a.addr < b.addr else 1
    if a.rank != b.rank:
        return -1 if a.rank < b.rank else 1
    cdef uint64_t n = a.length if a.length < b.length else b.length
    cdef int c = memcmp(_sort_bases[a.table] + a.name, _sort_bases[b.table] + b.name, n)
    if c != 0:
        return c
    if a.length != b.length:
        return -1 if a.length < b.length else 1
    if a.size != b.size:
        return -1 if a.size < b.size else 1
    return 0


cdef inline uint64_t _u(const uint8_t *p, int n, bint little) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    if little:
        for i in range(n - 1, -1, -1):
            v = (v << 8) | p[i]
    else:
        for i in range(n):
            v = (v << 8) | p[i]
    return v


cdef class SymbolTable:
    """Function symbols sorted by address: a name at once for any address.

    Fill it with add_elf() (a raw .symtab/.dynsym and its string table) and add() (one
    symbol), then finish(); or give the symbols as (addr, size, name, rank) tuples."""

    cdef Sym *_syms
    cdef Py_ssize_t _n
    cdef Py_ssize_t _cap
    cdef list _strings          # the buffers (string tables) the names point into
    cdef const char **_bases
    cdef bytearray _extra       # names given one by one
    cdef bint _finished

    def __cinit__(self):
        self._syms = NULL
        self._n = self._cap = 0
        self._strings = []
        self._bases = NULL
        self._extra = bytearray()
        self._finished = False

    def __dealloc__(self):
        free(self._syms)
        free(self._bases)

    def __init__(self, symbols=None):
        if symbols is not None:
            for addr, size, name, rank in symbols:
                self.add(addr, size, name, rank)
            self.finish()

    cdef int _grow(self, Py_ssize_t more) except -1:
        cdef Py_ssize_t cap = self._cap
        if self._n + more <= cap:
            return 0
        while cap < self._n + more:
            cap = cap * 2 if cap else 1024
        cdef Sym *p = <Sym *>realloc(self._syms, cap * sizeof(Sym))
        if p == NULL:
            raise MemoryError()
        self._syms = p
        self._cap = cap
        return 0

    def add(self, uint64_t addr, uint64_t size, str name, int rank) -> None:
        """One symbol, its name as given."""
        if self._finished:
            raise ValueError("the table is finished")
        raw = name.encode("utf-8", "surrogatepass")
        self._grow(1)
        cdef Sym *s = &self._syms[self._n]
        s.addr, s.size, s.rank = addr, size, rank
        s.table = 0xFFFFFFFF  # the extra names: placed when finished
        s.name = len(self._extra)
        s.length = len(raw)
        self._extra += raw
        self._n += 1

    def add_elf(self, const uint8_t[::1] entries, object strtab, bint is64,
                bint little, int rank_add=0) -> int:
        """The function symbols of a raw symbol table section (with its string table):
        STT_FUNC and STT_GNU_IFUNC, defined (a section index), at a non-zero address; a
        version suffix (`name@VER`) is left out. Returns how many were added. The string
        table is any buffer (a mapped file's, say) and is kept, not copied: PyTorch's is
        76 MB."""
        if self._finished:
            raise ValueError("the table is finished")
        cdef Py_ssize_t entsize = 24 if is64 else 16
        cdef Py_ssize_t count = entries.shape[0] // entsize
        cdef uint32_t table = len(self._strings)
        cdef const uint8_t[::1] strview = strtab
        self._strings.append(strtab)
        cdef Py_ssize_t nstrs = strview.shape[0]
        cdef const uint8_t *strs = <const uint8_t *>""
        if nstrs:
            strs = &strview[0]
        cdef const uint8_t *base = &entries[0] if count else NULL
        cdef const uint8_t *e
        cdef const uint8_t *z
        cdef const uint8_t *at
        cdef uint64_t name, value, size, length
        cdef uint8_t info, typ
        cdef uint32_t shndx
        cdef Py_ssize_t i, added = 0
        self._grow(count)
        with nogil:
            for i in range(count):
                e = base + i * entsize
                if is64:  # name:4 info:1 other:1 shndx:2 value:8 size:8
                    name = _u(e, 4, little)
                    info = e[4]
                    shndx = <uint32_t>_u(e + 6, 2, little)
                    value = _u(e + 8, 8, little)
                    size = _u(e + 16, 8, little)
                else:  # name:4 value:4 size:4 info:1 other:1 shndx:2
                    name = _u(e, 4, little)
                    value = _u(e + 4, 4, little)
                    size = _u(e + 8, 4, little)
                    info = e[12]
                    shndx = <uint32_t>_u(e + 14, 2, little)
                typ = info & 0xF
                if (typ != STT_FUNC and typ != STT_GNU_IFUNC) or shndx == 0 or value == 0:
                    continue
                length = 0
                if <Py_ssize_t>name < nstrs:
                    z = <const uint8_t *>memchr(strs + name, 0, nstrs - name)
                    length = (z - (strs + name)) if z != NULL else (nstrs - name)
                    at = <const uint8_t *>memchr(strs + name, 64, length)  # '@'
                    if at != NULL and at != strs + name:
                        length = at - (strs + name)
                else:
                    name = 0
                self._syms[self._n].addr = value
                self._syms[self._n].size = size
                self._syms[self._n].rank = (info >> 4 == 1) * 2 + (info >> 4 == 2) + rank_add
                self._syms[self._n].table = table
                self._syms[self._n].name = name
                self._syms[self._n].length = length
                self._n += 1
                added += 1
        return added

    def finish(self) -> None:
        """Sort by address (the preferred name last among a place's), drop duplicates."""
        global _sort_bases
        if self._finished:
            return
        self._finished = True
        cdef uint32_t extra = len(self._strings)
        self._strings.append(bytes(self._extra))
        self._extra = bytearray()
        cdef Py_ssize_t i, j
        for i in range(self._n):
            if self._syms[i].table == 0xFFFFFFFF:
                self._syms[i].table = extra
        self._bases = <const char **>realloc(NULL, (len(self._strings) + 1) * sizeof(char *))
        if self._bases == NULL:
            raise MemoryError()
        cdef const uint8_t[::1] view
        for i, s in enumerate(self._strings):
            view = s
            if view.shape[0]:
                self._bases[i] = <const char *>&view[0]
            else:
                self._bases[i] = ""
        _sort_bases = self._bases
        qsort(self._syms, self._n, sizeof(Sym), _compare)
        j = 0
        for i in range(self._n):
            if j and _compare(&self._syms[j - 1], &self._syms[i]) == 0:
                continue
            self._syms[j] = self._syms[i]
            j += 1
        _sort_bases = NULL
        self._n = j

    cdef str _name(self, Py_ssize_t i):
        cdef const Sym *s = &self._syms[i]
        return (self._bases[s.table] + s.name)[:s.length].decode("utf-8", "replace")

    cdef Py_ssize_t _last_at_or_before(self, uint64_t vaddr) noexcept:
        """The index of the last symbol starting at or before vaddr, -1 if none."""
        cdef Py_ssize_t lo = 0, hi = self._n, mid
        while lo < hi:
            mid = (lo + hi) // 2
            if self._syms[mid].addr <= vaddr:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1

    def __len__(self) -> int:
        return self._n

    def lookup(self, uint64_t vaddr):
        """(addr, size, name) of the function containing vaddr (sized, or the nearest
        preceding zero-size symbol), else None."""
        if not self._finished:
            raise ValueError("the table is not finished")
        cdef Py_ssize_t i = self._last_at_or_before(vaddr)
        cdef Py_ssize_t j = i, best = -1
        cdef const Sym *s
        # several symbols may start at one address; prefer a sized one covering vaddr
        while j >= 0 and self._syms[j].addr == self._syms[i].addr:
            s = &self._syms[j]
            if s.addr <= vaddr < s.addr + s.size:
                return (s.addr, s.size, self._name(j))
            if s.size == 0 and best < 0:
                best = j
            j -= 1
        if best < 0:
            return None
        return (self._syms[best].addr, self._syms[best].size, self._name(best))

    def aliases(self, uint64_t addr) -> list:
        """Every name at addr, the preferred one last."""
        cdef Py_ssize_t i = self._last_at_or_before(addr)
        out = []
        while i >= 0 and self._syms[i].addr == addr:
            out.append(self._name(i))
            i -= 1
        out.reverse()
        return out

    def entries(self) -> list:
        """Every symbol as (addr, size, name, rank), in the order added (before finish()) or
        sorted (after)."""
        cdef const Sym *s
        out = []
        for i in range(self._n):
            s = &self._syms[i]
            raw = self._extra if s.table == 0xFFFFFFFF else self._strings[s.table]
            out.append((s.addr, s.size,
                        bytes(raw[s.name:s.name + s.length]).decode("utf-8", "replace"),
                        s.rank))
        return out

    @property
    def syms(self) -> list:
        """Every symbol as (addr, size, name), in order (for tests and tools)."""
        return [(self._syms[i].addr, self._syms[i].size, self._name(i)) for i in range(self._n)]

    @property
    def addrs(self) -> list:
        return [self._syms[i].addr for i in range(self._n)]
