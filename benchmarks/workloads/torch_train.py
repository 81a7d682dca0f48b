"""A big C++ library: import PyTorch (libtorch_cpu holds 440,000 function symbols, and its
stacks are deep C++ dispatch chains), then train a small network on one thread, keeping a
1 MiB tensor every 20 steps. `run --native` names every native address it used at exit,
so this workload also times naming against one of the biggest libraries on PyPI.

MT_BENCH_SCALE scales the training (default 1: 200 steps)."""

import os

import torch

STEPS = max(1, int(200 * float(os.environ.get("MT_BENCH_SCALE", "1"))))

torch.manual_seed(0)
torch.set_num_threads(1)
model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
kept = []
for step in range(STEPS):
    x = torch.randn(64, 256)
    y = torch.randint(0, 10, (64,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 20 == 0:
        kept.append(torch.empty(1 << 20, dtype=torch.uint8))
print("loss", round(loss.item(), 3), "kept", len(kept))
