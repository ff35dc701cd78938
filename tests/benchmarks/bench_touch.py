"""Benchmark: the costly steps of paper 000's block at each profile's sizes, for planning the quick and full runs.

Times (median of a few repeats) one simulated 10 s sim-touch clip (NumPy ingredients, so no data folder is needed),
the detector's candidates on it, `frame_at` at each profile's frame size, frozen random VGG-19 pool5 per image at
112 and 224 px, and one SoundCNN optimiser step per sample at each profile's channels; then extrapolates the full
profile (1200 + 100 clips, about 3000 pairs, 100 epochs). The CNN part uses only torch: `--device cuda` on a GPU.

Not collected by pytest. Run from the repository root:

    .venv/bin/python tests/benchmarks/bench_touch.py [--device cpu] [--repeats 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch


def median_time(fn, repeats: int) -> float:
    "Median wall time of `fn()` over `repeats` calls after one warm-up call, in seconds."
    fn(); t = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); t.append(time.perf_counter() - t0)
    return float(np.median(t))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu"); ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from paperlib.synth import SceneKit, get_renderer
    from paperlib.touch import detector, embedding, sim, sound_to_umap as su
    kit = SceneKit(tempfile.mkdtemp(), renderer=get_renderer("numpy", sim.SR))
    clip = sim.simulate_clip(kit, 0, seconds=10.0, gm_share=0.0)
    rows = {"simulate one 10 s clip (NumPy ingredients)": median_time(lambda: sim.simulate_clip(kit, 1, seconds=10.0, gm_share=0.0), a.repeats),
            "detector candidates, one 10 s clip": median_time(lambda: detector.candidates(clip.mix), a.repeats)}
    for size in (32, 112, 224):
        rows[f"frame_at, {size} px"] = median_time(lambda: sim.frame_at(clip, 1.0, size), a.repeats)
    model, _ = embedding.vgg19_model(None, 0)
    for size in (112, 224):
        fr = np.stack([sim.frame_at(clip, t, size) for t in (1.0, 2.0, 3.0, 4.0)])
        rows[f"VGG-19 pool5 per image, {size} px"] = median_time(lambda: embedding.vgg_features(fr, model), a.repeats) / len(fr)
    for name in ("quick", "full"):
        S = sim.TOUCH_SETTINGS[name]
        m = su.SoundCNN(su.SoundCNNConfig(channels=S.channels)).to(a.device)
        opt = torch.optim.Adam(m.parameters(), 1e-3)
        x, y = torch.randn(16, 257, 20, device=a.device), torch.randn(16, 2, device=a.device)
        def step():
            opt.zero_grad(); su.euclidean_loss(m(x), y).backward(); opt.step()
            if a.device.startswith("cuda"): torch.cuda.synchronize()
        rows[f"SoundCNN step per sample, {name} channels"] = median_time(step, a.repeats) / 16
    for k, v in rows.items(): print(f"{k:55s} {1000 * v:9.2f} ms")
    S = sim.TOUCH_SETTINGS["full"]
    est = {"simulate": (S.n_main + S.n_tune) * rows["simulate one 10 s clip (NumPy ingredients)"],
           "VGG-19 on 3000 frames at 224 px": 3000 * rows["VGG-19 pool5 per image, 224 px"],
           "SoundCNN, 2100 pairs x 100 epochs": 2100 * 100 * rows["SoundCNN step per sample, full channels"]}
    for k, v in est.items(): print(f"full profile, {k:45s} ~{v / 60:7.1f} min")


if __name__ == "__main__":
    main()
