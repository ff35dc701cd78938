"""paperlib.train: the one loop (fit), its schedules and history, batched inference, threads and split."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlib import train
from paperlib.core import ConfigError, DataError
from paperlib.train import TrainConfig, batched, fit, predict_classes, split


def blobs(n=120, seed=0):
    r = np.random.default_rng(seed)
    X = np.concatenate([r.normal(-1, 1, (n // 2, 4)), r.normal(1, 1, (n // 2, 4))]).astype(np.float32)
    return X, np.repeat([0, 1], n // 2)


def ce_step(model, batch, epoch):
    return {"loss": F.cross_entropy(model(batch["x"]), batch["y"])}


def linear(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(4, 2)


def test_fit_lowers_the_loss_and_returns_a_dict_of_lists():
    X, y = blobs()
    h = fit(linear(), ce_step, {"x": X, "y": y}, TrainConfig(epochs=6, batch_size=16, lr=0.05))
    assert set(h) == {"epoch", "lr", "loss", "seconds"} and h["epoch"] == list(range(1, 7))
    assert h["loss"][-1] < 0.7 * h["loss"][0]


def test_same_seed_same_weights_and_another_batch_order_differs():
    X, y = blobs()
    ws = []
    for seed in (0, 0, 1):
        m = linear()
        fit(m, ce_step, {"x": X, "y": y}, TrainConfig(epochs=2, batch_size=16, seed=seed))
        ws.append(m.weight.detach().clone())
    assert torch.equal(ws[0], ws[1]) and not torch.equal(ws[0], ws[2])


@pytest.mark.parametrize("fused", [True, False])
def test_fit_equals_the_hand_written_loop(fused):
    "fit is exactly: one randperm per epoch, Adam (fused kernel or loop), zero_grad, backward, clip, step (what the papers' loops did)."
    X, y = blobs(100)
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.01, grad_clip=1.0, min_batch=2, seed=3, fused=fused)
    m = linear(); fit(m, ce_step, {"x": X, "y": y}, cfg)
    ref = linear(); opt = torch.optim.Adam(ref.parameters(), lr=0.01, fused=fused); gen = torch.Generator().manual_seed(3)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for _ in range(3):
        perm = torch.randperm(100, generator=gen)
        for i in range(0, 100, 16):
            idx = perm[i:i + 16]
            if len(idx) < 2: continue
            loss = F.cross_entropy(ref(Xt[idx]), yt[idx])
            opt.zero_grad(); loss.backward(); nn.utils.clip_grad_norm_(ref.parameters(), 1.0); opt.step()
    assert torch.equal(m.weight, ref.weight) and torch.equal(m.bias, ref.bias)


def test_the_fused_adam_is_the_same_rule_as_the_loop():
    "The fused kernel (the default) and the per-parameter loop differ only in float rounding, not in what they compute."
    X, y = blobs(100)
    ws = []
    for fused in (True, False):
        m = linear(); fit(m, ce_step, {"x": X, "y": y}, TrainConfig(epochs=3, batch_size=16, lr=0.01, seed=3, fused=fused))
        ws.append(m.weight.detach().clone())
    assert TrainConfig().fused and torch.allclose(ws[0], ws[1], atol=1e-5) and not torch.allclose(ws[0], linear().weight, atol=1e-3)


def test_steps_with_drop_last_cross_epochs_and_rows_every_k_steps():
    X, y = blobs(50)
    seen = []

    def step(model, batch, epoch):
        seen.append((epoch, len(batch["y"])))
        return ce_step(model, batch, epoch)

    h = fit(linear(), step, {"x": X, "y": y}, TrainConfig(steps=7, batch_size=16, drop_last=True, eval_every=3),
            validate=lambda m, row: {"val": row["step"] * 10})
    assert len(seen) == 7 and all(b == 16 for _, b in seen) and [e for e, _ in seen] == [0, 0, 0, 1, 1, 1, 2]
    assert h["step"] == [3, 6, 7] and h["val"] == [30, 60, 70]


def test_cosine_schedule_matches_torch_lambdalr():
    X, y = blobs(64)
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.01, schedule="cosine")
    lrs = []
    fit(linear(), lambda m, b, e: lrs.append(None) or ce_step(m, b, e), {"x": X, "y": y}, cfg,
        validate=None)
    total = 3 * 4
    m = linear(); opt = torch.optim.Adam(m.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(s, total) / total)))
    expected = []
    for _ in range(total):
        expected.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    got = [train._cosine_lr(0.01, s, total) for s in range(total)]
    assert got == expected and len(lrs) == total


def test_exponential_schedule_per_epoch_and_validate_can_stop_early():
    X, y = blobs(64)
    cfg = TrainConfig(epochs=5, batch_size=32, lr=1e-2, lr_end=1e-4, schedule="exponential")
    h = fit(linear(), ce_step, {"x": X, "y": y}, cfg)
    assert h["lr"] == pytest.approx([1e-2 * (1e-2) ** (e / 4) for e in range(5)])
    h2 = fit(linear(), ce_step, {"x": X, "y": y}, cfg, validate=lambda m, row: {"stop": row["epoch"] == 2, "seen": row["loss"]})
    assert h2["epoch"] == [1, 2] and "stop" not in h2 and h2["seen"] == h2["loss"]


def test_validate_runs_in_eval_mode_and_the_model_ends_in_eval_mode():
    X, y = blobs(32)
    modes = []
    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    fit(m, ce_step, {"x": X, "y": y}, TrainConfig(epochs=2, batch_size=16), validate=lambda mm, r: modes.append(mm.training) or {})
    assert modes == [False, False] and not m.training


def test_bad_inputs_are_clear_errors():
    X, y = blobs(10)
    with pytest.raises(ConfigError, match="one length"):
        fit(linear(), ce_step, {"x": X, "y": y[:5]}, TrainConfig())
    with pytest.raises(DataError, match="no batch"):
        fit(linear(), ce_step, {"x": X, "y": y}, TrainConfig(batch_size=16, drop_last=True))
    for bad in (dict(epochs=0), dict(batch_size=0), dict(schedule="linear"), dict(schedule="exponential"), dict(lr=-1)):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_batched_equals_unbatched_for_tensors_tuples_and_dicts(batch_size):
    X, _ = blobs(50)
    m = linear().eval()
    full = m(torch.as_tensor(X)).detach().numpy()
    np.testing.assert_allclose(batched(m, X, batch_size=batch_size), full, rtol=1e-6, atol=1e-7)
    out = batched(lambda x: {"logits": m(x), "cls": m(x).argmax(1)}, X, batch_size=batch_size)
    assert np.array_equal(out["cls"], full.argmax(1))
    a, b = batched(lambda x, y: (x.sum(1), y * 2), X, np.arange(50), batch_size=batch_size)
    assert a.shape == (50,) and b.dtype == np.int64 and np.array_equal(b, np.arange(50) * 2)
    assert np.array_equal(predict_classes(m, X, batch_size=batch_size), full.argmax(1))


def test_threads_are_restored():
    old = torch.get_num_threads()
    with train.threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == old


def test_split_is_stratified_reproducible_and_named_by_stream():
    y = np.repeat(np.arange(4), 20)
    s = split(y, (0.7, 0.2, 0.1), seed=0)
    assert s.dtype.kind == "U" and set(s) == {"train", "val", "test"}
    for c in range(4):
        assert ((s[y == c] == "val").sum(), (s[y == c] == "test").sum()) == (4, 2)
    assert np.array_equal(s, split(y, (0.7, 0.2, 0.1), seed=0))
    assert not np.array_equal(s, split(y, (0.7, 0.2, 0.1), seed=0, stream="other"))
    assert not np.array_equal(s, split(y, (0.7, 0.2, 0.1), seed=1))


def test_split_holds_out_whole_groups():
    y = np.repeat(np.arange(3), 12); g = np.tile(np.arange(4), 9)
    s = split(y, (0.8, 0.1, 0.1), groups=g, test_groups=[2])
    assert (s[g == 2] == "test").all() and not (s[g != 2] == "test").any() and (s == "val").any()
    with pytest.raises(ConfigError, match="not in the data"):
        split(y, groups=g, test_groups=[9])
    with pytest.raises(DataError, match="nothing is left"):
        split(y, groups=g, test_groups=[0, 1, 2, 3])


def test_split_says_how_many_examples_a_class_needs():
    with pytest.raises(DataError, match="at least 6 examples"):
        split(np.repeat([0, 1], 3), (0.8, 0.1, 0.1))
    with pytest.raises(ConfigError, match="summing to 1"):
        split(np.zeros(10), (0.5, 0.1, 0.1))


def _dropout_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))


def _chunk_problem():
    g = np.random.default_rng(1)
    X = g.normal(size=(120, 4)).astype(np.float32)
    return {"x": X, "y": (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)}


def _ce_step(m, b, e):
    return {"loss": F.cross_entropy(m(b["x"]), b["y"])}


def _best_validator(arrays):
    "A stateful validate callback (like manifold.vqvae.best_epoch_validator): best weights and count kept in .state."
    state = {"best": None, "value": None}
    def validate(model, row):
        with torch.no_grad(): v = float(F.cross_entropy(model(torch.as_tensor(arrays["x"])), torch.as_tensor(arrays["y"])))
        if state["value"] is None or v < state["value"]:
            state.update(best={k: t.clone() for k, t in model.state_dict().items()}, value=v)
        return {"val": v}
    validate.state = state
    return validate


def test_paused_and_resumed_training_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    arrays = _chunk_problem()
    cfg = TrainConfig(epochs=6, batch_size=16, lr=0.01, schedule="exponential", lr_end=1e-3, grad_clip=1.0, seed=3)
    ref_model, ref_val = _dropout_net(), _best_validator(arrays)
    ref = fit(ref_model, _ce_step, arrays, cfg, validate=ref_val)
    ckpt = tmp_path / "run.ckpt.pt"
    monkeypatch.setenv("PAPERLIB_CHUNK_S", "0")                  # pause at every epoch end
    calls, paused_at = 0, []
    while True:
        calls += 1
        model, val = _dropout_net(), _best_validator(arrays)     # every call starts like a fresh process ...
        if calls > 1: torch.manual_seed(1000 + calls)            # ... and a resumed one with another random state
        try:
            with train.resumable(ckpt): hist = fit(model, _ce_step, arrays, cfg, validate=val)
            break
        except train.TrainingPaused as e:
            assert ckpt.exists() and "run the same command again" in str(e)
            paused_at.append(e.epoch)
    assert paused_at == [1, 2, 3, 4, 5] and calls == 6
    assert not ckpt.exists()                                     # finished: the checkpoint is gone
    assert hist["loss"] == ref["loss"] and hist["val"] == ref["val"] and hist["lr"] == ref["lr"]
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()): assert torch.equal(a, b)
    assert val.state["value"] == ref_val.state["value"]         # the callback's state travelled with the checkpoint
    for k in ref_val.state["best"]: assert torch.equal(val.state["best"][k], ref_val.state["best"][k])


def test_a_training_without_a_checkpoint_never_pauses_and_a_bad_chunk_value_is_a_clear_error(monkeypatch):
    arrays = _chunk_problem()
    monkeypatch.setenv("PAPERLIB_CHUNK_S", "0")                  # outside `resumable` it could not resume: it trains through
    assert len(fit(_dropout_net(), _ce_step, arrays, TrainConfig(epochs=2, batch_size=16))["loss"]) == 2
    monkeypatch.setenv("PAPERLIB_CHUNK_S", "ten minutes")
    with pytest.raises(ConfigError, match="PAPERLIB_CHUNK_S"):
        fit(_dropout_net(), _ce_step, arrays, TrainConfig(epochs=2, batch_size=16))


# in_parallel: independent trainings side by side in spawned single-threaded workers

def _tiny_cat_uvac_calls():
    from functools import partial
    from paperlib.uvac.model import UVACConfig
    from paperlib.uvac.train import train_cat_uvac
    X = np.random.default_rng(0).random((48, 1, 16, 16)).astype(np.float32)
    cfg = UVACConfig(in_shape=(16, 16), n_clusters=3, kernel=4, padding=1)
    return {s: partial(train_cat_uvac, X, cfg, TrainConfig(epochs=2, batch_size=16, min_batch=2, seed=s), 0.25,
                       desc=None, cache=False) for s in (0, 1, 2)}


def test_in_parallel_gives_the_numbers_of_one_by_one(monkeypatch):
    calls = _tiny_cat_uvac_calls()
    monkeypatch.setenv("PAPERLIB_WORKERS", "2")
    assert train.workers(len(calls)) == 2
    side = train.in_parallel(calls)
    monkeypatch.setenv("PAPERLIB_WORKERS", "1")
    here = train.in_parallel(calls)
    monkeypatch.delenv("PAPERLIB_WORKERS")
    together = train.in_parallel(calls, together=True)          # one process per call, sharing the cores
    assert list(side) == [0, 1, 2]
    for s in calls:
        for (m1, h1), (m2, h2) in [(side[s], here[s]), (together[s], here[s])]:
            assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
            assert h1["loss"].tolist() == h2["loss"].tolist()
    assert not all(torch.equal(a, b) for a, b in zip(side[0][0].state_dict().values(), side[1][0].state_dict().values()))


def test_in_parallel_runs_each_call_alone_and_leaves_the_caller_as_it_was(monkeypatch):
    from functools import partial
    monkeypatch.setenv("PAPERLIB_WORKERS", "1")
    torch.set_num_threads(2); torch.manual_seed(123)
    before = torch.get_rng_state()
    out = train.in_parallel([torch.get_num_threads, partial(torch.rand, 2)])
    assert out[0] == 1                                            # one thread inside the call
    assert torch.equal(out[1], (torch.manual_seed(0), torch.rand(2))[1])   # the global generator seeded with 0
    torch.set_rng_state(before)
    assert train.in_parallel([partial(torch.rand, 2)])[0].tolist() == out[1].tolist()
    assert torch.get_num_threads() == 2 and torch.equal(torch.get_rng_state(), before)


def test_in_parallel_raises_a_worker_error_here(monkeypatch):
    from functools import partial
    from paperlib.core import check_positive
    monkeypatch.setenv("PAPERLIB_WORKERS", "2")
    with pytest.raises(ConfigError, match="must be a finite number"):
        train.in_parallel([partial(check_positive, "lr", 1.0), partial(check_positive, "lr", -1.0)])


def test_in_parallel_refuses_what_a_worker_cannot_import(monkeypatch):
    def local(): return 1
    local.__module__ = "__main__"                                 # as a function defined in a notebook's kernel
    with pytest.raises(ConfigError, match="cannot import"):
        train.in_parallel([local, local])
    with pytest.raises(ConfigError, match="not callable"):
        train.in_parallel([1])


def test_workers_reads_the_environment_and_stays_in_process_on_a_gpu(monkeypatch):
    monkeypatch.setenv("PAPERLIB_WORKERS", "3")
    assert train.workers(10) == 3 and train.workers(2) == 2 and train.workers(1) == 1 and train.workers(10, "cuda") == 1
    assert train.workers(10, together=True) == 3          # the environment's number wins
    monkeypatch.setenv("PAPERLIB_WORKERS", "two")
    with pytest.raises(ConfigError, match="PAPERLIB_WORKERS"):
        train.workers(4)
    monkeypatch.delenv("PAPERLIB_WORKERS")
    cores = __import__("os").cpu_count() or 1
    assert 1 <= train.workers(64) <= cores
    assert train.workers(3, together=True) == min(3, 2 * cores) and train.workers(64, together=True) == 2 * cores
    assert train.workers(3, "cuda", together=True) == 1


def _start_time_after_sleeping(seconds: float) -> int:
    "When this call started (the system-wide monotonic clock, ns); then sleeps `seconds` (a call of known length)."
    import time
    t = time.monotonic_ns(); time.sleep(seconds)
    return t


def test_in_parallel_starts_the_costliest_calls_first_and_keeps_the_order_of_results(monkeypatch):
    from functools import partial
    monkeypatch.setenv("PAPERLIB_WORKERS", "2")
    calls = {k: partial(_start_time_after_sleeping, s) for k, s in {"a": 0.2, "b": 0.2, "c": 0.2, "long": 0.6}.items()}
    started = train.in_parallel(calls, cost={"a": 1, "b": 1, "c": 1, "long": 3})
    assert list(started) == ["a", "b", "c", "long"]                 # the results in the order of the calls
    assert started["long"] <= min(started[k] for k in "bc")         # the long call was handed out first, not last
    listed = train.in_parallel(list(calls.values()), cost=[1, 1, 1, 3])
    assert listed[3] <= min(listed[1:3])
    with pytest.raises(ConfigError, match="one non-negative number per call"):
        train.in_parallel(list(calls.values()), cost=[1, 1])
    with pytest.raises(ConfigError, match="one non-negative number per call"):
        train.in_parallel(list(calls.values()), cost=[1, 1, -1, 2])


def test_warm_workers_starts_the_pool_that_in_parallel_then_uses(monkeypatch):
    from functools import partial
    monkeypatch.setenv("PAPERLIB_WORKERS", "2")
    assert train.warm_workers(5) == 2 and 2 in train._POOLS
    pool = train._POOLS[2]
    assert train.in_parallel([partial(abs, -1), partial(abs, -2)]) == [1, 2]
    assert train._POOLS[2] is pool                                  # the warmed workers ran the calls
    assert train.warm_workers(1) == 0 and train.warm_workers(4, "cuda") == 0   # one call, or a GPU: this process runs them


def test_a_worker_takes_the_callers_settings_and_directory_with_each_call(monkeypatch, tmp_path):
    import os
    from functools import partial
    monkeypatch.setenv("PAPERLIB_WORKERS", "2")
    monkeypatch.delenv("PAPERLIB_PROBE", raising=False)
    assert train.in_parallel([partial(os.getenv, "PAPERLIB_PROBE")] * 2) == [None, None]     # the pool runs now
    if "forkserver" in __import__("multiprocessing").get_all_start_methods():
        assert train._POOLS[2]._mp_context.get_start_method() == "forkserver"
    monkeypatch.setenv("PAPERLIB_PROBE", "set after the workers started")
    monkeypatch.chdir(tmp_path)
    out = train.in_parallel([partial(os.getenv, "PAPERLIB_PROBE"), partial(os.getcwd)])
    assert out == ["set after the workers started", str(tmp_path)]
    monkeypatch.delenv("PAPERLIB_PROBE")
    assert train.in_parallel([partial(os.getenv, "PAPERLIB_PROBE")] * 2) == [None, None]      # and its removal


def test_in_threads_gives_the_function_of_all_rows_in_order():
    from sklearn.svm import SVC
    r = np.random.default_rng(0)
    X, Z = r.standard_normal((200, 8)), r.standard_normal((101, 8))
    svm = SVC().fit(X, X[:, 0] + X[:, 1] > 0)
    want = svm.predict(Z)
    for n in (None, 1, 2, 3, 500):                   # None: torch's threads; more threads than rows: one row each
        assert np.array_equal(train.in_threads(svm.predict, Z, n), want)
    assert np.array_equal(train.in_threads(lambda a: a[:, :2] * 2, Z, 4), Z[:, :2] * 2)      # rows of any width
    assert train.in_threads(np.square, np.arange(1.0), 2).tolist() == [0.0]
