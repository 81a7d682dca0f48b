/* Ground truth for treecore.h's hash map (tests/model/test_treecore_map.py): random
 * insertions, overwrites, deletions and clears, checked against a plain array after every
 * operation that could go wrong, through many incremental growths. Prints the number of
 * growths seen and "ok", or the first disagreement and exits 1. */
#include <stdio.h>
#include <stdlib.h>

#include "treecore.h"

#define KEYS 300000

static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t key_of(size_t k) { return (uint64_t)k * 0x9E3779B97F4A7C15ULL ^ (k << 32); }

int main(int argc, char **argv)
{
    size_t ops = argc > 1 ? strtoul(argv[1], NULL, 10) : 3000000;
    uint32_t *truth = malloc(KEYS * sizeof(uint32_t));
    size_t count = 0, growths = 0, during = 0;
    mt_u64map m;
    if (!truth || mt_map_init(&m) < 0) return 2;
    memset(truth, 0xff, KEYS * sizeof(uint32_t));
    for (size_t op = 0; op < ops; op++) {
        uint64_t r = next();
        size_t k = (size_t)(r >> 20) % (op < ops / 2 ? KEYS : KEYS / 8 + 1);
        uint32_t v = (uint32_t)(r & 0xffffff);
        unsigned what = (unsigned)(r >> 8) % 100;
        size_t cap = m.cap;
        if (m.okeys != NULL) during++;
        if (what < 55) {
            if (mt_map_put(&m, key_of(k), v) < 0) return 2;
            if (truth[k] == MT_NONE) count++;
            truth[k] = v;
        } else if (what < 85) {
            mt_map_del(&m, key_of(k));
            if (truth[k] != MT_NONE) count--;
            truth[k] = MT_NONE;
        } else if (what == 99 && (r >> 40) % 2000 == 0) {
            mt_map_clear(&m);
            memset(truth, 0xff, KEYS * sizeof(uint32_t));
            count = 0;
        }
        if (m.cap != cap) growths++;
        if (mt_map_get(&m, key_of(k)) != truth[k] || m.count != count) {
            printf("op %zu key %zu: got %u, want %u; count %zu, want %zu\n", op, k,
                   mt_map_get(&m, key_of(k)), truth[k], m.count, count);
            return 1;
        }
        if (op % 100000 == 0 || (m.okeys != NULL && op % 997 == 0)) {
            for (size_t j = 0; j < KEYS; j++)
                if (mt_map_get(&m, key_of(j)) != truth[j]) {
                    printf("op %zu: key %zu holds %u, want %u\n", op, j,
                           mt_map_get(&m, key_of(j)), truth[j]);
                    return 1;
                }
        }
    }
    mt_map_free(&m);
    printf("%zu growths, %zu operations while growing: ok\n", growths, during);
    return 0;
}
