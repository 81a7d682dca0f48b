"""The tracer's branch-free integer encoders (mp_int_fast, mp_uint_fast in
memtrace_core/tracer/mpack.h) write exactly the bytes of the plain ones (mp_int, mp_uint):
every ALLOC and FREE carries its address delta and size through them, and the reader decodes
the smallest msgpack form of each. Checked by a gcc-built program on the edges of every form
(each power of two and its neighbours, both signs, the 64-bit extremes) and on two million
pseudo-random values of every width; also that no encoder writes past the 9 bytes allowed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TRACER = Path(__file__).resolve().parents[2] / "memtrace_core" / "tracer"

PROGRAM = r"""
#include <stdio.h>
#include "mpack.h"

static long checked, bad;

static void same(const char *what, uint8_t *e1, uint8_t *a, uint8_t *e2, uint8_t *b,
                 long long v) {
    checked++;
    /* the fast forms may write scratch bytes after the value, never past 9 bytes */
    for (int i = 9; i < 32; i++)
        if (b[i] != 0xEE) { printf("%s %lld wrote byte %d\n", what, v, i); bad++; return; }
    if (e1 - a != e2 - b || memcmp(a, b, (size_t)(e1 - a)) != 0) {
        printf("%s %lld: %ld bytes vs %ld\n", what, v, (long)(e1 - a), (long)(e2 - b));
        bad++;
    }
}

static void check(int64_t v) {
    uint8_t a[32], b[32];
    memset(a, 0xEE, sizeof a); memset(b, 0xEE, sizeof b);
    same("int", mp_int(a, v), a, mp_int_fast(b, v), b, (long long)v);
    memset(a, 0xEE, sizeof a); memset(b, 0xEE, sizeof b);
    same("uint", mp_uint(a, (uint64_t)v), a, mp_uint_fast(b, (uint64_t)v), b, (long long)v);
}

int main(void) {
    for (int s = 0; s < 64; s++)
        for (int d = -2; d <= 2; d++) {
            int64_t x = (int64_t)((1ULL << s) + (uint64_t)(int64_t)d);
            check(x);
            check(-x);
        }
    check(INT64_MIN); check(INT64_MIN + 1); check(INT64_MAX); check(0); check(-1);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 2000000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        check((int64_t)x >> (x & 63));
    }
    printf("checked %ld bad %ld\n", checked, bad);
    return bad != 0;
}
"""


def test_fast_encoders_write_the_plain_encoders_bytes(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required by this test", pytrace=False)
    source = tmp_path / "mpack_check.c"
    source.write_text(PROGRAM)
    exe = tmp_path / "mpack_check"
    build = subprocess.run(["gcc", "-O2", "-Wall", "-Werror", f"-I{TRACER}", str(source),
                            "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    last = proc.stdout.strip().splitlines()[-1]
    # 64 shifts x 5 neighbours x 2 signs + 5 extremes + 2 M random, each as int and as uint
    assert last == f"checked {2 * (64 * 5 * 2 + 5 + 2_000_000)} bad 0", proc.stdout[-2000:]
    assert proc.returncode == 0
