"""Tests of paperlib.timbre (paper 001): the GM family mapping, the note plan and renderer (timbre.data), the 78 x 16
embedding and the decoder round trip (timbre.model), the classifiers (timbre.classify) and the latent transformations
(timbre.transform), and the common model tests. Tiny data, built in the tests."""
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from paperlib import data, synth
from paperlib.core import ConfigError
from paperlib.timbre import classify, model, transform
from paperlib.timbre import data as tdata
from paperlib.train import TrainConfig, fit, threads

@pytest.fixture(autouse=True)
def _one_torch_thread():
    "Tiny models: one torch thread is faster than several (no thread start-up, no spinning on a busy machine)."
    with threads(1):
        yield


needs_fluidsynth = pytest.mark.skipif(not synth.renderer_present(), reason="FluidSynth or the GM SoundFonts are not installed")
SMOKE = tdata.TIMBRE_SETTINGS["smoke"]


def _tone(f0=220.0, n=tdata.N_SAMPLES, sr=tdata.SR, harmonics=6, decay=1.5):
    t = np.arange(n) / sr
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, harmonics + 1)) * np.exp(-t / decay)
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


# ---------------------------------------------------------------- the GM -> NSynth family table
def test_gm_family_mapping_covers_every_family_and_every_program():
    tab = tdata.gm_family_table()
    assert tab.program.is_unique
    assert set(tab.instrument_family_str) == set(tdata.FAMILIES) and len(tdata.FAMILIES) == 11
    assert tab.groupby("instrument_family_str").size().min() >= 3            # every family has several programs
    assert set(tab.program) | set(tdata.GM_EXCLUDED) == set(range(128))      # each program mapped or excluded, once
    assert not set(tab.program) & set(tdata.GM_EXCLUDED)
    assert ((tab.pitch_lo >= 0) & (tab.pitch_lo < tab.pitch_hi) & (tab.pitch_hi <= 127)).all()
    assert set(tab.instrument_source_str) <= set(tdata.SOURCES_NSYNTH)
    fam = tab.set_index("program").instrument_family_str
    expected = {0: "keyboard", 9: "mallet", 16: "organ", 24: "guitar", 32: "bass", 40: "string", 52: "vocal", 53: "vocal",
                54: "vocal", 56: "brass", 64: "reed", 73: "flute", 80: "synth_lead", 85: "synth_lead", 87: "synth_lead"}
    assert all(fam[p] == f for p, f in expected.items())


# ---------------------------------------------------------------- the note plan: balance, ranges, determinism, pairing
def test_plan_is_balanced_deterministic_and_within_ranges():
    a, b = tdata.plan_notes(30, seed=3), tdata.plan_notes(30, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(tdata.plan_notes(30, seed=4))
    assert (a.groupby("instrument_family_str").size() == 30).all() and len(a) == 330
    rng = tdata.gm_family_table().set_index("program")
    assert ((a.pitch >= rng.pitch_lo[a.program].to_numpy()) & (a.pitch <= rng.pitch_hi[a.program].to_numpy())).all()
    assert set(a.velocity) <= set(tdata.VELOCITIES) and len(set(a.velocity)) == 5
    assert not a.duplicated(["program", "pitch", "velocity"]).any()
    # programs are balanced within a family (where their ranges allow): reed's 8 programs all play the mid range
    counts = a[a.instrument_family_str == "reed"].program.value_counts()
    assert len(counts) == 8 and counts.max() - counts.min() <= 2
    # one shared grid order: families with overlapping ranges share many (pitch, velocity) cells -> pairs
    cells = {f: set(zip(g.pitch, g.velocity)) for f, g in a.groupby("instrument_family_str")}
    assert len(cells["reed"] & cells["vocal"]) >= 10


def test_plan_rejects_more_notes_than_the_grid_holds():
    with pytest.raises(ConfigError, match="distinct notes"):
        tdata.plan_notes(2000, families=["vocal"])
    with pytest.raises(ConfigError):
        tdata.plan_notes(5, families=["kazoo"])


def test_study_notes_are_split_stratified_and_deterministically():
    S = tdata.TimbreSettings(per_family=2, test_fraction=0.5, ae_hidden=8, ae_epochs=1)
    notes, unseen = tdata.load_study_notes(S, "numpy-nsynth", seed=1)
    again, _ = tdata.load_study_notes(S, "numpy-nsynth", seed=1)
    assert unseen == {} and (notes.meta.split == again.meta.split).all() and set(notes.meta.split) == {"train", "test"}
    assert (notes.meta[notes.mask("test")].groupby("instrument_family_str").size() == 1).all()
    assert notes.logmag.shape == (22, 513, 78) and notes.logmel.shape == (22, 16, 78)


def test_settings_are_one_frozen_instance_per_profile():
    import dataclasses
    assert set(tdata.TIMBRE_SETTINGS) == {"smoke", "quick", "full"}
    q = tdata.TIMBRE_SETTINGS["quick"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.per_family = 1
    ae, tr = model.autoencoder_configs(q, seed=3)
    assert ae.hidden == 128 and (tr.epochs, tr.batch_size, tr.lr, tr.schedule, tr.seed) == (q.ae_epochs, 32, 2e-3, "cosine", 3)
    mlp, mtr = classify.mlp_configs(q)
    assert mlp.hidden == (250, 250, 250) and (mtr.epochs, mtr.batch_size, mtr.lr) == (200, 200, 1e-3)


# ---------------------------------------------------------------- rendering and NSynth metadata
def test_render_note_set_numpy_fallback_is_deterministic_and_cached(tmp_path):
    plan = tdata.plan_notes(2, seed=0, families=["reed", "vocal"])
    c1 = tdata.render_note_set(plan, "numpy", n_samples=8000, progress=False)
    assert len(list((tmp_path / "cache" / "timbre-notes").glob("*.npz"))) == 1
    c2 = tdata.render_note_set(plan, "numpy", n_samples=8000, progress=False)       # from the cache
    assert np.array_equal(np.stack(c1.audio), np.stack(c2.audio)) and c1.audio[0].shape == (8000,)
    m = c1.meta
    for col in ["note_str", "instrument_str", "instrument_family", "instrument_family_str", "instrument_source_str", "pitch", "velocity"]:
        assert col in m
    r = m.iloc[0]
    assert r.note_str == f"{r.instrument_str}-{r.pitch:03d}-{r.velocity:03d}"
    assert tdata.FAMILIES[r.instrument_family] == r.instrument_family_str == r.label
    with pytest.raises(ConfigError, match="longer than"):
        tdata.render_note_set(plan, "numpy", n_samples=70000)


@needs_fluidsynth
def test_soundfont_notes_are_nsynth_like():
    plan = tdata.plan_notes(1, seed=0, families=["guitar", "flute"])
    c = tdata.render_note_set(plan, "FluidR3_GM", progress=False)
    assert c.sr == 16000 and all(a.shape == (40000,) and np.abs(a).max() > 1e-3 for a in c.audio)
    assert c.source["name"] == "gm-soundfont:FluidR3_GM" and set(c.meta.soundfont) == {"FluidR3_GM"}


def test_sources_registered_and_soundfont_lists_checked():
    assert data.SOURCES["gm-nsynth"].kind == "rendered" and data.SOURCES["gm-nsynth"].task == "instrument_notes"
    assert data.SOURCES["numpy-nsynth"].kind == "fallback"
    with pytest.raises(ConfigError, match="both"):
        tdata.load_note_sets("auto", ["FluidR3_GM"], ["FluidR3_GM"], per_family=1)
    with pytest.raises(ConfigError, match="lists"):
        tdata.load_note_sets("auto", "FluidR3_GM", [], per_family=1)


def test_nsynth_source_is_read_with_its_test_split_as_unseen(tmp_path):
    root = tmp_path / "data"
    for split, fams in [("train", ["reed", "reed", "vocal", "vocal"]), ("test", ["reed", "vocal"])]:
        d = root / "nsynth" / f"nsynth-{split}"
        (d / "audio").mkdir(parents=True)
        ex = {}
        for i, f in enumerate(fams):
            key = f"{f}_acoustic_00{i}-060-100"
            sf.write(d / "audio" / f"{key}.wav", _tone(200 + 20 * i, n=64000), 16000)
            ex[key] = {"note_str": key, "instrument_family_str": f, "pitch": 60, "velocity": 100, "sample_rate": 16000}
        (d / "examples.json").write_text(json.dumps(ex))
    train, unseen = tdata.load_note_sets("nsynth", root=root, per_family=10)
    assert len(train) == 4 and list(unseen) == ["nsynth-test"] and len(unseen["nsynth-test"]) == 2
    assert train.audio[0].shape == (40000,) and train.source["name"] == "nsynth"


# ---------------------------------------------------------------- the 78 x 16 embedding and the decoder
def test_features_and_embedding_have_nsynth_shapes(tmp_path):
    import librosa
    y = _tone()
    S = tdata.stft_frames78(y)
    assert tdata.n_frames(40000) == 78 and S.shape == (513, 78)
    ref = np.abs(librosa.stft(y, n_fft=1024, hop_length=512, center=True, pad_mode="constant"))
    assert ref.shape[1] == 79 and np.allclose(S, ref[:, :78], atol=1e-3)       # librosa's frames minus the 79th
    ns = tdata.prepare_arrays(tdata.load_numpy_nsynth(per_family=1, families=["guitar", "reed"]), "numpy")
    assert ns.logmag.shape == (2, 513, 78) and ns.logmel.shape == (2, 16, 78)   # the baseline: 16 x 78 = 1248
    again = tdata.prepare_arrays(tdata.load_numpy_nsynth(per_family=1, families=["guitar", "reed"]), "numpy")   # cached
    assert np.array_equal(ns.logmag, again.logmag) and np.array_equal(ns.logmel, again.logmel)
    assert len(list((tmp_path / "cache" / "timbre-arrays").glob("*.npz"))) == 1
    ae = model.build_autoencoder(model.AutoencoderConfig(hidden=8))
    z = model.encode_audio(ae, np.stack([y, 0.5 * y]))
    assert z.shape == (2, 78, 16) and z.dtype == np.float32 and z.reshape(2, -1).shape == (2, 1248)


def test_decoder_round_trip_and_training_lowers_the_loss(tmp_path):
    rng = np.random.default_rng(0)
    notes = np.stack([_tone(f0) for f0 in rng.uniform(110, 440, 4)])
    L = tdata.log_magnitude_db(tdata.stft_frames78(notes))
    cfg, tr = model.AutoencoderConfig(hidden=8), TrainConfig(epochs=5, batch_size=2, lr=3e-3, schedule="cosine")
    ae, hist = model.train_autoencoder(L, cfg, tr, val=L, progress=False)
    untrained = model.reconstruction_mse(model.build_autoencoder(cfg), L)
    assert hist["loss"][-1] < hist["loss"][0] and hist["val"][-1] < untrained and len(hist["epoch"]) == 5
    L_hat = model.decode_logmag(ae, model.embed(ae, L))
    assert L_hat.shape == L.shape and np.isfinite(L_hat).all()
    assert np.allclose(model.reencode(ae, model.embed(ae, L)), model.embed(ae, L_hat).reshape(len(L), -1), atol=1e-4)
    assert model.reencode(ae, np.zeros((0, 78 * 16), np.float32)).shape == (0, 78 * 16)
    # Griffin-Lim on the 78-frame grid: magnitude -> audio -> magnitude comes back close
    audio = model.to_audio(L[:2], n_iter=32)
    assert audio.shape == (2, 40000) and np.isfinite(audio).all()
    lsd = model.log_spectral_distance(tdata.log_magnitude_db(tdata.stft_frames78(audio)), L[:2])
    assert (lsd < 6.0).all()
    # the cached model is the trained one, and a second call loads it
    m1, h1, c1 = model.get_autoencoder(L, cfg, tr, val=L, progress=False)
    m2, h2, c2 = model.get_autoencoder(L, cfg, tr, val=L, progress=False)
    assert (c1, c2) == (False, True) and h1["loss"] == h2["loss"] == hist["loss"]
    assert np.array_equal(model.embed(m1, L), model.embed(ae, L)) and np.array_equal(model.embed(m2, L), model.embed(ae, L))


# ---------------------------------------------------------------- common tests over every model of the paper
def _tiny(kind):
    "(fresh model, step, arrays, batched inference fn, expected output shape) for each model of paper 001."
    g = torch.Generator().manual_seed(0)
    if kind == "autoencoder":
        torch.manual_seed(0)
        m = model.build_autoencoder(model.AutoencoderConfig(hidden=8))
        L = (torch.rand(6, 513, 12, generator=g) * 60 - 80).numpy()     # the autoencoder is convolutional in time
        return m, model.step, {"logmag": L}, lambda mm, a: mm(a["logmag"]), (6, 513, 12)
    torch.manual_seed(0)
    m = classify.FamilyMLP(12, 3, (16, 16))
    x = torch.randn(30, 12, generator=g).numpy()
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    import functools
    return m, functools.partial(classify.mlp_step, alpha=1e-4), {"x": x, "y": y}, lambda mm, a: mm(a["x"]), (30, 3)


@pytest.mark.parametrize("kind", ["autoencoder", "mlp"])
def test_common_output_shapes_and_one_epoch_lowers_the_loss(kind):
    m, step, arrays, forward, shape = _tiny(kind)
    with torch.no_grad():
        t = {k: torch.as_tensor(v) for k, v in arrays.items()}
        assert tuple(forward(m, t).shape) == shape
        before = float(step(m, t, 0)["loss"])
    fit(m, step, arrays, TrainConfig(epochs=1, batch_size=len(next(iter(arrays.values()))), lr=1e-2))
    with torch.no_grad():
        assert float(step(m, t, 0)["loss"]) < before


@pytest.mark.parametrize("kind", ["autoencoder", "mlp"])
def test_common_same_seed_same_weights(kind):
    states = []
    for _ in range(2):
        m, step, arrays, _, _ = _tiny(kind)
        fit(m, step, arrays, TrainConfig(epochs=2, batch_size=4, seed=5))
        states.append(m.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_common_batched_inference_equals_unbatched():
    ae, _, arrays, _, _ = _tiny("autoencoder")
    ae, L = ae.eval(), arrays["logmag"]
    with torch.no_grad():
        z_all = ae.encode(torch.as_tensor(L)).numpy()
        L_all = ae.decode(torch.as_tensor(z_all)).numpy()
    assert np.allclose(model.embed(ae, L, batch_size=4), z_all, atol=1e-5)
    assert np.allclose(model.decode_logmag(ae, z_all, batch_size=4), L_all, atol=1e-4)
    assert np.allclose(model.reconstruction_mse(ae, L, batch_size=4), model.reconstruction_mse(ae, L, batch_size=256), rtol=1e-5)
    rng = np.random.default_rng(0)
    X, y = rng.normal(0, 1, (40, 12)).astype(np.float32), np.repeat([0, 1], 20)
    S = tdata.TimbreSettings(per_family=1, test_fraction=0.5, ae_hidden=8, ae_epochs=1, mlp_hidden=(16,), mlp_epochs=3)
    clf = classify.make_classifiers(S)["MLP"].fit(X, y)
    assert np.allclose(np.concatenate([clf.predict_proba(X[:7]), clf.predict_proba(X[7:])]), clf.predict_proba(X), atol=1e-6)


# ---------------------------------------------------------------- classifiers
def test_classifier_pipeline_on_a_tiny_set():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 300))
    X = np.concatenate([c + rng.normal(0, 1.5, (40, 300)) for c in centres]).astype(np.float32)
    y = np.repeat([0, 4, 9], 40)
    idx = rng.permutation(len(y)); tr, te = idx[:90], idx[90:]
    S = tdata.TimbreSettings(per_family=1, test_fraction=0.5, ae_hidden=8, ae_epochs=1, mlp_epochs=30)
    clfs = classify.make_classifiers(S, seed=0)
    for name, clf in clfs.items():
        clf.fit(X[tr], y[tr])
        pred = clf.predict(X[te])
        assert set(pred) <= {0, 4, 9} and np.mean(pred == y[te]) > 0.9, name
    mlp = clfs["MLP"]
    assert [l.out_features for l in mlp.model_.hidden] == [250, 250, 250] and mlp.model_.output.out_features == 3
    assert len(mlp.loss_curve_) <= 30 and mlp.loss_curve_ == mlp.history_["loss"]
    again = classify.MLPFamilyClassifier(*classify.mlp_configs(S, seed=0)).fit(X[tr], y[tr])
    assert np.array_equal(again.predict_proba(X[te]), mlp.predict_proba(X[te]))
    svc = clfs["SVM"]                           # the paper's reading: scikit-learn's SVC() on raw features (one-vs-one)
    assert svc.kernel == "rbf" and svc.C == 1.0 and svc.gamma == "scale"           # untuned defaults
    assert classify.PAPER_SVM in classify.SVM_READINGS and classify.make_svm("linear")[-1].kernel == "linear"
    assert len(svc.intercept_) == 3                                                 # 3 * 2 / 2 pairwise machines


def test_mlp_stops_early_on_a_training_loss_plateau():
    rng = np.random.default_rng(1)
    X, y = rng.normal(0, 1, (60, 8)).astype(np.float32), np.repeat([0, 1, 2], 20)
    cfg, tr = classify.MLPConfig(hidden=(32,), tol=10.0, patience=3), TrainConfig(epochs=50, batch_size=20)
    clf = classify.MLPFamilyClassifier(cfg, tr).fit(X, y)
    assert len(clf.loss_curve_) == 4                # no epoch beats the first by 10: stop after 1 + `patience` epochs


def test_claims_follow_the_schema():
    from paperlib.claims import CLAIMS_COLUMNS, VERDICTS, claims_table
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(11), 20)
    noisy = lambda q: np.where(rng.random(len(y)) < q, y, rng.integers(0, 11, len(y)))
    results, rows = {}, []
    notes_p, prog_p = "held-out notes (seen programs)", "held-out programs (unseen recordings)"
    for feat in ("latent", "log-mel"):
        for name in [*classify.SVM_READINGS, "MLP"]:
            for proto, pname in (("notes", notes_p), ("programs", prog_p)):
                for t in ("seen", "unseen"):
                    rs = [(y, noisy(0.95 if name == "MLP" else 0.6), 1.0) for _ in range(3 if name == "MLP" else 1)]
                    results[feat, name, proto, t] = rs
                    rows.append({"features": feat, "classifier": name, "protocol": pname, "test notes": t, **classify.summary_row(rs, n_boot=200)})
    acc = pd.DataFrame(rows)
    clusters = pd.DataFrame([{"features": "latent", "picture": "PCA 2-D", "knn5_accuracy": 0.5, "knn5_lo": 0.45, "knn5_hi": 0.55}])
    tab = claims_table(classify.classification_claims(acc, results, clusters, "seen", "unseen"))
    assert tuple(tab.columns) == CLAIMS_COLUMNS and set(tab.verdict) <= set(VERDICTS)
    v = tab.set_index("claim").verdict
    assert v["MLP on the latent reaches 84 %, " + notes_p] == "holds"
    assert v[f"untuned SVM reaches 72 %: {classify.PAPER_SVM}, {notes_p}"] == "does not hold"
    assert (tab.claim.str.contains("over five seeds") == (tab.verdict == "not testable here")).all()
    assert v["families form clear clusters in the 2-D PCA of the latent"] == "holds"
    assert (tab.interval != "none yet").all()


# ---------------------------------------------------------------- transformations
def test_mean_based_transformations_move_the_source_mean_to_the_target_mean():
    rng = np.random.default_rng(1)
    Za, Zb = rng.normal(1.0, 0.3, (30, 12)), rng.normal(-2.0, 0.3, (25, 12))
    y = np.r_[np.zeros(30, int), np.ones(25, int)]
    mu = transform.family_means(np.r_[Za, Zb], y, n_classes=2)
    assert np.allclose(transform.mean_shift(Za, mu[0], mu[1]).mean(0), mu[1])
    assert np.allclose(transform.diagonal_scaling(Za, mu[0], mu[1]).mean(0), mu[1])
    mu_src = mu[0].copy(); mu_src[0] = 0.0                                        # a near-zero source mean is left alone
    assert np.allclose(transform.diagonal_scaling(Za, mu_src, mu[1])[:, 0], Za[:, 0])
    scores = transform.transformation_success(type("C", (), {"predict": lambda self, X: (X.mean(1) < 0).astype(int)})(),
                                              transform.mean_shift(Za, mu[0], mu[1]), target=1)
    assert scores == 1.0


def test_ridge_map_recovers_a_linear_map_and_pairs_match_pitch_and_velocity():
    rng = np.random.default_rng(2)
    W = rng.normal(0, 1, (6, 6))
    Xs = rng.normal(0, 1, (60, 6)); Yt = Xs @ W + 3.0
    rm = transform.fit_ridge_map(Xs, Yt)
    Xn = rng.normal(0, 1, (5, 6))
    assert np.allclose(rm(Xn), Xn @ W + 3.0, atol=1e-2) and rm.n_pairs == 60 and rm.W.shape == (6, 6)
    with pytest.raises(ConfigError):
        transform.fit_ridge_map(Xs[:2], Yt[:2])
    meta = pd.DataFrame({"pitch": [60, 62, 60, 64, 62, 60], "velocity": [100, 100, 100, 50, 100, 25]})
    pairs = transform.paired_notes(meta, np.array([0, 1, 3]), np.array([2, 4, 5]))
    assert sorted(map(tuple, pairs)) == [(0, 2), (1, 4)]


def test_paper_pairs_come_from_the_paper_values():
    assert transform.paper_pairs() == [("reed", "vocal", "paper: a success"), ("guitar", "keyboard", "paper: a failure")]


# ---------------------------------------------------------------- caches keyed on content, loaders (issue 8)
def test_note_cache_is_keyed_on_the_renderer_content(tmp_path, monkeypatch):
    plan = tdata.plan_notes(1, seed=0, families=["reed"])
    c1 = tdata.render_note_set(plan, "numpy", n_samples=4000, progress=False)
    tdata.render_note_set(plan, "numpy", n_samples=4000, progress=False)                 # a hit: no new file
    files = lambda: sorted((tmp_path / "cache" / "timbre-notes").glob("*.npz"))
    assert len(files()) == 1
    assert c1.source["fingerprint"] == synth.soundfont_fingerprint("numpy") and "path" not in c1.source
    monkeypatch.setattr(tdata, "soundfont_fingerprint", lambda sf: "another-renderer-id")  # e.g. an edited SoundFont
    c2 = tdata.render_note_set(plan, "numpy", n_samples=4000, progress=False)
    assert len(files()) == 2 and c2.source["fingerprint"] == "another-renderer-id"


def test_a_cached_note_set_is_read_only_when_its_audio_is_used(tmp_path):
    plan = tdata.plan_notes(1, seed=0, families=["reed", "vocal"])
    first = tdata.render_note_set(plan, "numpy", n_samples=tdata.N_SAMPLES, progress=False)   # not cached: rendered now
    assert isinstance(first.audio, tdata.RenderedAudio) and first.audio._array is not None
    again = tdata.render_note_set(plan, "numpy", n_samples=tdata.N_SAMPLES, progress=False)   # cached: nothing read yet
    assert again.audio._array is None and len(again) == 2 and again.audio.key == first.audio.key
    ns = tdata.prepare_arrays(again, "numpy")                      # builds the arrays: reads the audio
    ns2 = tdata.prepare_arrays(tdata.render_note_set(plan, "numpy", progress=False), "numpy")   # arrays cached: no audio read
    assert callable(ns2._audio) and np.array_equal(ns2.logmag, ns.logmag) and np.array_equal(ns2.logmel, ns.logmel)
    assert np.array_equal(ns2.audio, np.stack(first.audio)) and ns2.audio.dtype == np.float32 and not callable(ns2._audio)
    # the same audio passed as a plain list is keyed on its digest, and gives the same arrays
    plain = tdata.prepare_arrays(data.Clips(list(np.stack(first.audio)), first.sr, first.meta, first.source), "numpy")
    assert np.array_equal(plain.logmag, ns.logmag) and np.array_equal(plain.logmel, ns.logmel)
    assert len(list((tmp_path / "cache" / "timbre-arrays").glob("*.npz"))) == 2
    # a subset is plain audio again (its key would not be the set's)
    assert not isinstance(again.subset([1]).audio, tdata.RenderedAudio)


def test_log_spectral_distance_is_the_formula_in_chunks():
    r = np.random.default_rng(0)
    L, L_hat = (r.standard_normal((2, 45, 513, 78)) * 30 - 60).astype(np.float32)
    d = np.maximum(L_hat, -80.0) - np.maximum(L, -80.0)
    want = np.sqrt(np.mean(d ** 2, axis=-2)).mean(axis=-1)
    for chunk in (1, 7, 32, 100):
        assert np.array_equal(model.log_spectral_distance(L_hat, L, chunk=chunk), want)
    d0 = np.maximum(L_hat[0], -80.0) - np.maximum(L, -80.0)                  # one note against all: broadcast
    assert np.array_equal(model.log_spectral_distance(L_hat[0], L), np.sqrt(np.mean(d0 ** 2, axis=-2)).mean(axis=-1))
    assert model.log_spectral_distance(L[0], L[0]) == 0.0 and model.log_spectral_distance(L[0], L[0]).shape == ()
    assert model.log_spectral_distance(L[0] + 6.0, L[0] + 0.0, floor=-1e9) == pytest.approx(6.0)


def test_numpy_source_loader_and_note_set_provenance():
    assert data.SOURCES["numpy-nsynth"].loader == "paperlib.timbre.data:load_numpy_nsynth"
    clips = tdata.load_numpy_nsynth(per_family=1, families=["guitar"], n_samples=4000)
    assert set(clips.meta.soundfont) == {"numpy-synth"}
    train, unseen = tdata.load_note_sets("numpy-nsynth", per_family=1, n_samples=4000)
    assert train.source["name"] == "numpy-nsynth" and train.source["fingerprint"] and unseen == {}
    assert tdata.note_set_name(train) == "numpy-nsynth" and not any("/" in str(v) for v in train.source.values())


# ---------------------------------------------------------------- recordings and protocols
def _tiny_sf2(path):
    "A minimal SoundFont 2 pdta: program 0 (bank 0) -> one instrument with samples 0 (keys 0-59) and 1 (keys 60-127, velocities 0-80) and 2 (60-127, 81-127)."
    import struct
    def chunk(cid, data): return cid.encode() + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    phdr = struct.pack("<20sHHHIII", b"piano", 0, 0, 0, 0, 0, 0) + struct.pack("<20sHHHIII", b"EOP", 0, 0, 1, 0, 0, 0)
    pbag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 1, 0)
    pgen = struct.pack("<HH", 41, 0) + struct.pack("<HH", 0, 0)
    inst = struct.pack("<20sH", b"inst", 0) + struct.pack("<20sH", b"EOI", 4)
    ibag = b"".join(struct.pack("<HH", g, 0) for g in (0, 1, 3, 6, 9))
    kr = lambda lo, hi: struct.pack("<HBB", 43, lo, hi)
    vr = lambda lo, hi: struct.pack("<HBB", 44, lo, hi)
    sid = lambda s: struct.pack("<HH", 53, s)
    igen = vr(0, 127) + kr(0, 59) + sid(0) + kr(60, 127) + vr(0, 80) + sid(1) + kr(60, 127) + vr(81, 127) + sid(2) + struct.pack("<HH", 0, 0)
    pdta = b"pdta" + b"".join(chunk(c, d) for c, d in [("phdr", phdr), ("pbag", pbag), ("pmod", b""), ("pgen", pgen), ("inst", inst),
                                                          ("ibag", ibag), ("imod", b""), ("igen", igen), ("shdr", b"")])
    body = b"sfbk" + chunk("LIST", b"INFO") + chunk("LIST", pdta)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_soundfont_zones_name_the_samples_a_note_plays(tmp_path):
    p = _tiny_sf2(tmp_path / "tiny.sf2")
    assert tdata.note_samples(p, 0, 40, 100) == frozenset({0}) and tdata.note_samples(p, 0, 59, 1) == frozenset({0})
    assert tdata.note_samples(p, 0, 60, 80) == frozenset({1}) and tdata.note_samples(p, 0, 100, 81) == frozenset({2})
    assert tdata.note_samples(p, 5, 60, 80) == frozenset()                       # no such program
    (tmp_path / "bad.sf2").write_bytes(b"RIFF\0\0\0\0WAVE")
    with pytest.raises(data.DataError):
        tdata.soundfont_zones(str(tmp_path / "bad.sf2"))
    rec = [frozenset({0}), frozenset({1}), frozenset({0}), frozenset({2})]
    train, test = np.array([1, 1, 0, 0], bool), np.array([0, 0, 1, 1], bool)
    assert tdata.shares_recording(rec, train, test).tolist() == [False, False, True, False]


def test_heldout_programs_protocol_and_seed_plan():
    meta = pd.DataFrame({"instrument_family_str": ["bass"] * 6 + ["vocal"] * 4 + ["flute"] * 2,
                         "instrument": [32, 32, 33, 33, 34, 35, 52, 52, 53, 54, 73, 73]})
    held = tdata.heldout_programs(meta, 0.25, seed=0)
    assert held == tdata.heldout_programs(meta, 0.25, seed=0)
    assert len(set(held) & {32, 33, 34, 35}) == 1 and len(set(held) & {52, 53, 54}) == 1 and 73 not in held  # one program: none held out
    with pytest.raises(ConfigError):
        tdata.heldout_programs(meta, 1.0)
    S = tdata.TIMBRE_SETTINGS
    assert tdata.study_seeds(S["quick"], 3) == [(3, 3), (3, 4), (3, 5), (3, 6), (3, 7)]
    assert tdata.study_seeds(S["full"], 0) == [(k, k) for k in range(5)]
    S2 = tdata.TimbreSettings(per_family=2, test_fraction=0.5, ae_hidden=8, ae_epochs=1)
    notes, _ = tdata.load_study_notes(S2, "numpy-nsynth", seed=1)
    progs = notes.mask("test", "programs")
    assert progs.any() and not (set(notes.meta.instrument[progs]) & set(notes.meta.instrument[notes.mask("train", "programs")]))
    ae = notes.mask("train", "autoencoder")
    assert (ae == (notes.mask("train") & notes.mask("train", "programs"))).all()


def test_seed_rows_average_correctness_over_seeds():
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    p1, p2 = y.copy(), y.copy(); p2[:4] = (y[:4] + 1) % 3
    row = classify.seed_row(y, [p1, p2], [1.0, 0.9], n_boot=200)
    assert row["accuracy"] == pytest.approx(0.75) and row["seeds"] == 2 and row["lo"] <= 0.75 <= row["hi"]
    assert row["train_accuracy"] == pytest.approx(0.95) and row["seed_sd"] == pytest.approx(np.std([1.0, 0.5], ddof=1))
    r2 = classify.summary_row([(y, p1, 1.0), (y[:6], p2[:6], 1.0)])              # different test notes: t interval over runs
    assert r2["interval"] == "t interval over seeds" and r2["seeds"] == 2
    p, r, f1 = classify.per_class_f1(y, p2, 3)
    assert f1.shape == (3,) and classify.macro_recall(y, p1) == 1.0
    assert classify.lowest_f1_gap(y, p2, int(np.argmin(f1))) <= 0


def test_transformation_claims_rest_on_intervals_and_report_the_distance_to_the_real_target():
    from paperlib.claims import CLAIMS_COLUMNS, VERDICTS, claims_table
    rng = np.random.default_rng(0)
    fams = ["reed", "vocal", "guitar", "keyboard"]
    rows = []
    for a in fams:
        for b in fams:
            if a == b: continue
            for m in transform.METHODS:
                s = {"ridge map": 0.9, "mean shift": 0.4}.get(m, 0.1) if (a, b) != ("guitar", "keyboard") else 0.0
                rows.append({"source": a, "target": b, "method": m, "n_notes": 25, "success_decoded_MLP": s,
                             "relative_error": {"none": 1.0, "ridge map": 1.1, "mean shift": 0.8}.get(m, 1.5) + rng.normal(0, 0.01),
                             "mean_distance": rng.random()})
    pairs = pd.DataFrame(rows)
    tab = claims_table(transform.transformation_claims(pairs, transform.paper_pairs()))
    assert tuple(tab.columns) == CLAIMS_COLUMNS and set(tab.verdict) <= set(VERDICTS) and (tab.interval != "none yet").all()
    v = tab.set_index("claim").verdict
    assert v["reed -> vocal succeeds (ridge map)"] == "holds" and v["guitar -> keyboard fails (ridge map)"] == "holds"
    assert v["the ridge map ends nearer the real target note than the mean shift"] == "does not hold"
    assert v["the mean shift ends nearer the real target note than the untransformed note"] == "holds"
    assert v["the ridge map ends nearer the real target note than the untransformed note"] == "does not hold"
    summ = transform.transformation_summary(pairs.assign(success_latent_MLP=0.5, success_decoded_SVM=0.5,
                                                         further_than_untransformed=pairs.relative_error > 1))
    assert int(summ.set_index("method").loc["ridge map", "pairs_further_than_untransformed"]) == 12


# ---------------------------------------------------------------- pretraining on the note grid (issue 12, item 5)
def test_grid_plan_plays_every_program_over_its_range_once():
    g = tdata.grid_plan()
    assert len(g) == 19535 and not g.duplicated(["program", "pitch", "velocity"]).any()
    t = tdata.gm_family_table().set_index("program")
    assert ((g.pitch >= t.pitch_lo[g.program].to_numpy()) & (g.pitch <= t.pitch_hi[g.program].to_numpy())).all()
    assert set(g.program) == set(t.index) and set(g.velocity) == set(tdata.VELOCITIES)
    plan = tdata.plan_notes(3, seed=0)                        # the same (pitch, velocity) cell numbers as the note plans
    both = plan.merge(g, on=["program", "pitch", "velocity"], suffixes=("", "_grid"))
    assert len(both) == len(plan) and (both.cell == both.cell_grid).all()
    small = tdata.grid_plan(["vocal"], velocities=(100,), pitches=tdata.PITCHES[::12])
    assert set(small.instrument_family_str) == {"vocal"} and set(small.velocity) == {100}
    with pytest.raises(ConfigError):
        tdata.grid_plan(["drums"])


def _held_keys(notes):
    held = notes.meta[~notes.mask("train", "autoencoder")]
    return set(zip(held.program, held.pitch, held.velocity)), set(notes.meta.instrument[notes.mask("test", "programs")])


def test_pretraining_plan_leaves_out_held_out_programs_notes_and_recordings(monkeypatch):
    S = tdata.TimbreSettings(per_family=4, test_fraction=0.5, ae_hidden=8, ae_epochs=1)
    notes, _ = tdata.load_study_notes(S, "numpy-nsynth", seed=2)
    keys, programs = _held_keys(notes)
    plan, counts = tdata.pretraining_plan(notes, "numpy", pitch_step=4)
    kept = set(zip(plan.program, plan.pitch, plan.velocity))
    assert not kept & keys and not set(plan.program) & programs and counts["kept"] == len(plan)
    assert counts["(c) play a held-out note's recording"] == "not measured (no samples)"     # the NumPy synthesiser
    assert counts["grid"] == counts["(a) held-out programs"] + counts["(b) held-out notes"] + len(plan)
    # a SoundFont whose samples each span an octave of one program at every velocity
    fake = lambda meta, sf: [frozenset({f"{p}:{k // 12}"}) for p, k in zip(meta.program, meta.pitch)]
    monkeypatch.setattr(tdata, "note_recordings", fake)
    plan2, counts2 = tdata.pretraining_plan(notes, "FluidR3_GM", pitch_step=4)
    held_rec = set().union(*fake(notes.meta[~notes.mask("train", "autoencoder")], None))
    assert counts2["(c) play a held-out note's recording"] > 0 and len(plan2) < len(plan)
    assert not set().union(*fake(plan2, None)) & held_rec
    assert counts2["grid"] == sum(v for k, v in counts2.items() if k.startswith("(")) + len(plan2)


def test_pretrained_autoencoder_learns_from_the_grid_and_embeds_every_note(tmp_path):
    S = tdata.TimbreSettings(per_family=2, test_fraction=0.5, ae_hidden=8, ae_epochs=1, ae_batch_size=16,
                             pretrain_epochs=2, pretrain_pitch_step=44, pretrain_velocities=(100,))
    study = model.prepare_study(S, "numpy-nsynth", seed=1, progress=False)
    pre, notes = study["pretrained"], study["train"]
    assert pre is not None and pre["soundfont"] == "numpy" and pre["n_notes"] == pre["counts"]["kept"] > len(notes) // 2
    assert notes.z_pretrained.shape == notes.z.shape == (len(notes), 78, 16)
    assert not np.allclose(notes.z_pretrained, notes.z)                      # another encoder
    h = pre["history"]
    assert len(h["loss"]) == 2 and h["loss"][1] < h["loss"][0] and np.isfinite(h["val"]).all()
    again = model.prepare_study(S, "numpy-nsynth", seed=1, progress=False)["pretrained"]
    assert again["from_cache"] and np.array_equal(again["model"].encode(torch.zeros(1, 513, 78)).detach().numpy(),
                                                  pre["model"].encode(torch.zeros(1, 513, 78)).detach().numpy())
    assert model.prepare_study(tdata.TimbreSettings(per_family=2, test_fraction=0.5, ae_hidden=8, ae_epochs=1),
                               "numpy-nsynth", seed=1, progress=False)["pretrained"] is None


def test_fit_predict_is_one_classifiers_fit_and_predictions():
    from sklearn.svm import SVC
    from paperlib.timbre.classify import fit_predict
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 4)), rng.integers(0, 3, 60)
    clf, acc, pred = fit_predict(SVC(), X[:40], y[:40], {"a": X[40:], "b": X[:5]})
    ref = SVC().fit(X[:40], y[:40])
    assert acc == np.mean(ref.predict(X[:40]) == y[:40])
    assert np.array_equal(pred["a"], ref.predict(X[40:])) and np.array_equal(pred["b"], ref.predict(X[:5]))


def test_griffin_lim_is_librosas():
    "The torch Griffin-Lim gives librosa.griffinlim's waveforms (same initial phases, momentum, frames)."
    import librosa
    rng = np.random.default_rng(3)
    M = 10.0 ** ((rng.standard_normal((2, tdata.N_BINS, 79)) * 10 - 40) / 20.0)
    for n_iter in (1, 8):
        ours = model.griffin_lim(M, n_iter, 40000, seed=5)
        ref = np.stack([librosa.griffinlim(m.astype(np.float32), n_iter=n_iter, hop_length=tdata.HOP, win_length=tdata.N_FFT, n_fft=tdata.N_FFT,
                                           window="hann", center=True, length=40000, init="random", random_state=5) for m in M])
        assert ours.shape == ref.shape == (2, 40000) and ours.dtype == np.float32
        assert np.abs(ours - ref).max() < 1e-4 * np.abs(ref).max()
    assert model.griffin_lim(M[0], 2, 40000).shape == (40000,)


def test_fit_predict_keeps_a_fit_per_classifier_and_training_data():
    from paperlib.core import cache_dir
    r = np.random.default_rng(0)
    X, y = r.normal(size=(60, 4)), np.repeat([0, 1, 2], 20)
    a = classify.fit_predict(classify.make_svm("linear"), X, y, {"t": X[:10]})
    b = classify.fit_predict(classify.make_svm("linear"), X, y, {"t": X[:10]})           # from the cache
    classify.fit_predict(classify.make_svm("linear", C=0.5), X, y, {})                    # other parameters: a new fit
    classify.fit_predict(classify.make_svm("linear"), X + 1, y, {})                       # other data: a new fit
    assert np.array_equal(a[2]["t"], b[2]["t"]) and a[1] == b[1]
    assert len(list((cache_dir() / "timbre-classifier").glob("*.pkl"))) == 3


@needs_fluidsynth
def test_note_sets_prepared_side_by_side_equal_one_after_the_other(tmp_path, monkeypatch):
    from threadpoolctl import threadpool_info
    plan = tdata.plan_notes(1, seed=0, families=["reed", "guitar"])
    limits = lambda: {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    assert tdata.prepare_note_sets(plan, ["FluidR3_GM", "TimGM6mb"]) == ["FluidR3_GM", "TimGM6mb"]
    before = limits()                                  # the libraries loaded by the first run, with their limits
    tdata.prepare_note_sets(tdata.plan_notes(1, seed=1, families=["reed", "guitar"]), ["FluidR3_GM", "TimGM6mb"])
    assert limits() == before                          # every thread's BLAS limit is undone
    assert tdata.prepare_note_sets(plan, ["FluidR3_GM", "TimGM6mb"]) == []          # cached: nothing to do
    side = {sf: tdata.prepare_arrays(tdata.render_note_set(plan, sf, progress=False), sf) for sf in ["FluidR3_GM", "TimGM6mb"]}
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "another"))
    for sf, ns in side.items():                       # one after the other, in another cache
        one = tdata.prepare_arrays(tdata.render_note_set(plan, sf, progress=False), sf)
        assert np.array_equal(one.audio, ns.audio) and np.array_equal(one.logmag, ns.logmag) and np.array_equal(one.logmel, ns.logmel)
