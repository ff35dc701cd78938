"""Benchmark: glibc's allocator thresholds (`paperlib.core.tune_allocator`) against its defaults.

Each workload runs in a fresh Python process twice, once as imported (`paperlib.core` tunes the allocator) and once
with `PAPERLIB_MALLOC=default` (glibc's own thresholds), and reports milliseconds per step and the process's minor
page faults. Workloads: a training step of 004's CNN (batch 50, one and two torch threads), a training step of 003's
VQ-VAE on depth (S = 32, m = 8, batch 16, one thread), and the timbre autoencoder's forward pass over 256 notes
(two threads). The numbers do not depend on the allocator (the same arithmetic), only the time does.

Not collected by pytest (the file name does not start with test_). Run from the repository root:

    .venv/bin/python tests/benchmarks/bench_allocator.py [--steps 30]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

WORKLOAD = r'''
import json, resource, sys, time
import torch
import paperlib.core as core
steps = int(sys.argv[1])
out = {"allocator": core.ALLOCATOR}

def per_step(fn, n):
    for _ in range(3): fn()
    t = time.perf_counter()
    for _ in range(n): fn()
    return 1000 * (time.perf_counter() - t) / n

from paperlib.recognize.model import ModelConfig, build_model
cnn = build_model("cnn", ModelConfig(hidden=50), seed=0)
opt = torch.optim.Adam(cnn.parameters(), fused=True)
x, y = torch.randn(50, 32, 32), torch.randint(0, 13, (50,))
def cnn_step():
    opt.zero_grad(); torch.nn.functional.cross_entropy(cnn(x), y).backward(); opt.step()
for threads in (1, 2):
    torch.set_num_threads(threads)
    out[f"CNN step, {threads} thread(s) (ms)"] = per_step(cnn_step, steps)

from paperlib.manifold.vqvae import VQVAE, step_vq
torch.set_num_threads(1)
vq = VQVAE("depth", 32, 8); opt_vq = torch.optim.Adam(vq.parameters(), fused=True)
batch = {"u": torch.rand(16, 1, 32, 32) + 0.1}
def vq_step():
    opt_vq.zero_grad(); step_vq(vq, batch, 0)["loss"].backward(); opt_vq.step()
out["VQ-VAE step, 1 thread (ms)"] = per_step(vq_step, steps)

from paperlib.timbre.model import AutoencoderConfig, SpectralAutoencoder
torch.set_num_threads(2)
ae = SpectralAutoencoder(AutoencoderConfig(hidden=128)).eval()
L = torch.randn(256, 513, 78) * 20 - 40
with torch.no_grad():
    out["autoencoder forward, 256 notes, 2 threads (ms)"] = per_step(lambda: ae(L), max(steps // 10, 2))
out["minor page faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps(out))
'''


def run(steps: int, default: bool) -> dict:
    "The workload in a fresh process; `default`: glibc's thresholds (PAPERLIB_MALLOC=default)."
    env = dict(os.environ)
    if default: env["PAPERLIB_MALLOC"] = "default"
    else: env.pop("PAPERLIB_MALLOC", None)
    res = subprocess.run([sys.executable, "-c", WORKLOAD, str(steps)], env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="timed steps per workload (after 3 warm-up steps)")
    a = ap.parse_args()
    base, tuned = run(a.steps, True), run(a.steps, False)
    print(f"tuned settings: {tuned.pop('allocator')}   (defaults run: {base.pop('allocator') or 'glibc defaults'})")
    print(f"{'workload':52s} {'glibc defaults':>15s} {'tuned':>10s} {'ratio':>7s}")
    for k in base:
        print(f"{k:52s} {base[k]:15.1f} {tuned[k]:10.1f} {tuned[k] / base[k]:7.2f}")


if __name__ == "__main__":
    main()
