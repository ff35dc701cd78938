"""Tests of paperlib.uvac (paper 002): the common model checks, network shapes, the terms of the bound (7) on hand-checkable cases, the
schedules, Hungarian accuracy, the preprocessing, the splits, and the scene simulators' balance and determinism."""
import math
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch

from paperlib import data, synth
from paperlib import train as ptrain
from paperlib.uvac import data as ud, model as um, scenes, train as ut
from paperlib.core import ConfigError, DataError
from conftest import write_tone


# ---------------------------------------------------------------- shapes through encoders and decoder
@pytest.mark.parametrize("shape", [(32, 32), (32, 48), (64, 16)])
def test_cat_uvac_shapes(shape):
    torch.manual_seed(0)
    cfg = um.UVACConfig(in_shape=shape, n_clusters=5, d_z=3)
    m = um.CatUVAC(cfg)
    x = torch.rand(4, 1, *shape)
    out = m(x, tau=0.7)
    assert out["logits"].shape == (4, 5) and out["y"].shape == (4, 5)
    assert torch.allclose(out["y"].sum(1), torch.ones(4), atol=1e-5)           # Gumbel-Softmax samples lie on the simplex
    assert out["mu"].shape == out["logvar"].shape == out["z"].shape == (4, 3)
    assert out["x_hat"].shape == x.shape and 0 < out["x_hat"].min() and out["x_hat"].max() < 1   # sigmoid output
    assert m.q_y_x(x).shape == (4, cfg.gru_hidden)                               # conv stack + two GRU layers
    assert m.q_z_xy.conv[0].in_channels == 1 + 5                                 # x and y joined on the channel axis
    assert m.p_x_yz.deconv[0].in_channels == 3 + 5                               # [z, y] broadcast over the grid
    assert cfg.grid == (shape[0] // 16, shape[1] // 16)


def test_uvac_baseline_shapes_and_responsibilities():
    cfg = um.UVACConfig(in_shape=(32, 32), n_clusters=4, d_z=2)
    m = um.UVAC(cfg).eval()
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        out = m(x, sample=False)
        g = m.responsibilities(out["z"])
    assert out["x_hat"].shape == x.shape and out["z"].shape == (3, 2)
    assert g.shape == (3, 4) and torch.allclose(g.sum(1), torch.ones(3))


def test_architecture_follows_the_paper():
    m = um.CatUVAC(um.UVACConfig(in_shape=(32, 32)))
    convs = [l for l in m.q_y_x.conv if isinstance(l, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128]
    assert all(c.kernel_size == (8, 8) and c.stride == (2, 2) and c.padding == (3, 3) for c in convs)
    assert sum(isinstance(l, torch.nn.BatchNorm2d) for l in m.q_y_x.conv) == 4
    assert m.q_y_x.gru.num_layers == 2 and m.q_y_x.gru.hidden_size == 128
    deconvs = [l for l in m.p_x_yz.deconv if isinstance(l, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in deconvs] == [64, 32, 16, 1]
    assert isinstance(m.p_x_yz.deconv[-1], torch.nn.Sigmoid) and sum(isinstance(l, torch.nn.ReLU) for l in m.p_x_yz.deconv) == 3


def test_config_rejects_shapes_the_strides_cannot_invert():
    with pytest.raises(ConfigError, match="multiple of 16"):
        um.UVACConfig(in_shape=(30, 32))


# ---------------------------------------------------------------- the terms of the bound (7), by hand
def test_kl_normal_by_hand():
    mu = torch.tensor([[1.0, 0.0]]); logvar = torch.tensor([[0.0, math.log(2.0)]])
    # 0.5 * [(1 + 1 - 1 - 0) + (0 + 2 - 1 - log 2)]
    assert um.kl_normal(mu, logvar).item() == pytest.approx(0.5 * (1 + 1 - math.log(2)), rel=1e-6)
    assert um.kl_normal(torch.zeros(2, 3), torch.zeros(2, 3)).tolist() == [0.0, 0.0]


def test_kl_categorical_uniform_by_hand():
    assert um.kl_categorical_uniform(torch.zeros(1, 10)).item() == pytest.approx(0.0, abs=1e-6)
    assert um.kl_categorical_uniform(torch.tensor([[50.0, 0, 0, 0]])).item() == pytest.approx(math.log(4), rel=1e-5)
    p = torch.tensor([[0.5, 0.25, 0.25]])
    expected = sum(v * math.log(v / (1 / 3)) for v in [0.5, 0.25, 0.25])
    assert um.kl_categorical_uniform(p.log()).item() == pytest.approx(expected, rel=1e-5)


def test_bernoulli_nll_by_hand_and_mask():
    x = torch.rand(2, 1, 4, 6)
    half = torch.full_like(x, 0.5)
    assert um.bernoulli_nll(half, x).tolist() == pytest.approx([24 * math.log(2)] * 2, rel=1e-5)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.float32)
    assert um.bernoulli_nll(half, x, mask).tolist() == pytest.approx([12 * math.log(2), 24 * math.log(2)], rel=1e-5)
    t = torch.tensor([0.0, 1.0, 0.0, 1.0]).view(1, 1, 2, 2); p = torch.tensor([0.1, 0.8, 0.5, 0.5]).view(1, 1, 2, 2)
    assert um.bernoulli_nll(p, t).item() == pytest.approx(-(math.log(0.9) + math.log(0.8) + 2 * math.log(0.5)), rel=1e-5)


def test_cat_uvac_loss_combines_terms_with_the_lagrangian():
    terms = {"rec": torch.tensor([10.0, 20.0]), "kl_z": torch.tensor([1.0, 3.0]), "kl_y": torch.tensor([0.5, 0.5])}
    assert um.cat_uvac_loss(terms, lam=1.0).item() == pytest.approx((11.5 + 23.5) / 2)
    assert um.cat_uvac_loss(terms, lam=2.0).item() == pytest.approx((13 + 27) / 2)


def test_vade_kl_with_one_standard_component_is_the_gaussian_kl():
    cfg = um.UVACConfig(in_shape=(16, 16), n_clusters=1, d_z=3)
    m = um.UVAC(cfg)
    with torch.no_grad():
        m.mu_c.zero_(); m.logvar_c.zero_(); m.pi_logits.zero_()
    mu, logvar = torch.tensor([[0.5, -1.0, 0.0]]), torch.tensor([[0.0, -0.5, 0.3]])
    x = torch.rand(1, 1, 16, 16)
    out = {"mu": mu, "logvar": logvar, "z": mu, "x_hat": torch.full_like(x, 0.5)}
    t = um.uvac_terms(m, out, x)
    assert t["kl"].item() == pytest.approx(um.kl_normal(mu, logvar).item(), rel=1e-5)
    assert t["rec"].item() == pytest.approx(256 * math.log(2), rel=1e-5)


def _two_clusters(n=48, shape=(16, 16), seed=0):
    "Clips of two noisy prototypes in [0, 1], (n, 1, *shape) float32."
    rng = np.random.default_rng(seed)
    proto = rng.uniform(0, 1, (2, 1, *shape)).astype(np.float32)
    return np.clip(proto[rng.integers(0, 2, n)] + 0.05 * rng.standard_normal((n, 1, *shape)), 0, 1).astype(np.float32)


def test_training_runs_on_fit_with_the_schedules_of_the_paper():
    X = _two_clusters()
    cfg = um.UVACConfig(in_shape=(16, 16), n_clusters=2, d_z=2)
    tc = ptrain.TrainConfig(epochs=4, batch_size=16, min_batch=2, lr=3e-3, lr_end=1e-3, schedule="exponential", grad_clip=10.0, threads=1)
    _, h = ut.train_cat_uvac(X, cfg, tc, lam=1.0, desc=None)
    assert h.loss.iloc[-1] < h.loss.iloc[0]
    assert list(h.tau.round(6)) == [round(ptrain.anneal(e, 4, 1.0, 0.5), 6) for e in range(4)]
    assert list(h.lr.round(9)) == [round(ptrain.anneal(e, 4, 3e-3, 1e-3), 9) for e in range(4)]
    val = (X[:10], np.repeat([0, 1], 5))
    model, h2 = ut.train_uvac(X, cfg, replace(tc, epochs=3), lam=1.0, pretrain_epochs=1, val=val, desc=None)
    assert list(h2.phase) == ["pretrain", "bound", "bound"] and np.isfinite(h2.loss).all()
    assert {"val_acc", "val_nmi", "val_clusters_used"} <= set(h2.columns)
    enc = um.encode_uvac(model, X)
    assert enc["probs"].shape == (48, 2) and enc["z"].shape == (48, 2)


# ---------------------------------------------------------------- the common checks, for every model of the paper
def _make(kind, seed=0, shape=(16, 16)):
    torch.manual_seed(seed)
    cfg = um.UVACConfig(in_shape=shape, n_clusters=3, d_z=2)
    return um.CatUVAC(cfg) if kind == "cat" else um.UVAC(cfg)

def _step(kind):
    return (partial(um.cat_uvac_step, lam=1.0, n_epochs=1) if kind == "cat" else partial(um.uvac_step, lam=1.0, pretrain_epochs=0))

def _encode(kind):
    return um.encode_cat_uvac if kind == "cat" else um.encode_uvac

MODELS = ["cat", "uvac"]


@pytest.mark.parametrize("kind", MODELS)
def test_model_output_shapes(kind):
    m = _make(kind).eval()
    x = torch.rand(5, 1, 16, 16)
    with torch.no_grad(): out = m(x, 1.0) if kind == "cat" else m(x)
    assert out["x_hat"].shape == x.shape and out["z"].shape == (5, 2) and out["mu"].shape == (5, 2)
    enc = _encode(kind)(m, x.numpy())
    assert enc["probs"].shape == (5, 3) and enc["clusters"].shape == (5,) and enc["z"].shape == (5, 2)
    assert np.allclose(enc["probs"].sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("kind", MODELS)
def test_one_epoch_of_fit_lowers_the_loss_on_a_tiny_batch(kind):
    X = torch.as_tensor(_two_clusters(16))
    m, step = _make(kind), _step(kind)
    def loss():                                                   # the same noise draws before and after
        torch.manual_seed(7)
        with torch.no_grad(): return float(step(m.train(), {"x": X}, 0)["loss"])
    before = loss()
    ptrain.fit(m, step, {"x": X}, ptrain.TrainConfig(epochs=1, batch_size=4, min_batch=2, lr=1e-2, threads=1))
    assert loss() < before


@pytest.mark.parametrize("kind", MODELS)
def test_same_seed_same_weights(kind):
    X = _two_clusters(16)
    cfg = ptrain.TrainConfig(epochs=1, batch_size=8, min_batch=2, lr=1e-3, threads=1)
    a, b = _make(kind, seed=3), _make(kind, seed=3)
    torch.manual_seed(1); ptrain.fit(a, _step(kind), {"x": X}, cfg)
    torch.manual_seed(1); ptrain.fit(b, _step(kind), {"x": X}, cfg)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    c = _make(kind, seed=4)
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))


@pytest.mark.parametrize("kind", MODELS)
def test_batched_inference_equals_unbatched(kind):
    X = _two_clusters(10)
    m = _make(kind).eval()
    whole, parts = _encode(kind)(m, X, batch_size=10), _encode(kind)(m, X, batch_size=3)
    for k in whole: np.testing.assert_allclose(whole[k], parts[k], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- schedules
def test_temperature_schedule():
    taus = [ptrain.anneal(e, 500, 1.0, 0.5) for e in range(500)]
    assert taus[0] == pytest.approx(1.0) and taus[-1] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(taus, taus[1:]))                      # monotone
    assert ptrain.anneal(1, 3, 1.0, 0.5) == pytest.approx(math.sqrt(0.5))      # exponential: geometric midpoint
    assert ptrain.anneal(0, 1, 1.0, 0.5) == pytest.approx(0.5)
    assert ptrain.anneal(10, 5, 1e-3, 1e-5) == pytest.approx(1e-5)             # clamped after the last epoch


# ---------------------------------------------------------------- Hungarian accuracy
def test_hungarian_accuracy_on_a_permuted_labelling():
    y = np.repeat(np.arange(4), 5)
    perm = np.array([2, 0, 3, 1])
    X = np.random.default_rng(0).standard_normal((20, 3))
    s = ut.cluster_scores(X, y, perm[y])
    assert s["Accuracy (%)"] == pytest.approx(100.0) and s["NMI"] == pytest.approx(1.0)
    wrong = perm[y].copy(); wrong[:2] = perm[1]                             # two of class 0 put in class 1's cluster
    assert ut.cluster_scores(X, y, wrong)["Accuracy (%)"] == pytest.approx(90.0)


# ---------------------------------------------------------------- preprocessing and splits
def test_center_on_speech_pads_and_crops_around_the_energy():
    y = np.zeros(3000, np.float32); y[2000:2200] = 1.0
    w = ud.center_on_speech(y, 1000)
    assert w.shape == (1000,) and w.sum() == pytest.approx(200) and abs(np.flatnonzero(w).mean() - 500) < 2
    short = ud.center_on_speech(np.ones(100, np.float32), 1000)
    assert short.sum() == pytest.approx(100) and abs(np.flatnonzero(short).mean() - 500) < 2


def test_scene_logmel_masks_zero_padding():
    cfg = ud.SceneFeatures(seconds=4.0)
    assert cfg.n_frames == 144                                              # 134 frames padded to a multiple of 16
    assert ud.SceneFeatures(seconds=10.0).n_frames == 336                 # the paper's 336 frames
    rng = np.random.default_rng(0)
    a = np.zeros((2, 64000), np.float32); a[0, :32000] = 0.1 * rng.standard_normal(32000); a[1] = 0.1 * rng.standard_normal(64000)
    L, mask = ud.scene_logmel(a, cfg)
    assert L.shape == (2, 128, 144) and mask.shape == (2, 144)
    assert mask[0, :60].all() and not mask[0, 70:].any()                    # 2 s of sound then zeros
    assert mask[1, :134].all() and not mask[1, 134:].any()


def test_normaliser_maps_training_data_to_unit_range():
    rng = np.random.default_rng(0)
    X = rng.normal(-40, 10, (20, 8, 16)).astype(np.float32); mask = np.ones((20, 16), np.float32); mask[:, 12:] = 0
    norm = ud.Normaliser.fit(X, mask)
    Z = norm(X, mask)
    assert Z.min() == 0 and Z[:, :, :12].max() == pytest.approx(1.0, abs=1e-6) and (Z[:, :, 12:] == 0).all()


# ---------------------------------------------------------------- the simulators
@pytest.fixture
def tiny_root(tmp_path):
    "A data root with a tiny FSDD (tones standing in for voices) for the simulators' voice bank."
    for d in range(3):
        for spk in ("ann", "bob"):
            write_tone(tmp_path / "fsdd" / "recordings" / f"{d}_{spk}_0.wav", sr=8000, seconds=0.3, freq=200 + 50 * d)
    return tmp_path


@pytest.mark.parametrize("kind,classes,seconds", [("tau", scenes.TAU_CLASSES, 10.0), ("us8k", scenes.US8K_CLASSES, 4.0)])
def test_simulators_are_balanced_and_deterministic(tiny_root, kind, classes, seconds):
    two = [classes[0], classes[-1]]
    a = scenes.simulate_scenes(kind, 2, seed=3, classes=two, root=tiny_root)
    assert a.sr == 16000 and len(a) == 4
    assert a.meta.label.value_counts().to_dict() == {two[0]: 2, two[1]: 2}
    assert all(len(x) <= int(seconds * 16000) for x in a.audio)
    if kind == "tau": assert all(len(x) == 160000 for x in a.audio)
    assert all(np.isfinite(x).all() and 0 < np.abs(x).max() <= 1 for x in a.audio)
    b = scenes.simulate_scenes(kind, 2, seed=3, classes=two, root=tiny_root)
    assert all(np.array_equal(x, y) for x, y in zip(a.audio, b.audio))         # same seed: the same clips
    c = scenes.simulate_scenes(kind, 1, seed=3, classes=[two[1]], start=1, root=tiny_root)
    assert np.array_equal(c.audio[0], a.audio[3])                             # a clip does not depend on the others drawn
    d = scenes.simulate_scenes(kind, 2, seed=4, classes=two, root=tiny_root)
    assert not np.array_equal(d.audio[0], a.audio[0])                         # another seed: other clips
    assert a.source["voices"] == "fsdd" and "name" not in a.source


def test_simulators_are_registered_sources(tiny_root):
    from paperlib import data
    assert data.SOURCES["sim-tau"].task == "urban_scenes" and data.SOURCES["sim-us8k"].task == "urban_sounds"
    assert data.resolve_source("urban_scenes", "auto", tiny_root).name == "sim-tau"      # no tau2019 folder here
    clips = data.load_dataset("urban_sounds", "sim-us8k", root=tiny_root, n_per_class=1, classes=["siren"])
    assert clips.source["name"] == "sim-us8k" and list(clips.labels) == ["siren"]
    assert len(scenes.recipe_table()) == 20 and set(synth.LAYERS) >= {n for _, _, ls in scenes.TAU_RECIPES.values() for n, _, _ in ls}


# ---------------------------------------------------------------- small or changed data (issue 8)
def _fsdd(root, speakers, takes):
    "A tiny FSDD in FSDD's layout: a tone per (digit, speaker, take), 0.3 s at 8 kHz."
    for s, spk in enumerate(speakers):
        for d in range(10):
            for k in range(takes):
                write_tone(root / "fsdd" / "recordings" / f"{d}_{spk}_{k}.wav", sr=8000, seconds=0.3, freq=200 + 40 * d + 7 * s + k)
    return root


def test_two_speakers_are_too_few_for_the_smoke_split(tmp_path):
    root = _fsdd(tmp_path, ["ann", "bob"], 5)                                    # 100 files, 2 per speaker and digit kept
    with pytest.raises(DataError, match=r"at least 3 speakers \(60 files"):
        ud.prepare("digits", ud.UVAC_SETTINGS["smoke"], "fsdd", root=root)
    ok = ud.prepare("digits", replace(ud.UVAC_SETTINGS["smoke"], digits_per_speaker_digit=3), "fsdd", root=root)
    assert len(ok["y"]) == 60                                                    # the fix the message gives works
    with pytest.raises(DataError, match="at least 6 examples of every class"):          # the split refuses empty shares
        ptrain.split(np.repeat(np.arange(10), 4), seed=0)
    with pytest.raises(DataError, match="all of the data"):
        ptrain.split(ok["y"], groups=ok["speaker"], test_groups=["ann", "bob"])
    which = ptrain.split(ok["y"], seed=0)
    A = ud.model_arrays(ok, which, (16, 16))                                      # the split's labels, as indices
    assert A["X"].shape == (60, 1, 16, 16) and sum(len(v) for v in A["split"].values()) == 60
    assert np.array_equal(A["split"]["test"], np.flatnonzero(which == "test"))


def test_prepared_digits_follow_the_files_not_the_folder(tmp_path):
    root = _fsdd(tmp_path, ["ann", "bob", "cid", "dan"], 2)
    a = ud.prepare_digits("fsdd", 2, root=root)
    assert not a["from_cache"] and "/" not in a["cache"] and a["source"]["fingerprint"]
    assert ud.prepare_digits("fsdd", 2, root=root)["from_cache"]
    for f in (root / "fsdd" / "recordings").glob("*_dan_*.wav"): f.unlink()       # a speaker removed from the folder
    b = ud.prepare_digits("fsdd", 2, root=root)
    assert not b["from_cache"] and set(b["speaker"]) == {"ann", "bob", "cid"} and len(b["y"]) == 60
    assert b["source"]["fingerprint"] != a["source"]["fingerprint"]
    sim_before = data.SOURCES["sim-tau"].fingerprint(root, mtimes=True)           # the simulators' voices changed too
    (root / "fsdd" / "recordings" / "0_ann_0.wav").unlink()
    assert data.SOURCES["sim-tau"].fingerprint(root, mtimes=True) != sim_before


def test_rows_name_the_source_that_was_used():
    assert ud.dataset_label("digits", {"name": "fsdd"}) == "FSDD"
    assert ud.dataset_label("digits", "numpy-digits") == "numpy-digits (NumPy stand-in)"
    assert ud.dataset_label("tau", {"name": "sim-tau"}) == "sim-tau (TAU2019-like)"
    assert ud.dataset_label("us8k", "urbansound8k") == "UrbanSound8K"
    assert data.SOURCES["sim-tau"].loader == "paperlib.uvac.scenes:load_sim_tau" and data.SOURCES["sim-us8k"].loader == "paperlib.uvac.scenes:load_sim_us8k"
    assert not hasattr(ud, "source_for")


# --- Table I's scoring: intervals, chance rows and fast scores (33_uvac_table1) ------------------------------------

def _noisy_clustering(n=300, k=10, keep=0.5, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, k, n)
    return y, np.where(r.random(n) < keep, (y + 3) % k, r.integers(0, k, n))      # half the clips in a relabelled cluster


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_scores_equal_scikit_learn(seed):
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    y, c = _noisy_clustering(seed=seed)
    c[:7] = 11                                                            # a cluster id no class has
    assert ut.fast_nmi(y, c) == pytest.approx(normalized_mutual_info_score(y, c), abs=1e-12)
    assert ut.fast_ari(y, c) == pytest.approx(adjusted_rand_score(y, c), abs=1e-12)
    one = np.zeros_like(y)                                                # scikit-learn's conventions for one cluster
    assert ut.fast_nmi(y, one) == normalized_mutual_info_score(y, one) == 0.0
    assert ut.fast_ari(one, one) == adjusted_rand_score(one, one) == 1.0


def test_accuracy_interval_fixes_the_map_and_contains_the_estimate():
    y, c = _noisy_clustering()
    e = ut.label_score_interval(y, c, "Accuracy (%)", n_boot=300)
    assert e.estimate == pytest.approx(100 * ut.cluster_accuracy(y, c))
    assert e.lo < e.estimate < e.hi and e.hi - e.lo < 15
    assert ut.hungarian_correct(y, c).mean() == pytest.approx(e.estimate / 100)
    d = ut.label_score_difference(y, c, y, "Accuracy (%)", n_boot=300)  # against the labels themselves: clearly below
    assert d.hi < 0 and d.estimate == pytest.approx(e.estimate - 100)


def test_chance_row_matches_a_random_clustering():
    y, _ = _noisy_clustering(n=30)
    ch = ut.chance_scores(y, n_perm=199, seed=0)
    assert set(ch) == set(ut.LABEL_SCORES)
    mean, q95 = ch["Accuracy (%)"]
    assert 25 < mean < 50 and q95 > mean                                  # 30 clips, 10 classes: ~40 % by chance
    assert abs(ch["ARI"][0]) < 0.05 and abs(ch["AMI"][0]) < 0.05         # chance-adjusted scores sit at 0
    assert ut.chance_scores(y, n_perm=199, seed=0) == ch                  # seeded


def test_space_score_interval_orders_a_clear_structure():
    r = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    X = r.normal(size=(120, 5)) + 6 * np.eye(5)[y]                        # three well separated blobs
    good = ut.space_score_interval(X, y, "Silhouette", n_sub=50)
    diff = ut.space_score_interval(X, y, "Silhouette", other=r.integers(0, 3, 120), n_sub=50)
    assert good.lo > 0.4 and diff.lo > 0
    assert ut.space_score_interval(X, y, "DBI", n_sub=20).hi < 1
    with pytest.raises(ConfigError):
        ut.space_score_interval(X, y, "Accuracy")


def test_literal_magnitude_input_and_profile_networks():
    import pandas as pd
    clips = data.Clips([np.sin(np.linspace(0, 400, 8000)).astype(np.float32)], sr=8000, meta=pd.DataFrame({"label": [0]}))
    S = ud.digit_spectrograms(clips, ud.DigitFeatures(reference="magnitude"))
    L = ud.digit_spectrograms(clips, ud.DigitFeatures())
    assert S.shape == L.shape and S.min() >= 0 and L.max() == pytest.approx(0.0)   # linear magnitude vs dB re peak
    for ref, top in [("peak", 60.0), ("absolute", 80.0), ("magnitude", 60.0)]:      # one STFT, any dB scale: the same arrays
        cfg = ud.DigitFeatures(reference=ref, top_db=top)
        assert np.array_equal(ud.digit_spectrograms(clips, cfg, magnitude=S), ud.digit_spectrograms(clips, cfg))
    with pytest.raises(ConfigError, match="magnitude has shape"):
        ud.digit_spectrograms(clips, ud.DigitFeatures(), magnitude=S[:, :10])
    q = ud.UVAC_SETTINGS["quick"]
    cfg = q.net_config("digits", 10)
    assert (cfg.kernel, cfg.padding, cfg.in_shape) == (4, 1, q.shapes["digits"])
    assert ud.UVAC_SETTINGS["full"].net_config("digits", 5).kernel == 8          # the paper's kernels at full size
    assert q.scene_clusters == (10,) and "magnitude" in q.digit_inputs


def test_ablation_variant_is_cached_by_content_and_pauses_and_resumes_in_chunks(monkeypatch):
    "34's variants train through the model cache: same inputs load, other K-means clusters retrain, chunks resume exactly."
    from paperlib.train import TrainConfig, TrainingPaused
    from paperlib.uvac.ablation import Variant, train_variant
    from paperlib.uvac.model import UVACConfig
    rng = np.random.default_rng(0)
    X = rng.random((24, 1, 16, 16)).astype(np.float32)
    y0 = np.arange(24) % 4
    cfg, tc = UVACConfig(in_shape=(16, 16), n_clusters=4, kernel=4, padding=1), TrainConfig(epochs=3, batch_size=8, seed=0)
    v = Variant("warm start", warm_start=1)
    m1, h1 = train_variant(X, y0, cfg, tc, v, 0.25)
    m2, h2 = train_variant(X, y0, cfg, tc, v, 0.25)          # from the cache: same weights, same history
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert h1["loss"].tolist() == h2["loss"].tolist() and len(h1) == 3
    m3, _ = train_variant(X, (y0 + 1) % 4, cfg, tc, v, 0.25)  # other warm-start clusters: another training
    assert not torch.equal(m3.p_x_yz.deconv[0].weight, m1.p_x_yz.deconv[0].weight)
    monkeypatch.setenv("PAPERLIB_CHUNK_S", "0")               # a new setting (lam), paused after every epoch
    for _ in range(2):
        with pytest.raises(TrainingPaused): train_variant(X, y0, cfg, tc, v, 0.5)
    m4, h4 = train_variant(X, y0, cfg, tc, v, 0.5)
    monkeypatch.delenv("PAPERLIB_CHUNK_S")
    m5, h5 = train_variant(X, y0, cfg, tc, v, 0.5, cache=False)                # the same training in one go
    assert h4["loss"].tolist() == h5["loss"].tolist()
    assert all(torch.equal(a, b) for a, b in zip(m4.state_dict().values(), m5.state_dict().values()))


def test_channels_last_layout_computes_the_same_function():
    "Cat. UVAC's convolutions run channels-last: a memory layout only (the same outputs as the plain layout, up to rounding)."
    import copy
    from paperlib.uvac.model import CatUVAC, UVACConfig
    torch.manual_seed(0)
    m = CatUVAC(UVACConfig(in_shape=(16, 16), n_clusters=3, kernel=4, padding=1)).eval()
    plain = copy.deepcopy(m).to(memory_format=torch.contiguous_format)
    for mod in (plain.q_y_x, plain.q_z_xy): mod.conv.forward = (lambda seq: (lambda x: torch.nn.Sequential.forward(seq, x.contiguous())))(mod.conv)
    x = torch.rand(5, 1, 16, 16)
    assert m.q_y_x.conv[3].weight.is_contiguous(memory_format=torch.channels_last)          # 16 -> 32 channels
    assert not plain.q_y_x.conv[3].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(m.logits(x), plain.logits(x), atol=1e-5)
