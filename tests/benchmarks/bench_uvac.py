"""Benchmark: one training epoch of paper 002's networks at each profile's sizes, for the full profile's plan.

Times optimiser steps of Cat. UVAC and the UVAC baseline (`paperlib.uvac.model`, bound (7) / VaDE) on random
inputs of each set's full-profile shape (digits 96 x 64, TAU-like 128 x 336, US8K-like 128 x 144; the paper's 8 x 8
kernels) and of the quick shapes (4 x 4 kernels), then extrapolates an epoch (training clips / batch size steps)
and the paper's 500 epochs. Uses only torch: run it on the GPU machine too (`--device cuda`).

Not collected by pytest. Run from the repository root:

    .venv/bin/python tests/benchmarks/bench_uvac.py [--device cpu] [--steps 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import torch

from paperlib.uvac.data import UVAC_SETTINGS
from paperlib.uvac.model import CatUVAC, UVAC, cat_uvac_step, uvac_step

TRAIN_CLIPS = {"full": {"digits": 24000, "tau": 960, "us8k": 6984}, "quick": {"digits": 2000, "tau": 240, "us8k": 320}}
# full digits: AudioMNIST's 24000 training clips (the paper's split); scene sets: 80 % of the full profile's clips.


def seconds_per_step(model, step, x, device, steps: int) -> float:
    "Median wall time of one optimiser step (forward, backward, Adam) on the batch x."
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    times = []
    for i in range(steps + 1):
        if device.type == "cuda": torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = step(model, {"x": x}, 0)
        opt.zero_grad(set_to_none=True); out["loss"].backward(); opt.step()
        if device.type == "cuda": torch.cuda.synchronize()
        if i: times.append(time.perf_counter() - t0)               # the first step warms up
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu"); ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2); ap.add_argument("--profiles", nargs="+", default=["quick", "full"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    print(f"{'profile':<7} {'set':<7} {'model':<10} {'input':>8} {'batch':>5} {'s/step':>8} {'s/epoch':>8} {'h/500 epochs':>12}")
    for prof in a.profiles:
        S = UVAC_SETTINGS[prof]
        for name in ("digits", "tau", "us8k"):
            cfg = S.net_config(name, 10)
            x = torch.rand(S.batch_size, 1, *cfg.in_shape, device=device)
            for label, model, step in [("Cat. UVAC", CatUVAC(cfg), lambda m, b, e: cat_uvac_step(m, b, e, lam=0.25, n_epochs=500)),
                                       ("UVAC", UVAC(cfg), lambda m, b, e: uvac_step(m, b, e, lam=0.05, pretrain_epochs=0))]:
                s = seconds_per_step(model.to(device), step, x, device, a.steps)
                epoch = s * -(-TRAIN_CLIPS[prof][name] // S.batch_size)
                print(f"{prof:<7} {name:<7} {label:<10} {'x'.join(map(str, cfg.in_shape)):>8} {S.batch_size:>5} {s:8.3f} {epoch:8.1f} {epoch * 500 / 3600:12.1f}")


if __name__ == "__main__":
    main()
