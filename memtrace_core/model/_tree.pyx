# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The call-tree builder in C speed: reader stacks -> hybrid frame paths -> tree nodes.

One builder serves `live`, `view` and every report. Per stack it walks the reader's tries
(Python and native) in C, merges them (`_merge`, the rules of symbols/hybrid.py) into a
path of interned frame ids, and links the path into the tree. Counters are applied in
*commits*: each changed stack adds its delta to its leaf, and the deltas are pushed up
bottom-up, once per dirty node (not once per stack and frame), updating the per-location
totals (a recursive frame counts a stack once) on the way; per-thread totals are kept for
every stack, shown or not.

Exactness: between commits the tree holds exactly the counters it last applied, so its
root equals the reader's figures of that moment. New stacks are linked in before their
counters arrive (nodes with zero counters are invisible), and a commit itself runs in
steps: the deltas gather in pending pools (per node, per frame, per thread) and are pushed
up to every dirty ancestor there, then one short pass adds the pools to the visible
counters. So every step is short while every visible number stays consistent.

Native addresses enter as `lib+0xoffset` frames (the namer's provisional names) and are
renamed in place when names arrive: the stacks that hold them move to their new paths
(counters leave the old nodes and reach the new ones in one commit), and a node left
without stacks dies, naming its successor for the UI's selection.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memmove, memset

from memtrace_core.model.treecore cimport *
from memtrace_core.reader._reader cimport StreamReader, mt_stack

from memtrace_core.frames import CUT_MARKER_BASE, Frame, FrameKind
from memtrace_core.symbols import hybrid as _rules


cdef enum:
    NC = MT_NC  # counters per stack, defined once in treecore.h (metrics.py names them)
    LOC = 3 * MT_NC  # per frame: own[NC], total[NC], user-own[NC]

N_COUNTERS = NC
"""treecore.h's MT_NC, for the check that metrics.py's N_COUNTERS agrees."""

cdef inline bint any_counted(const int64_t *c) noexcept:
    cdef int i
    for i in range(NC):
        if c[i]:
            return True
    return False


cdef uint8_t F_PY = _rules.F_PY
cdef uint8_t F_INTERP = _rules.F_INTERP
cdef uint8_t F_MEMTRACE = _rules.F_MEMTRACE
cdef uint8_t F_IMPORT = _rules.F_IMPORT
cdef uint8_t F_USER = _rules.F_USER
cdef uint8_t F_MATCH = _rules.F_MATCH
cdef uint8_t F_CUT = _rules.F_CUT
cdef uint8_t F_ALLOC = _rules.F_ALLOC
cdef size_t ALLOC_GAP = 3  # an allocator's unnamed frames between two named ones
cdef uint8_t A_EVAL = _rules.A_EVAL
cdef uint8_t A_ROOT = _rules.A_ROOT
cdef uint8_t A_PENDING = _rules.A_PENDING
cdef uint8_t A_CUT = _rules.A_CUT
cdef uint8_t A_ANON = _rules.A_ANON
cdef uint64_t CUT_BASE = CUT_MARKER_BASE

cdef enum:
    P_IDLE = 0
    P_COLLECT = 1
    P_CLASSIFY = 2
    P_BUILD = 3
    P_RENAME = 4
    P_APPLY = 5  # stacks' deltas into the pending pools (nothing visible changes)
    P_PUSH = 6  # pending deltas pushed up to every dirty ancestor (still invisible)
    P_FINAL = 7  # the pools land in the visible counters, in one short pass

CLASSIFY_CHUNK = 256  # addresses per namer call (a slice boundary)

ctypedef struct mstack:
    int64_t applied[NC]
    uint32_t *path     # frame ids, outermost first; NULL until built
    uint32_t plen
    uint32_t leaf      # node, or MT_NONE when not in the tree (excluded, or not linked)
    uint32_t user      # frame that gets the "own (user code)" figures, or MT_NONE
    uint32_t slot      # thread slot, MT_NONE until first applied
    uint32_t built_stamp  # rename stamp when the path was built
    uint8_t built
    uint8_t placed     # linked into the tree, or found excluded
    uint8_t pending    # the path holds provisional frames
    uint8_t listed     # in pending_list
    uint8_t in_work


cdef void *_resize(void *p, size_t old_n, size_t new_n, size_t elem) except NULL:
    """realloc to new_n elements, zeroing the part past old_n."""
    cdef void *q = realloc(p, new_n * elem if new_n else elem)
    if q == NULL:
        raise MemoryError()
    if new_n > old_n:
        memset(<char *>q + old_n * elem, 0, (new_n - old_n) * elem)
    return q


cdef void *_grow(void *p, size_t new_n, size_t elem) except NULL:
    """realloc to new_n elements, the new part left as it comes: a large block grows by
    remapping its pages (no copy), and zeroing tens of megabytes of a big tree's nodes at
    once held the UI's lock for tens of milliseconds (each node is set when it is made)."""
    cdef void *q = realloc(p, new_n * elem if new_n else elem)
    if q == NULL:
        raise MemoryError()
    return q


cdef inline size_t _next_cap(size_t cap, size_t need) noexcept:
    cdef size_t n = cap if cap else 64
    while n < need:
        n *= 2
    return n


cdef class TreeCore:
    """Nodes, stacks, frames and addresses of one call tree (see the module docstring)."""

    cdef object reader
    # baselines (live bytes, live count per stack id): counters 8-9 are live minus the
    # mark's, 10-11 live minus the growth window's start (none: minus nothing)
    cdef int64_t *base_mark
    cdef size_t n_base_mark
    cdef int64_t *base_grow
    cdef size_t n_base_grow
    cdef int64_t *base_at  # counters 12-13: in use at the timeline's cursor (as they are)
    cdef size_t n_base_at
    cdef StreamReader fast  # the reader when it is the C reader, else None (duck-typed)
    cdef readonly bint native
    cdef public object namer
    cdef readonly list frames  # fid -> Frame
    cdef dict frame_ids
    cdef dict py_big  # (code, line) -> fid for keys that do not pack into 64 bits
    cdef object match_fn  # Frame -> bool for the substring filter, or None

    # per frame
    cdef uint8_t *fflags
    cdef int64_t *loc
    cdef int64_t *ploc  # pending loc deltas of the current commit (fpend: frame listed)
    cdef uint8_t *fpend
    cdef uint32_t *pfr  # frames with pending loc deltas
    cdef size_t n_pfr, pfr_cap
    cdef uint32_t *fstamp
    cdef size_t fcap
    cdef uint32_t stamp

    # nodes
    cdef mt_node *nodes
    cdef size_t n_nodes, nodes_cap
    cdef mt_u64map childmap
    cdef mt_u64map succmap  # dead node -> its successor
    cdef uint32_t *dirty_heads  # per depth: first pending-delta slot
    cdef size_t dirty_cap
    cdef uint32_t max_dirty
    cdef bint any_dirty
    cdef bint push_fused  # one-go push: totals added on the way (nothing to show between)
    cdef int64_t push_depth  # the depth being pushed (P_PUSH), -1 when done
    cdef int64_t *pd_vals  # pending deltas: NC counters per slot
    cdef uint32_t *pd_node
    cdef uint32_t *pd_next
    cdef size_t n_pd, pd_cap
    cdef uint32_t *last_path  # the previous linked path (frame ids) and its nodes
    cdef uint32_t *last_nodes
    cdef size_t last_len, last_cap
    cdef readonly uint64_t epoch
    cdef readonly size_t live_nodes

    # stacks (index = reader stack id)
    cdef mstack *ms
    cdef size_t ms_cap, n_ms
    cdef uint32_t *pending_list
    cdef size_t n_pending, pending_cap

    # threads
    cdef mt_u64map slotmap
    cdef int64_t *slot_totals
    cdef int64_t *pslot  # pending per-thread deltas of the current commit
    cdef size_t slot_cap, n_slots
    cdef size_t n_slots_shown  # threads as of the last commit (newer ones wait for it)
    cdef list slot_threads

    # addresses
    cdef mt_u64map ipmap
    cdef uint64_t *aid_ip
    cdef uint8_t *aid_flags
    cdef uint32_t *aid_off
    cdef uint32_t *aid_len
    cdef uint32_t *aid_stamp
    cdef size_t aid_cap, n_aids
    cdef uint32_t *pool
    cdef size_t pool_cap, pool_len
    cdef readonly uint32_t rename_stamp
    cdef uint32_t *uncl
    cdef size_t n_uncl, uncl_cap, uncl_pos
    cdef readonly size_t n_pending_aids

    # per reader trie node caches (fast path)
    cdef uint32_t *nat_aid
    cdef size_t nat_aid_cap
    cdef uint32_t *py_fid
    cdef size_t py_fid_cap
    cdef mt_u64map pymap

    # settings
    cdef public int64_t thread  # -1: every thread
    cdef readonly bint show_internal

    # the current update
    cdef uint32_t *work
    cdef size_t n_work, work_cap, work_pos
    cdef readonly int phase
    cdef size_t scan_pos
    cdef bint scan_force, scan_skipped, rename_dirty
    cdef double last_flush
    cdef public double patience  # seconds a partly named stack may wait for its other names
    cdef uint32_t scan_stamp
    cdef uint32_t *moved  # (sid, old leaf, new leaf) of the current rename slice
    cdef size_t n_moved, moved_cap
    cdef readonly uint64_t stacks_built
    cdef readonly uint64_t stacks_moved

    # scratch buffers for one stack
    cdef uint32_t *b_pf
    cdef uint8_t *b_pe
    cdef uint32_t *b_na
    cdef uint32_t *b_mf
    cdef uint8_t *b_mo
    cdef uint32_t *b_out
    cdef uint32_t *b_old
    cdef uint32_t *b_new
    cdef size_t c_py, c_na, c_m, c_out, c_old, c_new

    def __cinit__(self):
        if (mt_map_init(&self.childmap) < 0 or mt_map_init(&self.slotmap) < 0
                or mt_map_init(&self.ipmap) < 0 or mt_map_init(&self.pymap) < 0
                or mt_map_init(&self.succmap) < 0):
            raise MemoryError()

    def __init__(self, reader, bint native=False, namer=None):
        self.reader = reader
        self.fast = reader if isinstance(reader, StreamReader) else None
        self.native = native
        self.namer = namer
        self.frames = []
        self.frame_ids = {}
        self.py_big = {}
        self.match_fn = None
        self.thread = -1
        self.slot_threads = []
        self.epoch = 0
        self.rename_stamp = 1
        self.patience = 0.5
        self._reset_nodes()

    def __dealloc__(self):
        cdef size_t i
        if self.ms != NULL:
            for i in range(self.n_ms):
                free(self.ms[i].path)
        free(self.ms)
        free(self.fflags); free(self.loc); free(self.fstamp)
        free(self.ploc); free(self.fpend); free(self.pfr); free(self.pslot)
        free(self.nodes); free(self.dirty_heads)
        free(self.pd_vals); free(self.pd_node); free(self.pd_next)
        free(self.last_path); free(self.last_nodes)
        free(self.pending_list); free(self.slot_totals)
        free(self.aid_ip); free(self.aid_flags); free(self.aid_off); free(self.aid_len)
        free(self.aid_stamp); free(self.pool); free(self.uncl)
        free(self.base_mark); free(self.base_grow); free(self.base_at)
        free(self.nat_aid); free(self.py_fid)
        free(self.work); free(self.moved)
        free(self.b_pf); free(self.b_pe); free(self.b_na); free(self.b_mf); free(self.b_mo)
        free(self.b_out); free(self.b_old); free(self.b_new)
        mt_map_free(&self.childmap); mt_map_free(&self.slotmap)
        mt_map_free(&self.ipmap); mt_map_free(&self.pymap); mt_map_free(&self.succmap)

    # ------------------------------------------------------------------ frames
    cpdef uint32_t intern(self, frame) except? 0xFFFFFFFF:
        """The id of a frame (equal frames share one id)."""
        got = self.frame_ids.get(frame)
        if got is not None:
            return got
        cdef uint32_t fid = len(self.frames)
        self.frames.append(frame)
        self.frame_ids[frame] = fid
        cdef size_t n
        if fid >= self.fcap:
            n = _next_cap(self.fcap, fid + 1)
            self.fflags = <uint8_t *>_resize(self.fflags, self.fcap, n, 1)
            self.fstamp = <uint32_t *>_resize(self.fstamp, self.fcap, n, sizeof(uint32_t))
            self.loc = <int64_t *>_resize(self.loc, self.fcap * LOC, n * LOC, sizeof(int64_t))
            self.ploc = <int64_t *>_resize(self.ploc, self.fcap * LOC, n * LOC,
                                           sizeof(int64_t))
            self.fpend = <uint8_t *>_resize(self.fpend, self.fcap, n, 1)
            self.fcap = n
        cdef uint8_t flags = _rules.frame_flags(frame)
        if self.match_fn is not None and self.match_fn(frame):
            flags |= F_MATCH
        self.fflags[fid] = flags
        return fid

    def frame_id(self, frame) -> int:
        """The id of a frame already seen, else -1."""
        return self.frame_ids.get(frame, -1)

    def frame_flag_bits(self, uint32_t fid) -> int:
        return self.fflags[fid]

    def set_match(self, match_fn) -> None:
        """Substring filter: match_fn(Frame) -> bool, or None for no filter (call reset)."""
        self.match_fn = match_fn
        cdef size_t i
        for i in range(len(self.frames)):
            if match_fn is not None and match_fn(self.frames[i]):
                self.fflags[i] |= F_MATCH
            else:
                self.fflags[i] &= ~F_MATCH

    cdef uint32_t _py_frame(self, uint64_t code, int64_t line) except? 0xFFFFFFFF:
        cdef uint64_t key
        cdef uint32_t fid
        cdef bint packs = code < (<uint64_t>1 << 32) and 0 <= line < (<int64_t>1 << 32)
        if packs:
            key = (code << 32) | <uint64_t>line
            fid = mt_map_get(&self.pymap, key)
            if fid != MT_NONE:
                return fid
        else:
            got = self.py_big.get((code, line))
            if got is not None:
                return got
        name, filename, _first = self.reader.codes.get(code, (f"<code {code}>", "", 0))
        fid = self.intern(Frame(name, filename, line, FrameKind.PYTHON))
        if packs:
            if mt_map_put(&self.pymap, key, fid) < 0:
                raise MemoryError()
        else:
            self.py_big[(code, line)] = fid
        return fid

    # ------------------------------------------------------------------ nodes
    cdef void _reset_nodes(self) except *:
        self.nodes = <mt_node *>_resize(self.nodes, 0, 1024, sizeof(mt_node))
        self.nodes_cap = 1024
        self.n_nodes = 1
        cdef mt_node *root = &self.nodes[0]
        root.parent = MT_NONE
        root.frame = MT_NONE
        root.first_child = MT_NONE
        root.next_sibling = MT_NONE
        root.prev_sibling = MT_NONE
        root.pend = MT_NONE
        root.alive = 1
        self.live_nodes = 1
        mt_map_clear(&self.childmap)
        mt_map_clear(&self.succmap)
        self.max_dirty = 0
        self.any_dirty = False
        self.n_pd = 0
        self.push_depth = -1
        if self.dirty_cap:
            memset(self.dirty_heads, 0xff, self.dirty_cap * sizeof(uint32_t))
        self.last_len = 0
        if self.fcap:
            memset(self.loc, 0, self.fcap * LOC * sizeof(int64_t))
            memset(self.ploc, 0, self.fcap * LOC * sizeof(int64_t))
            memset(self.fpend, 0, self.fcap)
        self.n_pfr = 0
        if self.slot_cap:
            memset(self.pslot, 0, self.slot_cap * NC * sizeof(int64_t))
        self._ensure_dirty_depth(1)
        self.epoch += 1

    cdef uint32_t _new_child(self, uint32_t parent, uint32_t fid,
                             bint repeat) except? 0xFFFFFFFF:
        """A new node under `parent` for frame `fid`."""
        if self.n_nodes >= 0xFFFFFFF0:
            raise MemoryError("call tree too large")
        cdef size_t n
        if self.n_nodes >= self.nodes_cap:
            n = _next_cap(self.nodes_cap, self.n_nodes + 1)
            self.nodes = <mt_node *>_grow(self.nodes, n, sizeof(mt_node))
            self.nodes_cap = n
        cdef uint32_t nid = <uint32_t>self.n_nodes
        self.n_nodes += 1
        self.live_nodes += 1
        cdef mt_node *node = &self.nodes[nid]
        cdef mt_node *par = &self.nodes[parent]
        memset(node, 0, sizeof(mt_node))
        node.parent = parent
        node.frame = fid
        node.first_child = MT_NONE
        node.prev_sibling = MT_NONE
        node.next_sibling = par.first_child
        if par.first_child != MT_NONE:
            self.nodes[par.first_child].prev_sibling = nid
        par.first_child = nid
        par.refs += 1  # a live child keeps its parent
        node.depth = par.depth + 1
        node.pend = MT_NONE
        node.alive = 1
        node.repeat = repeat
        if mt_map_put(&self.childmap, (<uint64_t>parent << 32) | fid, nid) < 0:
            raise MemoryError()
        return nid

    cdef void _kill(self, uint32_t nid) noexcept:
        """Unlink a node left without stacks or children (its counters are zero)."""
        cdef mt_node *node = &self.nodes[nid]
        cdef mt_node *par = &self.nodes[node.parent]
        if node.prev_sibling != MT_NONE:
            self.nodes[node.prev_sibling].next_sibling = node.next_sibling
        else:
            par.first_child = node.next_sibling
        if node.next_sibling != MT_NONE:
            self.nodes[node.next_sibling].prev_sibling = node.prev_sibling
        mt_map_del(&self.childmap, (<uint64_t>node.parent << 32) | node.frame)
        node.alive = 0
        self.live_nodes -= 1

    cdef uint32_t _link(self, uint32_t *path, uint32_t plen) except? 0xFFFFFFFF:
        """Link a path (outermost first) under the root, one stack more ending at its leaf;
        returns the leaf (the root for an empty path). The prefix shared with the previous
        path costs no lookup (consecutive stacks of a trie share their outer frames)."""
        cdef uint32_t node = 0, child, fid
        cdef size_t i = 0, n
        self.stamp += 1
        if self.stamp == 0:
            memset(self.fstamp, 0, self.fcap * sizeof(uint32_t))
            self.stamp = 1
        if plen > self.last_cap:
            n = _next_cap(self.last_cap, plen)
            self.last_path = <uint32_t *>_resize(self.last_path, self.last_cap, n,
                                                 sizeof(uint32_t))
            self.last_nodes = <uint32_t *>_resize(self.last_nodes, self.last_cap, n,
                                                  sizeof(uint32_t))
            self.last_cap = n
        while (i < plen and i < self.last_len and path[i] == self.last_path[i]
               and self.nodes[self.last_nodes[i]].alive):
            node = self.last_nodes[i]
            self.fstamp[path[i]] = self.stamp
            i += 1
        while i < plen:
            fid = path[i]
            child = mt_map_get(&self.childmap, (<uint64_t>node << 32) | fid)
            if child == MT_NONE:
                child = self._new_child(node, fid, self.fstamp[fid] == self.stamp)
            self.fstamp[fid] = self.stamp
            self.last_path[i] = fid
            self.last_nodes[i] = child
            node = child
            i += 1
        self.last_len = plen
        self.nodes[node].refs += 1
        return node

    cdef void _unref(self, uint32_t leaf) noexcept:
        """One stack less ends at `leaf`; nodes left with nothing die, upwards."""
        cdef uint32_t node = leaf
        cdef uint32_t parent
        self.nodes[node].refs -= 1
        while node != 0 and self.nodes[node].refs == 0:
            parent = self.nodes[node].parent
            self._kill(node)
            self.nodes[parent].refs -= 1
            node = parent

    cdef int _ensure_dirty_depth(self, size_t depth) except -1:
        cdef size_t n, i
        if depth < self.dirty_cap:
            return 0
        n = _next_cap(self.dirty_cap, depth + 1)
        self.dirty_heads = <uint32_t *>_resize(self.dirty_heads, self.dirty_cap, n,
                                               sizeof(uint32_t))
        for i in range(self.dirty_cap, n):
            self.dirty_heads[i] = MT_NONE
        self.dirty_cap = n
        return 0

    cdef int64_t *_pend(self, uint32_t nid) except NULL:
        """The node's pending-delta slot (made dirty)."""
        cdef mt_node *node = &self.nodes[nid]
        cdef uint32_t slot = node.pend
        cdef size_t n
        if slot != MT_NONE:
            return &self.pd_vals[<size_t>slot * NC]
        if self.n_pd >= self.pd_cap:
            n = _next_cap(self.pd_cap, self.n_pd + 1)
            # (a slot is set when taken: no zeroing of the new part, tens of megabytes
            # when a commit dirties more nodes than any before)
            self.pd_vals = <int64_t *>_grow(self.pd_vals, n * NC, sizeof(int64_t))
            self.pd_node = <uint32_t *>_grow(self.pd_node, n, sizeof(uint32_t))
            self.pd_next = <uint32_t *>_grow(self.pd_next, n, sizeof(uint32_t))
            self.pd_cap = n
        slot = <uint32_t>self.n_pd
        self.n_pd += 1
        node.pend = slot
        memset(&self.pd_vals[<size_t>slot * NC], 0, NC * sizeof(int64_t))
        self.pd_node[slot] = nid
        cdef uint32_t d = node.depth
        self.pd_next[slot] = self.dirty_heads[d]
        self.dirty_heads[d] = slot
        if d > self.max_dirty:
            self.max_dirty = d
        self.any_dirty = True
        return &self.pd_vals[<size_t>slot * NC]

    cdef int64_t *_ploc(self, uint32_t frame) except NULL:
        """The frame's pending loc deltas (own, total, user-own), listed for the final pass."""
        cdef size_t n
        if not self.fpend[frame]:
            if self.n_pfr >= self.pfr_cap:
                n = _next_cap(self.pfr_cap, self.n_pfr + 1)
                self.pfr = <uint32_t *>_resize(self.pfr, self.pfr_cap, n, sizeof(uint32_t))
                self.pfr_cap = n
            self.pfr[self.n_pfr] = frame
            self.n_pfr += 1
            self.fpend[frame] = 1
        return &self.ploc[<size_t>frame * LOC]

    cdef int _add_at_leaf(self, mstack *st, const int64_t *d, int64_t sign) except -1:
        """Counters of one stack arrive at (sign 1) or leave (-1) its leaf and locations:
        pending until the commit's final pass."""
        cdef uint32_t leaf = st.leaf
        cdef uint32_t frame = self.nodes[leaf].frame
        cdef uint32_t user = st.user
        cdef int64_t *pd = self._pend(leaf)
        cdef int i
        cdef int64_t *lo
        for i in range(NC):
            pd[i] += sign * d[i]
        if frame != MT_NONE:
            lo = self._ploc(frame)
            for i in range(NC):
                lo[i] += sign * d[i]
        if user != MT_NONE:
            lo = self._ploc(user) + 2 * NC
            for i in range(NC):
                lo[i] += sign * d[i]
        return 0

    cdef void _start_push(self, bint fused) noexcept:
        self.push_depth = self.max_dirty if self.any_dirty else -1
        self.push_fused = fused

    cdef bint _push(self, double deadline) except -1:
        """Push pending deltas up, deepest nodes first, each dirty node once: afterwards a
        node's slot holds the delta of its whole subtree. Resumable (the per-depth lists
        are consumed as it goes; a node only adds to its parent's, one depth up); False
        when the deadline passed first. Fused (one go): the totals are added on the way
        and the slots released."""
        cdef int64_t d
        cdef uint32_t slot, nid
        cdef mt_node *node
        cdef int64_t *pv
        cdef int64_t *pp
        cdef int64_t *lo
        cdef int i
        cdef size_t k = 0
        cdef bint fused = self.push_fused
        while self.push_depth >= 0:
            d = self.push_depth
            slot = self.dirty_heads[d]
            while slot != MT_NONE:
                k += 1
                if (k & 255) == 0 and mt_now() > deadline:
                    return False
                self.dirty_heads[d] = self.pd_next[slot]
                nid = self.pd_node[slot]
                pv = &self.pd_vals[<size_t>slot * NC]
                node = &self.nodes[nid]
                if fused:
                    node.pend = MT_NONE
                    for i in range(NC):
                        node.total[i] += pv[i]
                if node.frame != MT_NONE and not node.repeat:
                    lo = (&self.loc[<size_t>node.frame * LOC + NC] if fused
                          else self._ploc(node.frame) + NC)
                    for i in range(NC):
                        lo[i] += pv[i]
                if node.parent != MT_NONE:
                    pp = self._pend(node.parent)  # depth d - 1: taken in the next round
                    pv = &self.pd_vals[<size_t>slot * NC]  # (the pool may have moved)
                    for i in range(NC):
                        pp[i] += pv[i]
                slot = self.dirty_heads[d]
            self.push_depth -= 1
        return True

    cdef void _final(self) noexcept:
        """The pushed deltas land in the visible counters (nodes, locations, threads): one
        pass over the dirty nodes without the GIL, so the tree goes from one commit to the
        next at once and the lock is held only for this."""
        cdef size_t s, f, j, n_pd = self.n_pd, ahead
        cdef int i
        cdef mt_node *nodes = self.nodes
        cdef mt_node *node
        cdef const int64_t *pv
        cdef const uint32_t *pd_node = self.pd_node
        cdef const int64_t *pd_vals = self.pd_vals
        cdef int64_t *lo
        cdef int64_t *plo
        cdef bint fused = self.push_fused
        with nogil:
            if not fused:
                for s in range(n_pd):
                    ahead = s + 8
                    if ahead < n_pd:
                        mt_prefetch(&nodes[pd_node[ahead]])
                    node = &nodes[pd_node[s]]
                    node.pend = MT_NONE
                    pv = &pd_vals[s * NC]
                    for i in range(NC):
                        node.total[i] += pv[i]
            for j in range(self.n_pfr):
                f = self.pfr[j]
                lo = &self.loc[f * LOC]
                plo = &self.ploc[f * LOC]
                for i in range(LOC):
                    lo[i] += plo[i]
                    plo[i] = 0
                self.fpend[f] = 0
            for s in range(self.n_slots * NC):
                self.slot_totals[s] += self.pslot[s]
                self.pslot[s] = 0
        self.n_pfr = 0
        self.n_pd = 0
        self.max_dirty = 0
        self.any_dirty = False
        self.push_depth = -1
        self.n_slots_shown = self.n_slots

    cdef int _propagate(self) except -1:
        """Every pending delta into the visible counters, in one go (renames)."""
        self._start_push(True)
        self._push(1e300)
        self._final()
        return 0

    # ------------------------------------------------------------------ stacks
    cdef int _ensure_stacks(self, size_t n) except -1:
        cdef size_t i, cap
        if n > self.ms_cap:
            cap = _next_cap(self.ms_cap, n)
            self.ms = <mstack *>_resize(self.ms, self.ms_cap, cap, sizeof(mstack))
            self.ms_cap = cap
        for i in range(self.n_ms, n):
            self.ms[i].leaf = MT_NONE
            self.ms[i].user = MT_NONE
            self.ms[i].slot = MT_NONE
        if n > self.n_ms:
            self.n_ms = n
        return 0

    cdef size_t _reader_stacks(self) except? 0:
        if self.fast is not None:
            return self.fast.s.n_stacks
        return self.reader.n_stacks

    cdef int _counters(self, uint32_t sid, int64_t *out) except -1:
        cdef mt_stack *st
        cdef int i
        if self.fast is not None:
            st = &self.fast.s.stacks[sid]
            out[0] = st.alloc_bytes
            out[1] = st.alloc_count
            out[2] = st.live_bytes
            out[3] = st.live_count
            out[4] = st.peak_bytes
            out[5] = st.peak_count
            out[6] = st.temp_bytes
            out[7] = st.temp_count
        else:
            c = self.reader.stack_counters(sid)
            for i in range(6):
                out[i] = c[i]
            temp = getattr(self.reader, "stack_temporary", None)
            out[6], out[7] = temp(sid) if temp is not None else (0, 0)
        out[8] = out[2]
        out[9] = out[3]
        if sid < self.n_base_mark:
            out[8] -= self.base_mark[2 * sid]
            out[9] -= self.base_mark[2 * sid + 1]
        out[10] = out[2]
        out[11] = out[3]
        if sid < self.n_base_grow:
            out[10] -= self.base_grow[2 * sid]
            out[11] -= self.base_grow[2 * sid + 1]
        out[12] = self.base_at[2 * sid] if sid < self.n_base_at else 0
        out[13] = self.base_at[2 * sid + 1] if sid < self.n_base_at else 0
        return 0

    def live_snapshot(self) -> bytes:
        """Every stack's (live bytes, live count) in the reader now, as native int64 pairs
        by stack id: a baseline for set_baseline()."""
        cdef size_t i, n
        cdef bytearray buf
        cdef int64_t *out
        if self.fast is not None:
            return self.fast.live_snapshot()
        n = self._reader_stacks()
        buf = bytearray(16 * n)
        out = <int64_t *><char *>buf
        for i in range(n):
            c = self.reader.stack_counters(i)
            out[2 * i] = c[2]
            out[2 * i + 1] = c[3]
        return bytes(buf)

    def set_baseline(self, int which, snapshot) -> int:
        """Counters 8-9 (which 0: since the mark) or 10-11 (which 1: growth) become live
        minus a live_snapshot() (None: minus nothing); 12-13 (which 2: the timeline's
        instant) become the snapshot itself. Only between updates; the stacks whose figure
        moves are queued for the next one. Returns how many."""
        cdef const uint8_t[::1] view
        cdef const int64_t *new = NULL
        cdef size_t n_new = 0, i, n, queued = 0
        cdef int64_t *old = (self.base_mark if which == 0 else self.base_grow if which == 1
                             else self.base_at)
        cdef size_t n_old = (self.n_base_mark if which == 0 else self.n_base_grow
                             if which == 1 else self.n_base_at)
        cdef int64_t ob, oc, nb, nc
        if self.phase != P_IDLE:
            raise RuntimeError("set_baseline() during an update")
        if snapshot is not None and len(snapshot):
            view = snapshot
            new = <const int64_t *>&view[0]
            n_new = <size_t>view.shape[0] // 16
        n = n_old if n_old > n_new else n_new
        if n > self.n_ms:
            n = self.n_ms
        for i in range(n):
            ob = old[2 * i] if i < n_old else 0
            oc = old[2 * i + 1] if i < n_old else 0
            nb = new[2 * i] if i < n_new else 0
            nc = new[2 * i + 1] if i < n_new else 0
            if ob != nb or oc != nc:
                self._work_add(<uint32_t>i)
                queued += 1
        free(old)
        old = NULL
        if n_new:
            old = <int64_t *>malloc(16 * n_new)
            if old == NULL:
                raise MemoryError()
            memcpy(old, new, 16 * n_new)
        if which == 0:
            self.base_mark, self.n_base_mark = old, n_new
        elif which == 1:
            self.base_grow, self.n_base_grow = old, n_new
        else:
            self.base_at, self.n_base_at = old, n_new
        return queued

    cdef uint32_t _thread_of(self, uint32_t sid) except? 0xFFFFFFFF:
        if self.fast is not None:
            return self.fast.s.stacks[sid].thread
        return self.reader.stack_key(sid)[2]

    cdef uint32_t _slot(self, uint32_t thread) except? 0xFFFFFFFF:
        cdef uint32_t slot = mt_map_get(&self.slotmap, thread)
        cdef size_t n
        if slot != MT_NONE:
            return slot
        slot = <uint32_t>self.n_slots
        if self.n_slots >= self.slot_cap:
            n = _next_cap(self.slot_cap, self.n_slots + 1)
            self.slot_totals = <int64_t *>_resize(self.slot_totals, self.slot_cap * NC,
                                                  n * NC, sizeof(int64_t))
            self.pslot = <int64_t *>_resize(self.pslot, self.slot_cap * NC, n * NC,
                                            sizeof(int64_t))
            self.slot_cap = n
        self.n_slots += 1
        self.slot_threads.append(thread)
        if mt_map_put(&self.slotmap, thread, slot) < 0:
            raise MemoryError()
        return slot

    # ---- chains of one stack into the scratch buffers
    cdef int _need(self, size_t npy, size_t nna) except -1:
        cdef size_t n
        if npy > self.c_py:  # (grown while a chain is being written: keep its start)
            n = _next_cap(self.c_py, npy)
            self.b_pf = <uint32_t *>_resize(self.b_pf, self.c_py, n, sizeof(uint32_t))
            self.b_pe = <uint8_t *>_resize(self.b_pe, self.c_py, n, 1)
            self.c_py = n
        if nna > self.c_na:
            n = _next_cap(self.c_na, nna)
            self.b_na = <uint32_t *>_resize(self.b_na, self.c_na, n, sizeof(uint32_t))
            self.c_na = n
        return 0

    cdef int _nat_cache(self, size_t need) except -1:
        cdef size_t n, i
        if need > self.nat_aid_cap:
            n = _next_cap(self.nat_aid_cap, need)
            self.nat_aid = <uint32_t *>_resize(self.nat_aid, self.nat_aid_cap, n,
                                               sizeof(uint32_t))
            for i in range(self.nat_aid_cap, n):
                self.nat_aid[i] = MT_NONE
            self.nat_aid_cap = n
        return 0

    cdef int _py_cache(self, size_t need) except -1:
        cdef size_t n, i
        if need > self.py_fid_cap:
            n = _next_cap(self.py_fid_cap, need)
            self.py_fid = <uint32_t *>_resize(self.py_fid, self.py_fid_cap, n,
                                              sizeof(uint32_t))
            for i in range(self.py_fid_cap, n):
                self.py_fid[i] = MT_NONE
            self.py_fid_cap = n
        return 0

    cdef uint32_t _aid(self, uint64_t ip) except? 0xFFFFFFFF:
        """The address id of a return address, made (unclassified) when new."""
        cdef uint32_t aid = mt_map_get(&self.ipmap, ip)
        cdef size_t n
        if aid != MT_NONE:
            return aid
        aid = <uint32_t>self.n_aids
        if self.n_aids >= self.aid_cap:
            n = _next_cap(self.aid_cap, self.n_aids + 1)
            self.aid_ip = <uint64_t *>_resize(self.aid_ip, self.aid_cap, n, sizeof(uint64_t))
            self.aid_flags = <uint8_t *>_resize(self.aid_flags, self.aid_cap, n, 1)
            self.aid_off = <uint32_t *>_resize(self.aid_off, self.aid_cap, n, sizeof(uint32_t))
            self.aid_len = <uint32_t *>_resize(self.aid_len, self.aid_cap, n, sizeof(uint32_t))
            self.aid_stamp = <uint32_t *>_resize(self.aid_stamp, self.aid_cap, n,
                                                 sizeof(uint32_t))
            self.aid_cap = n
        self.n_aids += 1
        self.aid_ip[aid] = ip
        self.aid_len[aid] = 0  # unclassified until the namer answers
        if mt_map_put(&self.ipmap, ip, aid) < 0:
            raise MemoryError()
        if self.n_uncl >= self.uncl_cap:
            n = _next_cap(self.uncl_cap, self.n_uncl + 1)
            self.uncl = <uint32_t *>_resize(self.uncl, self.uncl_cap, n, sizeof(uint32_t))
            self.uncl_cap = n
        self.uncl[self.n_uncl] = aid
        self.n_uncl += 1
        return aid

    cdef int _set_aid(self, uint32_t aid, uint8_t flags, list frames) except -1:
        cdef size_t k = len(frames)
        cdef size_t i, n
        if k == 0:
            raise ValueError("an address needs at least one frame")
        if aid < self.n_aids and self.aid_len[aid] >= k:
            pass  # reuse its slot in the pool
        else:
            if self.pool_len + k > self.pool_cap:
                n = _next_cap(self.pool_cap, self.pool_len + k)
                self.pool = <uint32_t *>_resize(self.pool, self.pool_cap, n, sizeof(uint32_t))
                self.pool_cap = n
            self.aid_off[aid] = <uint32_t>self.pool_len
            self.pool_len += k
        for i in range(k):
            self.pool[self.aid_off[aid] + i] = self.intern(frames[i])
        self.aid_len[aid] = <uint32_t>k
        if (self.aid_flags[aid] & A_PENDING) and not (flags & A_PENDING):
            self.n_pending_aids -= 1
        elif not (self.aid_flags[aid] & A_PENDING) and (flags & A_PENDING):
            self.n_pending_aids += 1
        self.aid_flags[aid] = flags
        return 0

    cdef size_t _collect(self, uint32_t sid) except? 0xFFFFFFFF:
        """Give every return address of a stack's native chain an address id; returns how
        many are new."""
        cdef size_t before = self.n_uncl
        cdef uint32_t node
        cdef uint32_t *parent
        cdef uint64_t *ips
        if not self.native:
            return 0
        if self.fast is not None:
            node = self.fast.s.stacks[sid].nat
            self._nat_cache(self.fast.s.nat_cap)
            parent = self.fast.s.nat_parent
            ips = self.fast.s.nat_ip
            while node != 0 and self.nat_aid[node] == MT_NONE:
                self.nat_aid[node] = self._aid(ips[node])
                node = parent[node]
        else:
            nat = self.reader.stack_key(sid)[1]
            for ip in self.reader.native_stack(nat):
                self._aid(ip)
        return self.n_uncl - before

    cdef int _chains(self, uint32_t sid, size_t *npy_out, size_t *nna_out) except -1:
        """Python frames (ids, entry flags) and native address ids of a stack, innermost
        first, into b_pf/b_pe and b_na."""
        cdef size_t npy = 0, nna = 0
        cdef uint32_t node, fid
        cdef mt_stack *st
        if self.fast is not None:
            st = &self.fast.s.stacks[sid]
            self._py_cache(self.fast.s.py_cap)
            node = st.py
            while node != 0:
                self._need(npy + 1, 0)
                fid = self.py_fid[node]
                if fid == MT_NONE:
                    fid = self._py_frame(self.fast.s.py_code[node], self.fast.s.py_line[node])
                    self.py_fid[node] = fid
                self.b_pf[npy] = fid
                self.b_pe[npy] = (self.fast.s.py_flags[node] & 2) != 0
                npy += 1
                node = self.fast.s.py_parent[node]
            if self.native:
                node = st.nat
                while node != 0:
                    self._need(0, nna + 1)
                    self.b_na[nna] = self.nat_aid[node]
                    nna += 1
                    node = self.fast.s.nat_parent[node]
                if nna > 1 and self.aid_ip[self.b_na[0]] >= CUT_BASE:
                    # the cut marker is sent innermost (docs/FORMAT.md): it stands outermost
                    fid = self.b_na[0]
                    memmove(self.b_na, self.b_na + 1, (nna - 1) * sizeof(uint32_t))
                    self.b_na[nna - 1] = fid
        else:
            key = self.reader.stack_key(sid)
            for code, line, entry in self.reader.py_stack(key[0]):
                self._need(npy + 1, 0)
                self.b_pf[npy] = self._py_frame(code, line)
                self.b_pe[npy] = bool(entry)
                npy += 1
            if self.native:
                for ip in self.reader.native_stack(key[1]):
                    self._need(0, nna + 1)
                    self.b_na[nna] = mt_map_get(&self.ipmap, ip)
                    nna += 1
        npy_out[0] = npy
        nna_out[0] = nna
        return 0

    cdef int _merge_need(self, size_t n) except -1:
        cdef size_t c
        if n > self.c_m:
            c = _next_cap(self.c_m, n)
            self.b_mf = <uint32_t *>_resize(self.b_mf, 0, c, sizeof(uint32_t))
            self.b_mo = <uint8_t *>_resize(self.b_mo, 0, c, 1)
            self.c_m = c
        if n > self.c_out:
            c = _next_cap(self.c_out, n)
            self.b_out = <uint32_t *>_resize(self.b_out, 0, c, sizeof(uint32_t))
            self.c_out = c
        return 0

    cdef size_t _merge(self, size_t npy, size_t nna, bint show_internal) except? 0xFFFFFFFF:
        """The hybrid merge (rules in symbols/hybrid.py) of b_pf/b_pe and b_na into b_out,
        outermost first; returns its length."""
        cdef size_t total = npy, i, j, k, g, n = 0, nout = 0, p, ngroups = 0, n_eval = 0
        cdef size_t first_eval = nna, n_py_total, n_py_seen
        cdef uint32_t aid, f
        cdef uint8_t fl
        cdef bint truncated, inner_only
        for i in range(nna):
            total += self.aid_len[self.b_na[i]]
        self._merge_need(total + 1)
        cdef uint32_t *mf = self.b_mf
        cdef uint8_t *mo = self.b_mo
        cdef uint32_t *out = self.b_out
        cdef uint8_t *ff = self.fflags
        if nna == 0:  # Python only
            i = npy
            while i > 0:
                i -= 1
                f = self.b_pf[i]
                if show_internal or not (ff[f] & (F_IMPORT | F_MEMTRACE)):
                    out[nout] = f
                    nout += 1
            return nout
        # groups: Python frames cut after each entry frame
        for i in range(npy):
            if self.b_pe[i] or i == npy - 1:
                ngroups += 1
        for i in range(nna):
            if self.aid_flags[self.b_na[i]] & A_EVAL:
                if n_eval == 0:
                    first_eval = i
                n_eval += 1
        truncated = not (self.aid_flags[self.b_na[nna - 1]] & A_ROOT)
        # frames cut at the depth limit, or stopped at code in no object (a JIT's): with no
        # loop among them they are the innermost, below the innermost Python frame
        inner_only = (self.aid_flags[self.b_na[nna - 1]] & (A_CUT | A_ANON)) != 0
        if ngroups == 0:
            for i in range(nna):
                aid = self.b_na[i]
                for k in range(self.aid_len[aid]):
                    mf[n] = self.pool[self.aid_off[aid] + k]
                    mo[n] = 0
                    n += 1
        elif n_eval >= ngroups or (truncated and (n_eval > 0 or inner_only)):
            g = 0
            j = 0  # next Python frame
            for i in range(nna):
                aid = self.b_na[i]
                if (self.aid_flags[aid] & A_EVAL) and g < ngroups:
                    while j < npy:  # the group: up to and including an entry frame
                        mf[n] = self.b_pf[j]
                        mo[n] = 1
                        n += 1
                        j += 1
                        if self.b_pe[j - 1]:
                            break
                    g += 1
                else:
                    for k in range(self.aid_len[aid]):
                        mf[n] = self.pool[self.aid_off[aid] + k]
                        mo[n] = g > 0
                        n += 1
            while j < npy:  # groups left over: the unwinder stopped early
                mf[n] = self.b_pf[j]
                mo[n] = 1
                n += 1
                j += 1
        else:  # a real mismatch: the native frames below the innermost loop, then Python
            if n_eval:
                for i in range(first_eval):
                    aid = self.b_na[i]
                    for k in range(self.aid_len[aid]):
                        mf[n] = self.pool[self.aid_off[aid] + k]
                        mo[n] = 0
                        n += 1
            for j in range(npy):
                mf[n] = self.b_pf[j]
                mo[n] = 1
                n += 1
        if show_internal:
            i = n
            while i > 0:
                i -= 1
                out[nout] = mf[i]
                nout += 1
            return nout
        # the interpreter's call glue just below the innermost Python frame
        p = n
        for i in range(n):
            if ff[mf[i]] & F_PY:
                p = i
                break
        if p < n:
            j = p
            while j > 0 and (ff[mf[j - 1]] & F_INTERP):
                j -= 1
            if 0 < j < p:
                k = j
                for i in range(p, n):
                    mf[k] = mf[i]
                    mo[k] = mo[i]
                    k += 1
                n = k
        # an allocator's own frames at the innermost end: the allocation is its caller's.
        # Its static helpers have no prefix (jemalloc's pac_alloc_real): up to
        # ALLOC_GAP of them between two of its named frames go too.
        k = 0
        g = 0
        for i in range(n):
            fl = ff[mf[i]]
            if fl & F_ALLOC:
                k = i + 1
                g = 0
            elif fl & (F_PY | F_USER | F_CUT):
                break
            else:
                g += 1
                if g > ALLOC_GAP:
                    break
        if 0 < k < n:
            for i in range(k, n):
                mf[i - k] = mf[i]
                mo[i - k] = mo[i]
            n -= k
        n_py_total = 0
        for i in range(n):
            if ff[mf[i]] & F_PY:
                n_py_total += 1
        n_py_seen = 0
        k = 0
        for i in range(n):  # kept frames, innermost first, into mf[0:k]
            f = mf[i]
            fl = ff[f]
            if fl & F_CUT:
                pass  # where the tracer cut the stack: always shown
            elif fl & F_MEMTRACE:
                continue
            elif fl & F_PY:
                n_py_seen += 1
                if fl & F_IMPORT:
                    continue
            elif mo[i] and ((fl & F_INTERP) or n_py_seen == n_py_total):
                continue
            mf[k] = f
            k += 1
        i = k
        while i > 0:
            i -= 1
            out[nout] = mf[i]
            nout += 1
        return nout

    cdef int _build(self, uint32_t sid) except -1:
        """(Re)compute a stack's path from the reader and its addresses' frames."""
        cdef size_t npy, nna, nout, i
        cdef mstack *st = &self.ms[sid]
        cdef bint pending = False
        self._chains(sid, &npy, &nna)
        for i in range(nna):
            if self.aid_flags[self.b_na[i]] & A_PENDING:
                pending = True
                break
        nout = self._merge(npy, nna, self.show_internal)
        st = &self.ms[sid]
        st.path = <uint32_t *>_resize(st.path, 0, nout, sizeof(uint32_t))
        if nout:
            memcpy(st.path, self.b_out, nout * sizeof(uint32_t))
        st.plen = <uint32_t>nout
        st.user = MT_NONE
        i = nout
        while i > 0:
            i -= 1
            if self.fflags[st.path[i]] & F_USER:
                st.user = st.path[i]
                break
        if st.user == MT_NONE and nout:
            st.user = st.path[nout - 1]
        st.built = 1
        st.built_stamp = self.rename_stamp
        if pending and not st.listed:
            st.listed = 1
            if self.n_pending >= self.pending_cap:
                i = _next_cap(self.pending_cap, self.n_pending + 1)
                self.pending_list = <uint32_t *>_resize(self.pending_list, self.pending_cap,
                                                        i, sizeof(uint32_t))
                self.pending_cap = i
            self.pending_list[self.n_pending] = sid
            self.n_pending += 1
        st.pending = pending
        self.stacks_built += 1
        return 0

    cdef bint _included(self, uint32_t sid) except -1:
        cdef mstack *st = &self.ms[sid]
        cdef uint32_t i
        if self.thread >= 0 and self._thread_of(sid) != <uint64_t>self.thread:
            return False
        if self.match_fn is None:
            return True
        for i in range(st.plen):
            if self.fflags[st.path[i]] & F_MATCH:
                return True
        return False

    cdef int _place(self, uint32_t sid) except -1:
        """Link a built stack into the tree (when included), with no counters yet."""
        cdef mstack *st = &self.ms[sid]
        cdef uint32_t leaf = MT_NONE
        if self._included(sid):
            st = &self.ms[sid]
            self._ensure_dirty_depth(st.plen + 1)
            leaf = self._link(st.path, st.plen)
        self.ms[sid].leaf = leaf
        self.ms[sid].placed = 1
        return 0

    cdef int _apply(self, uint32_t sid) except -1:
        """Bring a stack's counters to the reader's: its delta goes to its leaf and its
        thread's totals, pending until the commit's final pass."""
        cdef int64_t c[NC]
        cdef int64_t d[NC]
        cdef int i
        cdef bint any = False
        cdef mstack *st
        cdef int64_t *tot
        self._counters(sid, c)
        st = &self.ms[sid]
        for i in range(NC):
            d[i] = c[i] - st.applied[i]
            if d[i]:
                any = True
        if not any:
            return 0
        if st.slot == MT_NONE:
            st.slot = self._slot(self._thread_of(sid))
            st = &self.ms[sid]
        tot = &self.pslot[<size_t>st.slot * NC]
        for i in range(NC):
            tot[i] += d[i]
            st.applied[i] = c[i]
        if st.leaf != MT_NONE:
            self._add_at_leaf(st, d, 1)
        return 0

    # ------------------------------------------------------------------ updates
    cdef int _work_add(self, uint32_t sid) except -1:
        cdef size_t n
        if self.ms[sid].in_work:
            return 0
        if self.n_work >= self.work_cap:
            n = _next_cap(self.work_cap, self.n_work + 1)
            self.work = <uint32_t *>_resize(self.work, self.work_cap, n, sizeof(uint32_t))
            self.work_cap = n
        self.work[self.n_work] = sid
        self.n_work += 1
        self.ms[sid].in_work = 1
        return 0

    def begin(self) -> int:
        """Start an update: take the stacks changed in the reader since the last one.
        Returns how many."""
        cdef size_t i, n, n_stacks
        cdef uint32_t sid
        if self.phase != P_IDLE:
            return self.n_work
        n_stacks = self._reader_stacks()
        self._ensure_stacks(n_stacks)
        if self.fast is not None:
            n = self.fast.s.n_changed
            for i in range(n):
                sid = self.fast.s.changed[i]
                self.fast.s.stacks[sid].flags &= ~2  # MT_STACK_CHANGED
                self._work_add(sid)
            self.fast.s.n_changed = 0
        else:
            for sid in self.reader.take_changed():
                self._work_add(sid)
        self.work_pos = 0
        self.phase = P_COLLECT
        return self.n_work

    def begin_all(self, int select_a=-1, int select_b=-1) -> int:
        """Start an update over every stack (after a reset). With counter indexes to
        select by, a stack whose counters there are both zero is left out (a report of
        leaks names only the stacks that hold memory)."""
        cdef size_t i, n_stacks
        cdef int64_t c[NC]
        if self.fast is not None:
            for i in range(self.fast.s.n_changed):
                self.fast.s.stacks[self.fast.s.changed[i]].flags &= ~2
            self.fast.s.n_changed = 0
        else:
            self.reader.take_changed()
        n_stacks = self._reader_stacks()
        self._ensure_stacks(n_stacks)
        for i in range(n_stacks):
            if select_a >= 0:
                self._counters(<uint32_t>i, c)
                if c[select_a] == 0 and (select_b < 0 or c[select_b] == 0):
                    continue
            self._work_add(<uint32_t>i)
        self.work_pos = 0
        self.phase = P_COLLECT
        return self.n_work

    def step(self, double budget_s=-1.0) -> bool:
        """Do the update's work, at most about `budget_s` seconds of it (< 0: all). Returns
        True when the update is done (its counters committed); False when work is left
        for the next step. The tree is consistent between steps."""
        cdef double start = mt_now()
        cdef double deadline = start + budget_s if budget_s >= 0 else 1e300
        cdef size_t k = 0, n, end
        cdef uint32_t sid
        cdef mstack *st
        if self.phase == P_IDLE:
            return True
        if self.phase == P_COLLECT:
            while self.work_pos < self.n_work:
                sid = self.work[self.work_pos]
                self.work_pos += 1
                if not self.ms[sid].built:
                    self._collect(sid)
                k += 1
                if (k & 31) == 0 and mt_now() > deadline:
                    return False
            self.phase = P_CLASSIFY
        if self.phase == P_CLASSIFY:
            if self.uncl_pos == 0 and self.n_uncl > CLASSIFY_CHUNK and self.namer is not None:
                prefetch = getattr(self.namer, "prefetch", None)
                if prefetch is not None:  # the whole burst to the worker at once
                    prefetch([self.aid_ip[self.uncl[i]] for i in range(self.n_uncl)])
            while self.uncl_pos < self.n_uncl:
                end = min(self.n_uncl, self.uncl_pos + CLASSIFY_CHUNK)
                self._classify(self.uncl_pos, end)
                self.uncl_pos = end
                if mt_now() > deadline:
                    return False
            self.n_uncl = 0
            self.uncl_pos = 0
            self.work_pos = 0
            self.phase = P_BUILD
        if self.phase == P_BUILD:
            while self.work_pos < self.n_work:
                sid = self.work[self.work_pos]
                self.work_pos += 1
                if not self.ms[sid].built:
                    self._build(sid)
                if not self.ms[sid].placed:
                    self._place(sid)
                k += 1
                if (k & 15) == 0 and mt_now() > deadline:
                    return False
            self.work_pos = 0
            self.phase = P_APPLY
        if self.phase == P_APPLY:
            # the commit, in steps: deltas into the pending pools, pushed up to every dirty
            # ancestor, then one short pass makes them visible, so the root always equals
            # the header and the lock is never held for the whole commit (random call
            # paths under `--native` made it 15-40 ms, up to 240 ms, at every update)
            while self.work_pos < self.n_work:
                sid = self.work[self.work_pos]
                self.work_pos += 1
                self._apply(sid)
                self.ms[sid].in_work = 0
                k += 1
                if (k & 63) == 0 and mt_now() > deadline:
                    return False
            self.n_work = 0
            self.work_pos = 0
            self._start_push(budget_s < 0)  # one go: add the totals on the way
            self.phase = P_PUSH
        if self.phase == P_PUSH:
            if not self._push(deadline):
                return False
            self.phase = P_FINAL
            if budget_s >= 0 and mt_now() > start + budget_s / 2:
                return False  # the final pass (one go) starts a step of its own
        if self.phase == P_FINAL:
            self._final()
            self.phase = P_RENAME
            self.scan_pos = 0
        if self.phase == P_RENAME:
            if self.rename_dirty and not self._rename_step(deadline):
                return False
            self.phase = P_IDLE
        return True

    cdef int _classify(self, size_t start, size_t end) except -1:
        """Ask the namer about new addresses: flags and (provisional or final) frames."""
        cdef size_t i
        cdef uint32_t aid
        ips = [self.aid_ip[self.uncl[i]] for i in range(start, end)]
        if self.namer is None:
            answers = [_rules.cut_address(ip)
                       or (0, [Frame(f"{ip - 1:#x}", "", 0, FrameKind.NO_SYMBOL)]) for ip in ips]
        else:
            answers = self.namer.classify(ips)
        for i in range(start, end):
            aid = self.uncl[i]
            flags, frames = answers[i - start]
            self._set_aid(aid, flags, frames)
        return 0

    def rename(self, dict names) -> int:
        """Final frames for return addresses ({ip: [Frame, ...] innermost first}); the
        stacks holding them move to their new paths over the next steps (start one with
        begin() if none is running). Returns how many addresses changed."""
        cdef uint32_t aid
        cdef int n = 0
        if names:
            self.rename_stamp += 1
        for ip, frames in names.items():
            aid = mt_map_get(&self.ipmap, ip)
            if aid == MT_NONE or self.aid_len[aid] == 0:
                continue
            frames = list(frames)  # named: the flags follow from the names, as when an
            self._set_aid(aid, _rules.address_flags(frames), frames)  # address is named at once
            self.aid_stamp[aid] = self.rename_stamp
            n += 1
        if n:
            self.scan_pos = 0  # a running scan starts over with the new names
            self.rename_dirty = True
        return n

    cdef int _stale(self, uint32_t sid) except -1:
        """0: the stack holds no address renamed since it was built; 1: it does, and
        others still wait for their names; 2: it does, and all its names are in."""
        cdef uint32_t built = self.ms[sid].built_stamp
        cdef uint32_t node, aid
        cdef bint renamed = False, waiting = False
        if self.fast is not None:
            node = self.fast.s.stacks[sid].nat
            while node != 0:
                aid = self.nat_aid[node]
                if self.aid_stamp[aid] > built:
                    renamed = True
                elif self.aid_flags[aid] & A_PENDING:
                    waiting = True
                node = self.fast.s.nat_parent[node]
        else:
            for ip in self.reader.native_stack(self.reader.stack_key(sid)[1]):
                aid = mt_map_get(&self.ipmap, ip)
                if self.aid_stamp[aid] > built:
                    renamed = True
                elif self.aid_flags[aid] & A_PENDING:
                    waiting = True
        if not renamed:
            return 0
        return 1 if waiting else 2

    cdef bint _rename_step(self, double deadline) except -1:
        """Move stale pending stacks to their new paths, in slices (each one whole). A
        stack whose names are all in moves at once; one still waiting for some moves when
        `patience` has passed since the last such flush (names arrive in batches: a stack
        is moved about once, not once per batch)."""
        cdef size_t k = 0, scanned = 0, keep, i
        cdef uint32_t sid
        cdef int stale
        cdef double now
        self.n_moved = 0
        if self.scan_pos == 0:
            now = mt_now()
            self.scan_force = now - self.last_flush >= self.patience
            self.scan_skipped = False
        while self.scan_pos < self.n_pending:
            # the scan itself is budgeted too: tens of thousands of stacks still waiting
            # for a name were read whole at every update (50-60 ms holding the GIL and the
            # session lock under `live --native` churn, a key press waiting for it)
            scanned += 1
            if (scanned & 255) == 0 and mt_now() > deadline:
                self._finish_moves()
                return False
            sid = self.pending_list[self.scan_pos]
            self.scan_pos += 1
            if not self.ms[sid].pending:
                continue
            stale = self._stale(sid)
            if stale == 0:
                continue
            if stale == 1 and not self.scan_force:
                self.scan_skipped = True
                continue
            self._move(sid)
            k += 1
            if (k & 31) == 0 and mt_now() > deadline:
                self._finish_moves()
                return False
        self._finish_moves()
        keep = 0  # drop the stacks that are pending no more
        for i in range(self.n_pending):
            sid = self.pending_list[i]
            if self.ms[sid].pending:
                self.pending_list[keep] = sid
                keep += 1
            else:
                self.ms[sid].listed = 0
        self.n_pending = keep
        self.scan_pos = 0
        if self.scan_force:
            self.last_flush = mt_now()
        self.rename_dirty = self.scan_skipped  # partly named stacks: the next scans
        return True

    cdef int _move(self, uint32_t sid) except -1:
        """Rebuild one stack's path; its counters leave the old leaf for the new one."""
        cdef mstack *st = &self.ms[sid]
        cdef uint32_t old_leaf = st.leaf
        cdef size_t n
        self._build(sid)  # still listed: the scan's compaction keeps it if still pending
        st = &self.ms[sid]
        if old_leaf != MT_NONE:
            self._add_at_leaf(st, st.applied, -1)
        self._place(sid)
        st = &self.ms[sid]
        if st.leaf != MT_NONE:
            self._add_at_leaf(st, st.applied, 1)
        if self.n_moved + 3 > self.moved_cap:
            n = _next_cap(self.moved_cap, self.n_moved + 3)
            self.moved = <uint32_t *>_resize(self.moved, self.moved_cap, n, sizeof(uint32_t))
            self.moved_cap = n
        self.moved[self.n_moved] = sid
        self.moved[self.n_moved + 1] = old_leaf
        self.moved[self.n_moved + 2] = st.leaf
        self.n_moved += 3
        self.stacks_moved += 1
        return 0

    cdef int _finish_moves(self) except -1:
        """Propagate the moved counters, then release the old paths (dead nodes name
        their successors, aligned from the innermost frame)."""
        cdef size_t m, n_old, n_new, d, c
        cdef uint32_t old_leaf, new_leaf, node, succ
        cdef int64_t at
        self._propagate()
        for m in range(0, self.n_moved, 3):
            old_leaf = self.moved[m + 1]
            new_leaf = self.moved[m + 2]
            if old_leaf == MT_NONE:
                continue
            self._unref(old_leaf)
            if new_leaf == MT_NONE:
                continue
            n_old = self.nodes[old_leaf].depth
            n_new = self.nodes[new_leaf].depth
            if n_old == 0 or n_new == 0:
                continue
            if n_old > self.c_old:
                c = _next_cap(self.c_old, n_old)
                self.b_old = <uint32_t *>_resize(self.b_old, 0, c, sizeof(uint32_t))
                self.c_old = c
            if n_new > self.c_new:
                c = _next_cap(self.c_new, n_new)
                self.b_new = <uint32_t *>_resize(self.b_new, 0, c, sizeof(uint32_t))
                self.c_new = c
            node = old_leaf  # paths outermost first: index = depth - 1
            while node != 0 and node != MT_NONE:
                self.b_old[self.nodes[node].depth - 1] = node
                node = self.nodes[node].parent
            node = new_leaf
            while node != 0 and node != MT_NONE:
                self.b_new[self.nodes[node].depth - 1] = node
                node = self.nodes[node].parent
            for d in range(n_old):
                node = self.b_old[d]
                if self.nodes[node].alive or mt_map_get(&self.succmap, node) != MT_NONE:
                    continue
                at = <int64_t>(n_new - 1) - <int64_t>(n_old - 1 - d)
                if mt_map_put(&self.succmap, node, self.b_new[at if at > 0 else 0]) < 0:
                    raise MemoryError()
        self.n_moved = 0
        return 0

    # ------------------------------------------------------------------ rebuilds
    def reset(self, bint paths) -> None:
        """Empty the tree (a thread, filter or internal-frames change); `paths`: the
        frames shown changed too, so every path is built again. Follow with begin_all()
        and step()."""
        cdef size_t i
        cdef mstack *st
        self._reset_nodes()
        for i in range(self.n_ms):
            st = &self.ms[i]
            st.leaf = MT_NONE
            st.placed = 0
            memset(st.applied, 0, sizeof(st.applied))
            st.in_work = 0
            if paths:
                free(st.path)
                st.path = NULL
                st.plen = 0
                st.built = 0
                st.pending = 0
                st.listed = 0
        if paths:
            self.n_pending = 0
        if self.slot_cap:
            memset(self.slot_totals, 0, self.slot_cap * NC * sizeof(int64_t))
        self.n_work = 0
        self.work_pos = 0
        self.scan_pos = 0
        self.n_moved = 0
        self.phase = P_IDLE

    def set_show_internal(self, bint show) -> None:
        self.show_internal = show

    # ------------------------------------------------------------------ queries
    @property
    def n_nodes(self) -> int:
        return self.n_nodes

    @property
    def pending_stacks(self) -> int:
        return self.n_pending

    @property
    def busy(self) -> bool:
        """An update is between steps."""
        return self.phase != P_IDLE

    @property
    def committed(self) -> bool:
        """The current update's counters are in (only renames may be left)."""
        return self.phase == P_IDLE or self.phase == P_RENAME

    def total(self, uint32_t nid) -> list:
        cdef mt_node *n = &self.nodes[nid]
        return [n.total[i] for i in range(NC)]

    cdef void _own(self, uint32_t nid, int64_t *out) noexcept:
        """Stacks ending at the node: its total minus its children's."""
        cdef int i
        cdef uint32_t c = self.nodes[nid].first_child
        for i in range(NC):
            out[i] = self.nodes[nid].total[i]
        while c != MT_NONE:
            for i in range(NC):
                out[i] -= self.nodes[c].total[i]
            c = self.nodes[c].next_sibling

    def own(self, uint32_t nid) -> list:
        cdef int64_t o[NC]
        self._own(nid, o)
        return [o[i] for i in range(NC)]

    def value(self, uint32_t nid, int index) -> int:
        return self.nodes[nid].total[index]

    def node_frame(self, uint32_t nid) -> int:
        """The node's frame id (-1 for the root)."""
        cdef uint32_t f = self.nodes[nid].frame
        return -1 if f == MT_NONE else f

    def parent(self, uint32_t nid) -> int:
        cdef uint32_t p = self.nodes[nid].parent
        return -1 if p == MT_NONE else p

    def depth(self, uint32_t nid) -> int:
        return self.nodes[nid].depth

    def alive(self, uint32_t nid) -> bool:
        return nid < self.n_nodes and self.nodes[nid].alive

    def successor(self, uint32_t nid) -> int:
        cdef uint32_t s = mt_map_get(&self.succmap, nid)
        return -1 if s == MT_NONE else s

    def children(self, uint32_t nid, int index=-1) -> list:
        """Live children; with index >= 0 only those whose total[index] is not zero."""
        out = []
        cdef uint32_t c = self.nodes[nid].first_child
        while c != MT_NONE:
            if index < 0 or self.nodes[c].total[index] != 0:
                out.append(c)
            c = self.nodes[c].next_sibling
        return out

    def branch(self, uint32_t nid, int bi, int ci) -> tuple:
        """(frame id, total[bi], total[ci], own[bi], own[ci]) of a node."""
        cdef mt_node *n = &self.nodes[nid]
        cdef int64_t o[NC]
        self._own(nid, o)
        return (-1 if n.frame == MT_NONE else n.frame, n.total[bi], n.total[ci], o[bi], o[ci])

    def branches(self, uint32_t nid, int bi, int ci) -> list:
        """(node, frame id, total[bi], total[ci], own[bi], own[ci]) of the children with
        total[bi] or total[ci] not zero (reports walk the tree with one call per node)."""
        out = []
        cdef uint32_t c = self.nodes[nid].first_child
        cdef mt_node *n
        cdef int64_t o[NC]
        while c != MT_NONE:
            n = &self.nodes[c]
            if n.total[bi] or n.total[ci]:
                self._own(c, o)
                out.append((c, n.frame, n.total[bi], n.total[ci], o[bi], o[ci]))
            c = n.next_sibling
        return out

    def has_children(self, uint32_t nid, int index=-1) -> bool:
        cdef uint32_t c = self.nodes[nid].first_child
        while c != MT_NONE:
            if index < 0 or self.nodes[c].total[index] != 0:
                return True
            c = self.nodes[c].next_sibling
        return False

    def child(self, uint32_t nid, uint32_t fid) -> int:
        """The child of a node for a frame id, or -1."""
        cdef uint32_t c = mt_map_get(&self.childmap, (<uint64_t>nid << 32) | fid)
        return -1 if c == MT_NONE else c

    def path(self, uint32_t nid) -> tuple:
        """Frame ids from the root's child down to this node."""
        out = []
        while nid != 0 and nid != MT_NONE:
            out.append(self.nodes[nid].frame)
            nid = self.nodes[nid].parent
        out.reverse()
        return tuple(out)

    def location(self, uint32_t fid) -> tuple:
        """(own, total, user_own) counter lists of one frame."""
        cdef int64_t *lo = &self.loc[<size_t>fid * LOC]
        return ([lo[i] for i in range(NC)], [lo[i] for i in range(NC, 2 * NC)],
                [lo[i] for i in range(2 * NC, 3 * NC)])

    def locations(self, int key_block, int key_index, size_t limit=0) -> list:
        """Frame ids with any total, sorted by loc[key_block][key_index] descending
        (block 0 own, 1 total, 2 user-own); at most `limit` (0: all)."""
        cdef size_t i, n = len(self.frames)
        cdef int64_t *lo
        rows = []
        for i in range(n):
            lo = &self.loc[i * LOC]
            if any_counted(&lo[NC]):
                rows.append((-lo[key_block * NC + key_index], i))
        rows.sort()
        if limit and len(rows) > limit:
            rows = rows[:limit]
        return [fid for _k, fid in rows]

    def thread_totals(self) -> dict:
        """Counters per thread index, every stack counted (shown or not)."""
        out = {}
        cdef size_t s
        for s in range(self.n_slots_shown):
            out[self.slot_threads[s]] = [self.slot_totals[s * NC + i] for i in range(NC)]
        return out

    def stack_path(self, uint32_t sid) -> tuple:
        """A built stack's frame ids (tests)."""
        if sid >= self.n_ms or not self.ms[sid].built:
            return None
        cdef mstack *st = &self.ms[sid]
        return tuple(st.path[i] for i in range(st.plen))

    def address_frames(self, uint64_t ip):
        """(flags, frame ids) of a return address, or None."""
        cdef uint32_t aid = mt_map_get(&self.ipmap, ip)
        if aid == MT_NONE:
            return None
        return (self.aid_flags[aid],
                [self.pool[self.aid_off[aid] + i] for i in range(self.aid_len[aid])])

    @property
    def n_addresses(self) -> int:
        return self.n_aids


def merge_frames(list py, list natives, list flags, bint show_internal=False) -> list:
    """The tree builder's hybrid merge over explicit frames (tests, symbols.hybrid_stack):
    py = [(frame id, is_entry)] and natives = [([frame ids innermost first], address
    flags)] innermost first; flags = F_* bits per frame id. Returns frame ids outermost
    first."""
    cdef TreeCore core = TreeCore.__new__(TreeCore)
    cdef size_t i, k, n
    core.fflags = <uint8_t *>_resize(NULL, 0, len(flags) + 1, 1)
    core.fcap = len(flags) + 1
    for i in range(len(flags)):
        core.fflags[i] = flags[i]
    core._need(len(py) + 1, len(natives) + 1)
    for i in range(len(py)):
        core.b_pf[i] = py[i][0]
        core.b_pe[i] = bool(py[i][1])
    n = 0
    for i in range(len(natives)):
        ids, aflags = natives[i]
        if core.pool_len + len(ids) > core.pool_cap:
            k = _next_cap(core.pool_cap, core.pool_len + len(ids))
            core.pool = <uint32_t *>_resize(core.pool, core.pool_cap, k, sizeof(uint32_t))
            core.pool_cap = k
        if i >= core.aid_cap:
            k = _next_cap(core.aid_cap, i + 1)
            core.aid_flags = <uint8_t *>_resize(core.aid_flags, core.aid_cap, k, 1)
            core.aid_off = <uint32_t *>_resize(core.aid_off, core.aid_cap, k, sizeof(uint32_t))
            core.aid_len = <uint32_t *>_resize(core.aid_len, core.aid_cap, k, sizeof(uint32_t))
            core.aid_cap = k
        core.aid_flags[i] = aflags
        core.aid_off[i] = <uint32_t>core.pool_len
        core.aid_len[i] = len(ids)
        for fid in ids:
            core.pool[core.pool_len] = fid
            core.pool_len += 1
        core.b_na[i] = <uint32_t>i
    n = core._merge(len(py), len(natives), show_internal)
    return [core.b_out[i] for i in range(n)]
