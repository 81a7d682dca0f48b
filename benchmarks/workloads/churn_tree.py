"""Issue 18's churn program: 300 generated functions call each other to random depths; the
leaf keeps a buffer in a bounded pool (at most 5,000, about 125 MiB) and frees others at
random. Arguments: seconds to run, leaf calls per second."""

import random
import sys
import time

N_FUNCS = 300
POOL = 5000

rng = random.Random(18)
pool: list[bytearray] = []
source = []
for i in range(N_FUNCS):
    source.append(
        f"def f{i}(depth):\n"
        f"    if depth <= 0:\n"
        f"        buf = bytearray(rng.randint(10_000, 40_000))\n"
        f"        if len(pool) >= POOL:\n"
        f"            pool[rng.randrange(len(pool))] = buf\n"
        f"        else:\n"
        f"            pool.append(buf)\n"
        f"        if pool and rng.random() < 0.3:\n"
        f"            pool.pop(rng.randrange(len(pool)))\n"
        f"        return\n"
        f"    FUNCS[rng.randrange(N_FUNCS)](depth - 1)\n")
space = {"rng": rng, "pool": pool, "POOL": POOL, "N_FUNCS": N_FUNCS}
exec(compile("\n".join(source), "generated.py", "exec"), space)  # noqa: S102
FUNCS = [space[f"f{i}"] for i in range(N_FUNCS)]
space["FUNCS"] = FUNCS


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 3800
    start = time.monotonic()
    calls = 0
    while time.monotonic() - start < seconds:
        FUNCS[rng.randrange(N_FUNCS)](rng.randint(1, 12))
        calls += 1
        ahead = calls / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    print("calls", calls, "pool", len(pool), flush=True)


main()
