/* Ground-truth library for deep native stacks (issue 19), called with ctypes.
 *
 * mt_deep_alloc(depth, size): mt_deep_entry -> mt_deep_recurse x depth -> mt_deep_leaf ->
 * malloc(size), the block kept until exit. mt_deep_call(depth, callback): mt_deep_call x
 * depth, then callback() (a Python function through ctypes: stacks that go Python -> C ->
 * Python ... deeper than the tracer's limit). Built by tests/conftest.py with gcc -g -O1
 * -fPIC -shared; every call is followed by work on its result, so none is a tail call.
 */
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

static void *volatile kept[64];
static volatile int n_kept;
static volatile long depth_seen;

NOINLINE void *mt_deep_leaf(size_t size) {
    void *p = malloc(size);
    depth_seen++;
    return p;
}

NOINLINE void *mt_deep_recurse(int depth, size_t size) {
    void *p = depth <= 1 ? mt_deep_leaf(size) : mt_deep_recurse(depth - 1, size);
    depth_seen++;
    return p;
}

NOINLINE void mt_deep_entry(int depth, size_t size) {
    kept[n_kept++ % 64] = mt_deep_recurse(depth, size);
    depth_seen++;
}

void mt_deep_alloc(int depth, size_t size) {
    mt_deep_entry(depth, size);
    depth_seen++;
}

NOINLINE void mt_deep_call(int depth, void (*callback)(void)) {
    if (depth <= 1) {
        callback();
    } else {
        mt_deep_call(depth - 1, callback);
    }
    depth_seen++;
}
