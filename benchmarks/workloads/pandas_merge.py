"""A C-extension-heavy program: import pandas (thousands of distinct native stacks), then
build DataFrames and keep merge results in a loop (issue 8's workload).

MT_BENCH_SCALE scales the loop (default 1: about 40 rounds)."""

import os
import time

import numpy as np
import pandas as pd

ROUNDS = int(40 * float(os.environ.get("MT_BENCH_SCALE", "1")))
KEEP = []


def build_frame(i: int) -> pd.DataFrame:
    rng = np.random.default_rng(i)
    n = 20_000
    return pd.DataFrame({"key": rng.integers(0, 5_000, n), "value": rng.random(n),
                         "label": [f"row{j % 97}" for j in range(n)]})


def merge_round(i: int) -> None:
    left = build_frame(i)
    right = build_frame(i + 1000).groupby("key", as_index=False)["value"].sum()
    KEEP.append(left.merge(right, on="key", how="left", suffixes=("", "_sum")))


for i in range(ROUNDS):
    merge_round(i)
    time.sleep(float(os.environ.get("MT_BENCH_SLEEP", "0.05")))
