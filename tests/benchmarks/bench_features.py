"""Benchmark: paper 000's five frame features from one shared STFT against five separate librosa calls.

`paperlib.features.frame_features` (energy eq. 1, centroid, flatness eq. 2, onset eq. 3, zero crossings about the
clip's mean) is timed against librosa configured to the same definitions, each call starting from the waveform,
on the same batch of 10 s clips at 16 kHz (paper 000's settings: n_fft 256, hop 160, Hann, centred frames).
Goal: >= 5x faster, every value equal to rtol 1e-5.

Not collected by pytest (the file name does not start with test_). Run from the repository root:

    .venv/bin/python tests/benchmarks/bench_features.py [--clips 8] [--seconds 10] [--repeats 7]

Both sides run single-threaded FFTs (numpy's for librosa, scipy's with workers=1 here); timings are medians.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def make_batch(n_clips: int, seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    "Float32 clips (n_clips, n_samples): noise, a hum, a DC offset and a few decaying broadband bursts."
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = 0.01 * rng.standard_normal((n_clips, n)) + 0.02 * np.sin(2 * np.pi * 120 * t) + 0.003
    for c in range(n_clips):
        for t0 in rng.uniform(0, seconds - 0.1, int(seconds)):
            i = int(t0 * sr); m = int(0.05 * sr)
            y[c, i:i + m] += rng.standard_normal(m) * np.exp(-np.arange(m) / (0.005 * sr)) * rng.uniform(0.2, 0.9)
    return y.astype(np.float32)


def librosa_features(y: np.ndarray, sr: int, n_fft: int, hop: int) -> dict[str, np.ndarray]:
    "The five features as five librosa calls from the waveform, each configured to paper 000's definition."
    import librosa
    n_bins = n_fft // 2 + 1
    return {
        "energy": np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)).sum(axis=-2),
        "centroid": librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=n_fft, hop_length=hop,
                                                      freq=np.arange(n_bins))[..., 0, :],
        "flatness": librosa.feature.spectral_flatness(y=y, n_fft=n_fft, hop_length=hop, power=1.0, amin=1e-10)[..., 0, :],
        # onset_strength(y=...) always takes the dB of its input; from the waveform, |X| goes in as S.
        "onset": librosa.onset.onset_strength(S=np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)), lag=1, max_size=1,
                                              aggregate=np.sum, center=False, detrend=False),
        "zcr": librosa.feature.zero_crossing_rate(y - y.mean(axis=-1, keepdims=True), frame_length=n_fft,
                                                  hop_length=hop, center=True, threshold=0.0)[..., 0, :] * n_fft,
    }


def paperlib_features(y: np.ndarray, sr: int, n_fft: int, hop: int) -> dict[str, np.ndarray]:
    from paperlib.features import frame_features
    return frame_features(y, sr=sr, n_fft=n_fft, hop_length=hop)


def timed(fn, repeats: int) -> float:
    "Median wall time of `repeats` calls (after one warm-up call), seconds."
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8, help="clips in the batch (default 8)")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length in seconds (default 10)")
    ap.add_argument("--repeats", type=int, default=7, help="timed repetitions, median reported (default 7)")
    args = ap.parse_args(argv)
    sr, n_fft, hop = 16000, 256, 160
    y = make_batch(args.clips, args.seconds, sr)
    audio_s = args.clips * args.seconds

    ours, ref = paperlib_features(y, sr, n_fft, hop), librosa_features(y, sr, n_fft, hop)
    t_lib = timed(lambda: librosa_features(y, sr, n_fft, hop), args.repeats)
    t_ours = timed(lambda: paperlib_features(y, sr, n_fft, hop), args.repeats)

    print(f"batch: {args.clips} clips x {args.seconds:g} s at {sr} Hz ({audio_s:g} s of audio), n_fft {n_fft}, hop {hop}, "
          f"{ref['energy'].shape[-1]} frames per clip")
    print(f"{'feature':10s} {'max |diff|':>12s} {'max rel diff':>13s}  equal (rtol 1e-5)")
    worst = 0.0
    for k, r in ref.items():
        a = ours[k].astype(np.float64); r = r.astype(np.float64)
        diff = np.abs(a - r)
        rel = float(np.max(diff / np.where(r != 0, np.abs(r), 1.0)))
        worst = max(worst, rel)
        print(f"{k:10s} {diff.max():12.3g} {rel:13.3g}  {np.allclose(a, r, rtol=1e-5, atol=0)}")
    ratio = t_lib / t_ours
    print(f"librosa, 5 calls : {t_lib * 1e3:8.2f} ms  real-time factor {t_lib / audio_s:.2e} ({audio_s / t_lib:,.0f}x real time)")
    print(f"paperlib, 1 STFT : {t_ours * 1e3:8.2f} ms  real-time factor {t_ours / audio_s:.2e} ({audio_s / t_ours:,.0f}x real time)")
    print(f"speed ratio librosa / paperlib: {ratio:.2f}x (goal >= 5x: {'met' if ratio >= 5 else 'NOT met'}); "
          f"max relative difference {worst:.2e} (goal <= 1e-5: {'met' if worst <= 1e-5 else 'NOT met'})")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
