"""Shared fixtures: every test runs with its own cache folder and without the CI's strict/data settings
unless it asks for them, so results never depend on the machine's environment variables."""
import atexit
import os
import shutil
import tempfile

# Numba's on-disk cache (librosa's and umap's compiled functions) is not safe against two processes compiling the
# same function at once: each writes its own overloads under file numbers it picks alone, so one process's index can
# point at the other's machine code. On a fresh environment the two pytest-xdist workers did exactly that with
# librosa's peak picking, and every kernel that loaded it afterwards segfaulted. So every test process (and the
# kernels it starts, which inherit its environment and run one at a time) gets its own cache folder. It is set
# unconditionally, keyed on this process: xdist's workers inherit the controller's environment, so a `setdefault`
# here would hand both workers the controller's folder (that happened in CI). Set before anything imports numba.
_NUMBA_CACHE = os.path.join(tempfile.gettempdir(), f"paperlib-numba-{os.getpid()}")
os.environ["NUMBA_CACHE_DIR"] = _NUMBA_CACHE
atexit.register(shutil.rmtree, _NUMBA_CACHE, ignore_errors=True)

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
