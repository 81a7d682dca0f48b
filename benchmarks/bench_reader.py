"""Reader throughput: records decoded and aggregated per second on one core.

Builds a realistic stream (default 10 million records: ~48% ALLOC, ~48% FREE of a live set
of tens of thousands of blocks, realloc pairs, mmap/partial munmap/munmap of ~64 live maps,
3000 Python and native stacks over 4 threads, a TICK every 10k records), then times, median
of --repeat runs of CPU time (process_time: robust on a shared machine):
  memory   StreamReader.feed() of the whole buffer
  chunks   feed() in 64 KiB pieces, as from a live pipe
  file     read_capture() of the stream written to a file
  zfile    read_capture() of a compressed capture (MEMTRACZ: zlib level 1, as `memtrace run`
           writes them), inflating included
and, for scale, msgpack-python's Unpacker merely decoding the same records.

    python benchmarks/bench_reader.py [--records N] [--repeat R]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memtrace_core.reader import StreamReader, read_capture  # noqa: E402

MALLOC, REALLOC, MMAP, FREE, MUNMAP = 1, 3, 9, 10, 11


def build_block(n_records: int, seed: int, n_stacks: int = 3000) -> tuple[bytes, int, bytes]:
    """(prelude, record count, body): body allocates and frees and ends with nothing live,
    so it can be repeated; the prelude (header, threads, stack tries) is sent once."""
    rng = random.Random(seed)
    pack = msgpack.Packer(use_bin_type=True).pack
    last_addr = 0

    def addr_rec(fields: list) -> bytes:
        """ALLOC/FREE carry their address as a delta from the previous one (FORMAT.md)."""
        nonlocal last_addr
        fields[3], last_addr = fields[3] - last_addr, fields[3]
        return pack(fields)

    pre = [
        pack(
            [
                0,
                {
                    "format": 1,
                    "pid": 1,
                    "argv": ["bench"],
                    "python": "3.11.7",
                    "native": True,
                    "python_allocators": False,
                    "start_time": 0.0,
                    "attached": False,
                    "executable": "python",
                },
            ]
        )
    ]
    for t in range(1, 5):
        pre.append(pack([6, t, 1000 + t, f"T{t}"]))
    for c in range(1, 201):
        pre.append(pack([1, c, f"func_{c}", f"/src/module_{c % 17}.py", c * 3]))
    for node in range(1, n_stacks + 1):  # tries 4-deep on average
        parent = 0 if node <= 50 else rng.randint(max(1, node - 200), node - 1)
        pre.append(pack([2, node, parent, rng.randint(1, 200), rng.randint(1, 500), node % 3 == 0]))
        pre.append(pack([3, node, parent, 0x7F12_3456_0000 + rng.randint(0, 1 << 20)]))
    body: list[bytes] = []
    live: list[tuple[int, int]] = []  # (address, allocator) of heap blocks
    mmaps: list[int] = []
    next_addr = 0x5555_0000_0000
    t_us = 0
    count = 0
    while count < n_records:
        if count % 10_000 == 0:
            t_us += 10_000
            body.append(pack([8, t_us, 50_000_000 + count]))
            count += 1
        thread = rng.randint(1, 4)
        x = rng.random()
        if x < 0.5 or len(live) < 1000:
            size = int(rng.lognormvariate(4.5, 1.6)) + 1
            stack = rng.randint(1, n_stacks)
            next_addr += 16 * rng.randint(1, 64)
            body.append(addr_rec([4, thread, MALLOC, next_addr, size, stack, stack]))
            live.append((next_addr, MALLOC))
            count += 1
        elif x < 0.96 or len(live) > 60_000:
            i = rng.randrange(len(live))
            live[i], live[-1] = live[-1], live[i]
            addr, _ = live.pop()
            body.append(addr_rec([5, thread, FREE, addr, 0]))
            count += 1
        elif x < 0.995:
            i = rng.randrange(len(live))
            live[i], live[-1] = live[-1], live[i]
            addr, _ = live.pop()
            next_addr += 16 * rng.randint(1, 64)
            body.append(addr_rec([5, thread, REALLOC, addr, 0]))
            body.append(
                addr_rec(
                    [
                        4,
                        thread,
                        REALLOC,
                        next_addr,
                        rng.randint(1, 4096),
                        rng.randint(1, n_stacks),
                        0,
                    ]
                )
            )
            live.append((next_addr, REALLOC))
            count += 2
        else:
            next_addr += 1 << 20
            stack = rng.randint(1, n_stacks)
            body.append(addr_rec([4, thread, MMAP, next_addr, 1 << 18, stack, 0]))
            body.append(addr_rec([5, thread, MUNMAP, next_addr + 4096, 8192]))  # split it
            mmaps.append(next_addr)
            count += 2
            if len(mmaps) > 64:  # arenas come and go: a few dozen mappings live at a time
                old = mmaps.pop(rng.randrange(len(mmaps)))
                body.append(addr_rec([5, thread, MUNMAP, old, 1 << 18]))
                count += 1
    for addr, _ in live:  # end with nothing live so the body can repeat
        body.append(addr_rec([5, 1, FREE, addr, 0]))
        count += 1
    for addr in mmaps:
        body.append(addr_rec([5, 1, MUNMAP, addr, 1 << 18]))
        count += 1
    return b"MEMTRACE" + b"".join(pre), count, b"".join(body)


def timed(fn) -> float:
    """CPU seconds of this process: one core's work, whatever else the machine runs."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    t0 = time.perf_counter()
    block = min(args.records, 1_000_000)
    prelude, per_block, body = build_block(block, seed=1)
    reps = max(1, args.records // per_block)
    data = prelude + body * reps
    n_pre = StreamReader().feed(prelude)
    total = n_pre + per_block * reps
    print(
        f"stream: {total:,} records, {len(data) / 1e6:.1f} MB "
        f"({len(body) / per_block:.1f} bytes/record), built in {time.perf_counter() - t0:.1f} s"
    )

    def memory() -> StreamReader:
        r = StreamReader()
        r.feed(data)
        r.finish()
        return r

    def chunks() -> None:
        r = StreamReader()
        view = memoryview(data)
        for i in range(0, len(data), 65536):
            r.feed(view[i : i + 65536])
        r.finish()

    r = memory()
    assert r.records == total and r.heap_bytes == 0, (r.records, total, r.heap_bytes)
    print(
        f"check: {r.total_allocations:,} allocations, {r.n_stacks:,} stacks, "
        f"peak {r.peak_bytes / 1e6:.1f} MB, nothing leaked"
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.mtrace"
        path.write_bytes(data)
        zpath = Path(tmp) / "bench-z.mtrace"
        deflater = zlib.compressobj(1)
        with zpath.open("wb") as f:
            f.write(b"MEMTRACZ")
            for i in range(0, len(data), 1 << 16):
                f.write(deflater.compress(data[i : i + (1 << 16)]))
                f.write(deflater.flush(zlib.Z_SYNC_FLUSH))
            f.write(deflater.flush())
        print(f"compressed capture: {zpath.stat().st_size / 1e6:.1f} MB")
        runs = {
            "memory": [timed(memory) for _ in range(args.repeat)],
            "chunks": [timed(chunks) for _ in range(args.repeat)],
            "file": [timed(lambda: read_capture(path)) for _ in range(args.repeat)],
            "zfile": [timed(lambda: read_capture(zpath)) for _ in range(args.repeat)],
        }
        os.sync()
    sample = data[: len(prelude) + len(body)]

    def unpack_only() -> None:
        for _ in msgpack.Unpacker(io.BytesIO(sample[8:]), use_list=False):
            pass

    scale = total / (n_pre + per_block)  # the sample is one block: scale to the whole stream
    msgpack_s = statistics.median(timed(unpack_only) for _ in range(3)) * scale
    base = statistics.median(runs["memory"])
    print(f"{'mode':<10}{'CPU s':>10}{'Mrecords/s':>12}{'ratio':>8}")
    for name, times in runs.items():
        med = statistics.median(times)
        print(f"{name:<10}{med:>10.3f}{total / med / 1e6:>12.2f}{med / base:>8.2f}")
    print(
        f"{'msgpack*':<10}{msgpack_s:>10.3f}{total / msgpack_s / 1e6:>12.2f}"
        f"{msgpack_s / base:>8.2f}   (*msgpack-python Unpacker, decode only, no aggregation)"
    )
    print("target: >= 5 Mrecords/s (memory)")


if __name__ == "__main__":
    main()
