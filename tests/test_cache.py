"""paperlib.cache: keys on content, atomic writes, arrays and JSON round trips, cached models."""
import numpy as np
import pytest
import torch

from paperlib import cache
from paperlib.core import ConfigError


def test_keys_change_with_content_not_with_order_of_named_values():
    assert cache.cache_key("a", n=1, m=2) == cache.cache_key("a", m=2, n=1)
    assert len({cache.cache_key("a", n=1), cache.cache_key("a", n=2), cache.cache_key("b", n=1)}) == 3
    x = np.arange(6, dtype=np.float32)
    assert cache.array_digest(x) == cache.array_digest(x.copy())
    assert len({cache.array_digest(x), cache.array_digest(x.astype(np.float64)), cache.array_digest(x.reshape(2, 3)),
                cache.array_digest(x + 1)}) == 4


def test_load_or_build_round_trips_arrays_and_json_and_misses_on_a_new_key():
    calls = []

    def build(n):
        calls.append(n)
        return {"x": np.arange(n, dtype=np.int16), "y": np.ones((n, 2), np.float32), "source": {"name": "toy", "n": n},
                "label": "s", "none": None}

    a, hit_a = cache.load_or_build("t", cache.cache_key(n=3), lambda: build(3))
    b, hit_b = cache.load_or_build("t", cache.cache_key(n=3), lambda: build(3))
    c, hit_c = cache.load_or_build("t", cache.cache_key(n=4), lambda: build(4))
    assert (hit_a, hit_b, hit_c) == (False, True, False) and calls == [3, 4]
    assert b["x"].dtype == np.int16 and np.array_equal(a["x"], b["x"]) and b["y"].shape == (3, 2)
    assert b["source"] == {"name": "toy", "n": 3} and b["label"] == "s" and b["none"] is None


def test_disabled_cache_builds_every_time_and_writes_nothing():
    n = []
    for _ in range(2):
        cache.load_or_build("t", "k", lambda: n.append(1) or {"x": np.zeros(1)}, enabled=False)
    assert len(n) == 2 and not cache.cache_path("t", "k").exists()


def test_an_entry_does_not_depend_on_the_callers_blas_threads():
    "A kernel (two BLAS threads) and a worker of in_parallel (one) must build the same bytes for the same key."
    from threadpoolctl import threadpool_info, threadpool_limits
    from paperlib.features import mel_spectrogram
    y = np.random.default_rng(0).standard_normal((64, 4 * 16000)).astype(np.float32)
    seen = []
    def build():
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return {"M": mel_spectrogram(y, sr=16000, n_fft=1024, hop_length=512, n_mels=64, power=2.0)}
    with threadpool_limits(2):
        two = cache.load_or_build("t", "mel", build, enabled=False)[0]["M"]
    with threadpool_limits(1):
        one = mel_spectrogram(y, sr=16000, n_fft=1024, hop_length=512, n_mels=64, power=2.0)
    assert seen and set(seen) == {1}
    assert np.array_equal(one, two)


def test_an_interrupted_build_leaves_no_file_and_a_corrupt_file_is_rebuilt(capsys):
    def boom():
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        cache.load_or_build("t", "k", boom)
    assert not cache.cache_path("t", "k").exists()
    folder = cache.cache_path("t", "k").parent
    assert not folder.exists() or not any(folder.iterdir())
    p = cache.cache_path("t", "k"); p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(b"not a zip")
    out, hit = cache.load_or_build("t", "k", lambda: {"x": np.arange(2)})
    assert not hit and np.array_equal(out["x"], [0, 1]) and "rebuilding" in capsys.readouterr().out
    assert cache.load_or_build("t", "k", lambda: {"x": np.arange(3)})[1]        # the rebuilt file is read next time


def test_atomic_write_leaves_no_temporary_files():
    cache.load_or_build("t", "k", lambda: {"x": np.arange(2)})
    assert [p.name for p in cache.cache_path("t", "k").parent.iterdir()] == ["k.npz"]


@pytest.mark.parametrize("bad", [{"x": np.array([object()])}, {"__json__": 1}, ["not", "a", "dict"], {"f": object()}])
def test_bad_entries_are_refused_before_anything_is_written(bad):
    with pytest.raises((ConfigError, TypeError)):
        cache.load_or_build("t", "k", lambda: bad)
    assert not cache.cache_path("t", "k").exists()


@pytest.mark.parametrize("kind,key", [("a/b", "k"), ("t", "../k"), ("", "k"), (".hidden", "k")])
def test_names_that_would_escape_the_cache_folder_are_refused(kind, key):
    with pytest.raises(ConfigError):
        cache.cache_path(kind, key)


def test_cached_model_trains_once_then_loads_weights_and_history():
    trained = []

    def build():
        torch.manual_seed(0)
        return torch.nn.Linear(3, 2)

    def train(m):
        trained.append(1)
        with torch.no_grad(): m.weight.mul_(2)
        return {"epoch": [1, 2], "loss": [1.0, 0.5]}

    m1, h1, hit1 = cache.cached_model("m", "k", build, train)
    m2, h2, hit2 = cache.cached_model("m", "k", build, train)
    assert (hit1, hit2) == (False, True) and len(trained) == 1 and h1 == h2
    assert torch.equal(m1.weight, m2.weight) and not m2.training
    m3, _, hit3 = cache.cached_model("m", "k", build, train, enabled=False)
    assert not hit3 and len(trained) == 2


def test_load_model_with_other_keys_retrains_instead_of_loading(capsys):
    cache.save_model(torch.nn.Linear(3, 2), "m", "k")
    assert cache.load_model(torch.nn.Linear(4, 2), "m", "k") is None and "retraining" in capsys.readouterr().out


def test_cached_model_training_resumes_across_chunks(monkeypatch):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from paperlib.cache import cache_path, cached_model
    from paperlib.train import TrainConfig, TrainingPaused, fit
    X = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    arrays = {"x": X, "y": (X[:, 0] > 0).astype(np.int64)}
    def build():
        torch.manual_seed(0); return nn.Linear(3, 2)
    def train(m):
        return fit(m, lambda m, b, e: {"loss": F.cross_entropy(m(b["x"]), b["y"])}, arrays, TrainConfig(epochs=3, batch_size=16))
    ref, ref_hist, _ = cached_model("toy", "ref", build, train)
    monkeypatch.setenv("PAPERLIB_CHUNK_S", "0")
    for _ in range(2):                                           # two chunks pause, with the checkpoint beside the entry
        with pytest.raises(TrainingPaused):
            cached_model("toy", "chunked", build, train)
        assert cache_path("toy", "chunked", ".ckpt.pt").exists() and not cache_path("toy", "chunked", ".pt").exists()
    model, hist, hit = cached_model("toy", "chunked", build, train)   # the third finishes and is cached
    assert not hit and hist["loss"] == ref_hist["loss"] and torch.equal(model.weight, ref.weight)
    assert not cache_path("toy", "chunked", ".ckpt.pt").exists()
    assert cached_model("toy", "chunked", build, train)[2]           # then it loads


def test_cached_object_builds_once_alone_and_rebuilds_an_unreadable_entry(capsys):
    calls = []

    def build():
        calls.append(torch.get_num_threads())
        return {"fitted": np.arange(3), "note": "a picklable object"}

    torch.set_num_threads(2)
    a, hit_a = cache.cached_object("t", "obj", build)
    b, hit_b = cache.cached_object("t", "obj", build)
    assert (hit_a, hit_b) == (False, True) and calls == [1]            # built once, on one thread (as in a worker)
    assert np.array_equal(a["fitted"], b["fitted"]) and b["note"] == a["note"] and torch.get_num_threads() == 2
    cache.cache_path("t", "obj", ".pkl").write_bytes(b"not a pickle")
    c, hit_c = cache.cached_object("t", "obj", build)
    assert not hit_c and len(calls) == 2 and "rebuilding" in capsys.readouterr().out
    d, hit_d = cache.cached_object("t", "other", build, enabled=False)
    assert not hit_d and not cache.cache_path("t", "other", ".pkl").exists()
