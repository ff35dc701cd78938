"""Shared fixtures: every test runs with its own cache folder and without the CI's strict/data settings
unless it asks for them, so results never depend on the machine's environment variables."""
import os
import tempfile

# Numba's on-disk cache (librosa's and umap's compiled functions) is not safe against two processes compiling the
# same function at once: on a fresh environment the two pytest-xdist workers did exactly that and left a corrupt
# cache entry of librosa's peak picking, which then segfaulted every kernel that used it. Each worker (and the
# kernels it starts, which inherit its environment) gets its own cache folder; set before anything imports numba.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"paperlib-numba-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"))

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    for var in ("PAPERLIB_STRICT", "PAPERLIB_FALLBACKS_ONLY", "PAPERLIB_WRITE_REFERENCE", "PAPERLIB_RESAMPLE", "PAPERLIB_RECEIPT"):
        monkeypatch.delenv(var, raising=False)
    from paperlib import core
    monkeypatch.setattr(core, "_FALLBACKS", [])      # each test sees its own fallbacks (said once per process otherwise)
    yield


def write_tone(path, sr=8000, seconds=0.5, freq=440.0, channels=1, amp=0.5):
    "Write a sine tone (the fixtures' stand-in for a recording) and return its path."
    t = np.arange(int(sr * seconds)) / sr
    y = amp * np.sin(2 * np.pi * freq * t)
    if channels > 1:
        y = np.stack([y] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr)
    return path
