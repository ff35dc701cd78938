"""Benchmark: what the full profile's autoencoder pretraining on the note grid costs (paper 001, `pretrain_autoencoder`).

For one split of the full profile (seed 0: 150 notes per family from the training SoundFont), measures in this process:
- the pretraining plan (`pretraining_plan`: the grid and its exclusions, read from the SoundFont's zones, no audio),
- rendering and preparing the kept notes (`pretraining_logmag`, chunks of 2,000 notes, cold cache unless PAPERLIB_CACHE
  already holds them),
- the autoencoder's training: seconds per epoch (the optimiser steps, from the history) over `--epochs` epochs,
  extrapolated to the profile's `pretrain_epochs`.
The renders and the model go to PAPERLIB_CACHE (default: a temporary folder, removed afterwards). Needs FluidSynth and
the GM SoundFonts. Not collected by pytest; prints a JSON line (no timing asserts). From the repository root:

    .venv/bin/python tests/benchmarks/bench_pretraining.py [--epochs 2] [--threads 2] [--profile full]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2, help="epochs to train (the per-epoch time is extrapolated)")
    ap.add_argument("--threads", type=int, default=2, help="torch / BLAS threads (the full profile uses every core)")
    ap.add_argument("--profile", default="full")
    ap.add_argument("--soundfont", default="FluidR3_GM")
    a = ap.parse_args()
    tmp = None
    if "PAPERLIB_CACHE" not in os.environ:
        tmp = tempfile.TemporaryDirectory(); os.environ["PAPERLIB_CACHE"] = tmp.name
    from paperlib.core import pin_threads
    from paperlib.timbre.data import TIMBRE_SETTINGS, load_study_notes, pretraining_logmag, pretraining_plan
    from paperlib.timbre.model import autoencoder_configs, get_autoencoder

    threads = pin_threads(a.threads)
    S = TIMBRE_SETTINGS[a.profile]
    out = {"profile": a.profile, "threads": threads, "cpus": os.cpu_count()}
    t = time.perf_counter()
    notes, _ = load_study_notes(S, "gm-nsynth", [a.soundfont], [], 0)
    out["labelled notes: render + prepare (s)"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    plan, counts = pretraining_plan(notes, a.soundfont, S.pretrain_pitch_step, S.pretrain_velocities)
    out["plan (s)"], out["counts"] = round(time.perf_counter() - t, 2), counts
    t = time.perf_counter()
    logmag = pretraining_logmag(plan, a.soundfont, progress=False)
    out["pretraining notes: render + prepare (s)"] = round(time.perf_counter() - t, 1)
    out["log-magnitudes (GB, float16)"] = round(logmag.nbytes / 1e9, 2)
    ae_cfg, tr_cfg = autoencoder_configs(S, 0)
    t = time.perf_counter()
    _, history, _ = get_autoencoder(logmag, ae_cfg, dataclasses.replace(tr_cfg, epochs=a.epochs), "cpu",
                                    val=notes.logmag[~notes.mask("train", "autoencoder")], cache=False, progress=False)
    out["training, wall incl. validation (s)"] = round(time.perf_counter() - t, 1)
    per_epoch = sum(history["seconds"]) / len(history["seconds"])
    out["seconds per epoch (steps)"] = round(per_epoch, 1)
    out[f"extrapolated: {S.pretrain_epochs} epochs (min)"] = round(per_epoch * S.pretrain_epochs / 60, 1)
    out["loss per epoch"] = [round(v, 5) for v in history["loss"]]
    out["held-out MSE per epoch"] = [round(v, 5) for v in history["val"]]
    print(json.dumps(out, indent=1))
    if tmp is not None: tmp.cleanup()


if __name__ == "__main__":
    main()
