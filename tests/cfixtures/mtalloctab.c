/* Ground-truth library whose allocator is a table of function pointers (issue 10), the way
 * libxml2 (xmlMemSetup), zlib-style z_stream allocators and many C libraries keep it.
 *
 * Both tables are initialised statically with malloc/free, so the linker emits R_X86_64_64
 * data relocations for them (the test checks with readelf): `table` in writable data,
 * `ro_table` const (RELRO: read-only once the loader has relocated it). mt_tab_set(1) swaps
 * `table` to the library's own wrappers (which call malloc/free through the PLT), and
 * mt_tab_set(0) back to malloc/free. mt_tab_alloc(which, size): one block through the
 * table (0: `table`, 1: `ro_table`), kept; mt_tab_churn(which, size, n): n blocks, freed.
 * Built by tests/conftest.py with gcc -g -O1 -fPIC -shared.
 */
#include <stdint.h>
#include <stdlib.h>

struct mt_allocator {
    void *(*alloc)(size_t);
    void (*release)(void *);
};

static struct mt_allocator table = {malloc, free};
static const struct mt_allocator ro_table = {malloc, free};
/* Read through a volatile pointer: the compiler may not fold the const initialiser into
 * direct calls. */
static const struct mt_allocator *volatile tables[2] = {&table, &ro_table};

static void *volatile kept[256];
static volatile int n_kept;

__attribute__((noinline)) static void *own_alloc(size_t n) { return malloc(n); }
__attribute__((noinline)) static void own_release(void *p) { free(p); }

void mt_tab_set(int own) {
    table.alloc = own ? own_alloc : malloc;
    table.release = own ? own_release : free;
}

void mt_tab_alloc(int which, size_t size) {
    kept[n_kept++ % 256] = tables[which]->alloc(size);
}

void mt_tab_churn(int which, size_t size, int n) {
    for (int i = 0; i < n; i++) {
        void *p = tables[which]->alloc(size);
        kept[255] = p;
        tables[which]->release(p);
    }
}

/* The table's current pointers: (alloc, release) of table `which`. */
uintptr_t mt_tab_get(int which, int release) {
    return release ? (uintptr_t)tables[which]->release : (uintptr_t)tables[which]->alloc;
}

/* 1 when `table` holds the library's own wrappers. */
int mt_tab_is_own(void) {
    return table.alloc == own_alloc && table.release == own_release;
}

/* Where `ro_table` is (a RELRO page: read-only once relocated). */
uintptr_t mt_tab_ro_address(void) {
    return (uintptr_t)&ro_table;
}
