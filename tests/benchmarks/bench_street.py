"""Benchmark of paper 003's data path and models (issue 11): ms per simulated window (scene, ray casting, rendering,
log-mel features) for both configurations, and ms per sample-step of the VQ-VAE and the AT-net.

usage: python tests/benchmarks/bench_street.py [--n 32] [--size 64]   (no timing asserts: it prints)"""
import argparse
import time

import numpy as np
import torch

from paperlib.manifold import street as st
from paperlib.manifold.atnet import ATNet, step_latent
from paperlib.manifold.vqvae import VQVAE, map_arrays, step_vq
from paperlib.train import TrainConfig, fit


def per_window(cfg, n, size):
    "ms per window for each stage, on drives 0..n-1 of the training split."
    t = {"scene + ray cast": 0.0, "render": 0.0, "features": 0.0}
    audio = []
    for d in range(n):
        a = time.perf_counter(); sc = st.sample_scene(cfg, "train", d); st.raycast(sc, 0.5, size); b = time.perf_counter()
        audio.append(st.render_window(sc, cfg, 0.5, r=np.random.default_rng(d))); c = time.perf_counter()
        t["scene + ray cast"] += b - a; t["render"] += c - b
    a = time.perf_counter(); st.log_mel(np.stack(audio), cfg.sr, size); t["features"] = time.perf_counter() - a
    return {k: 1000 * v / n for k, v in t.items()}


def per_step(model, step, arrays, batch=32):
    "ms per sample-step of one epoch of `fit` on `arrays`."
    n = len(next(iter(arrays.values())))
    a = time.perf_counter(); fit(model, step, arrays, TrainConfig(epochs=1, batch_size=batch, min_batch=2)); return 1000 * (time.perf_counter() - a) / n


if __name__ == "__main__":
    p = argparse.ArgumentParser(); p.add_argument("--n", type=int, default=32); p.add_argument("--size", type=int, default=64)
    a = p.parse_args()
    print("torch threads:", torch.get_num_threads())
    for cfg in (st.OAP_LIKE, st.MAVD_LIKE):
        r = per_window(cfg, a.n, a.size)
        print(f"{cfg.name:10s} ms/window: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()) + f"; total {sum(r.values()):.1f}")
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 80, (64, a.size, a.size)).astype(np.float32); seg = np.zeros((64, a.size, a.size), np.uint8)
    print(f"VQ-VAE {a.size}->8x8 ms/sample-step: {per_step(VQVAE('depth', a.size, 8), step_vq, map_arrays('depth', depth, seg)):.1f}")
    X = rng.standard_normal((64, 8, a.size, a.size)).astype(np.float32); Z = rng.standard_normal((64, 64, 8, 8)).astype(np.float32)
    print(f"AT-net 8x{a.size}^2 -> 8x8 ms/sample-step: {per_step(ATNet(8), step_latent, {'x': X, 'z': Z}):.1f}")
