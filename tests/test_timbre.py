"""Tests of paperlib.timbre (paper 001): the GM family mapping, the note plan and renderer, the 78 x 16 embedding,
the decoder round trip, the classifiers and the latent transformations. Tiny data, built in the tests."""
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from paperlib import data, timbre
from paperlib.core import ConfigError

needs_fluidsynth = pytest.mark.skipif(not data.renderer_present(), reason="FluidSynth or the GM SoundFonts are not installed")


def _tone(f0=220.0, n=timbre.N_SAMPLES, sr=timbre.SR, harmonics=6, decay=1.5):
    t = np.arange(n) / sr
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, harmonics + 1)) * np.exp(-t / decay)
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


# ---------------------------------------------------------------- the GM -> NSynth family table
def test_gm_family_mapping_covers_every_family_and_every_program():
    tab = timbre.gm_family_table()
    assert tab.program.is_unique
    assert set(tab.instrument_family_str) == set(timbre.FAMILIES) and len(timbre.FAMILIES) == 11
    assert tab.groupby("instrument_family_str").size().min() >= 3            # every family has several programs
    assert set(tab.program) | set(timbre.GM_EXCLUDED) == set(range(128))      # each program mapped or excluded, once
    assert not set(tab.program) & set(timbre.GM_EXCLUDED)
    assert ((tab.pitch_lo >= 0) & (tab.pitch_lo < tab.pitch_hi) & (tab.pitch_hi <= 127)).all()
    assert set(tab.instrument_source_str) <= set(timbre.SOURCES_NSYNTH)
    fam = tab.set_index("program").instrument_family_str
    expected = {0: "keyboard", 9: "mallet", 16: "organ", 24: "guitar", 32: "bass", 40: "string", 52: "vocal", 53: "vocal",
                54: "vocal", 56: "brass", 64: "reed", 73: "flute", 80: "synth_lead", 85: "synth_lead", 87: "synth_lead"}
    assert all(fam[p] == f for p, f in expected.items())


# ---------------------------------------------------------------- the note plan: balance, ranges, determinism, pairing
def test_plan_is_balanced_deterministic_and_within_ranges():
    a, b = timbre.plan_notes(30, seed=3), timbre.plan_notes(30, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(timbre.plan_notes(30, seed=4))
    assert (a.groupby("instrument_family_str").size() == 30).all() and len(a) == 330
    rng = timbre.gm_family_table().set_index("program")
    assert ((a.pitch >= rng.pitch_lo[a.program].to_numpy()) & (a.pitch <= rng.pitch_hi[a.program].to_numpy())).all()
    assert set(a.velocity) <= set(timbre.VELOCITIES) and len(set(a.velocity)) == 5
    assert not a.duplicated(["program", "pitch", "velocity"]).any()
    # programs are balanced within a family (where their ranges allow): reed's 8 programs all play the mid range
    counts = a[a.instrument_family_str == "reed"].program.value_counts()
    assert len(counts) == 8 and counts.max() - counts.min() <= 2
    # one shared grid order: families with overlapping ranges share many (pitch, velocity) cells -> pairs
    cells = {f: set(zip(g.pitch, g.velocity)) for f, g in a.groupby("instrument_family_str")}
    assert len(cells["reed"] & cells["vocal"]) >= 10


def test_plan_rejects_more_notes_than_the_grid_holds():
    with pytest.raises(ConfigError, match="distinct notes"):
        timbre.plan_notes(2000, families=["vocal"])
    with pytest.raises(ConfigError):
        timbre.plan_notes(5, families=["kazoo"])


def test_split_is_stratified_and_deterministic():
    meta = timbre.plan_notes(12, seed=0)
    s1, s2 = timbre.split_notes(meta, 0.25, seed=1), timbre.split_notes(meta, 0.25, seed=1)
    assert (s1 == s2).all()
    assert (pd.Series(s1 == "test").groupby(meta.instrument_family_str.to_numpy()).sum() == 3).all()


# ---------------------------------------------------------------- rendering and NSynth metadata
def test_render_note_set_numpy_fallback_is_deterministic_and_cached(tmp_path):
    plan = timbre.plan_notes(2, seed=0, families=["reed", "vocal"])
    c1 = timbre.render_note_set(plan, "numpy", n_samples=8000, progress=False)
    assert len(list((tmp_path / "cache" / "timbre").glob("notes-*.npz"))) == 1
    c2 = timbre.render_note_set(plan, "numpy", n_samples=8000, progress=False)       # from the cache
    assert np.array_equal(np.stack(c1.audio), np.stack(c2.audio)) and c1.audio[0].shape == (8000,)
    m = c1.meta
    for col in ["note_str", "instrument_str", "instrument_family", "instrument_family_str", "instrument_source_str", "pitch", "velocity"]:
        assert col in m
    r = m.iloc[0]
    assert r.note_str == f"{r.instrument_str}-{r.pitch:03d}-{r.velocity:03d}"
    assert timbre.FAMILIES[r.instrument_family] == r.instrument_family_str == r.label
    with pytest.raises(ConfigError, match="longer than"):
        timbre.render_note_set(plan, "numpy", n_samples=70000)


@needs_fluidsynth
def test_soundfont_notes_are_nsynth_like():
    plan = timbre.plan_notes(1, seed=0, families=["guitar", "flute"])
    c = timbre.render_note_set(plan, "FluidR3_GM", progress=False)
    assert c.sr == 16000 and all(a.shape == (40000,) and np.abs(a).max() > 1e-3 for a in c.audio)
    assert c.source["name"] == "gm-soundfont:FluidR3_GM" and set(c.meta.soundfont) == {"FluidR3_GM"}


def test_sources_registered_and_soundfont_lists_checked():
    assert data.SOURCES["gm-nsynth"].kind == "rendered" and data.SOURCES["gm-nsynth"].task == "instrument_notes"
    assert data.SOURCES["numpy-nsynth"].kind == "fallback"
    with pytest.raises(ConfigError, match="both"):
        timbre.load_note_sets("auto", ["FluidR3_GM"], ["FluidR3_GM"], per_family=1)
    with pytest.raises(ConfigError, match="lists"):
        timbre.load_note_sets("auto", "FluidR3_GM", [], per_family=1)


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
    train, unseen = timbre.load_note_sets("nsynth", root=root, per_family=10)
    assert len(train) == 4 and list(unseen) == ["nsynth-test"] and len(unseen["nsynth-test"]) == 2
    assert train.audio[0].shape == (40000,) and train.source["name"] == "nsynth"


# ---------------------------------------------------------------- the 78 x 16 embedding and the decoder
def test_features_and_embedding_have_nsynth_shapes():
    import librosa
    y = _tone()
    S = timbre.stft_frames78(y)
    assert timbre.n_frames(40000) == 78 and S.shape == (513, 78)
    ref = np.abs(librosa.stft(y, n_fft=1024, hop_length=512, center=True, pad_mode="constant"))
    assert ref.shape[1] == 79 and np.allclose(S, ref[:, :78], atol=1e-3)       # librosa's frames minus the 79th
    assert timbre.log_mel_db(S[None]).shape == (1, 16, 78)                      # the baseline: 16 x 78 = 1248
    model = timbre.build_autoencoder(timbre.AutoencoderConfig(hidden=8))
    z = timbre.encode_audio(model, np.stack([y, 0.5 * y]))
    assert z.shape == (2, 78, 16) and z.dtype == np.float32 and timbre.flat(z).shape == (2, 1248)


def test_decoder_round_trip_and_training_lowers_the_loss():
    rng = np.random.default_rng(0)
    notes = np.stack([_tone(f0) for f0 in rng.uniform(110, 440, 6)])
    L = timbre.log_magnitude_db(timbre.stft_frames78(notes))
    cfg = timbre.AutoencoderConfig(hidden=16)
    model, hist = timbre.train_autoencoder(L, cfg, timbre.TrainConfig(epochs=6, batch_size=3, lr=3e-3), seed=0, val=L, progress=False)
    untrained = timbre.reconstruction_mse(timbre.build_autoencoder(cfg), L)
    assert hist["train"][-1] < hist["train"][0] and hist["val"][-1] < untrained
    L_hat = timbre.decode_logmag(model, timbre.embed(model, L))
    assert L_hat.shape == L.shape and np.isfinite(L_hat).all()
    assert np.allclose(timbre.reencode(model, timbre.embed(model, L)), timbre.flat(timbre.embed(model, L_hat)), atol=1e-4)
    # Griffin-Lim on the 78-frame grid: magnitude -> audio -> magnitude comes back close
    audio = timbre.to_audio(L[:2], n_iter=32)
    assert audio.shape == (2, 40000) and np.isfinite(audio).all()
    lsd = timbre.log_spectral_distance(timbre.log_magnitude_db(timbre.stft_frames78(audio)), L[:2])
    assert (lsd < 6.0).all()
    # same seed -> same model
    model2, _ = timbre.train_autoencoder(L, cfg, timbre.TrainConfig(epochs=6, batch_size=3, lr=3e-3), seed=0, progress=False)
    assert np.array_equal(timbre.embed(model, L), timbre.embed(model2, L))


# ---------------------------------------------------------------- classifiers
def test_classifier_pipeline_on_a_tiny_set():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 1248))
    X = np.concatenate([c + rng.normal(0, 1.5, (40, 1248)) for c in centres]).astype(np.float32)
    y = np.repeat([0, 4, 9], 40)
    idx = rng.permutation(len(y)); tr, te = idx[:90], idx[90:]
    clfs = timbre.make_classifiers(seed=0, mlp=timbre.MLPConfig(max_epochs=60))
    for name, clf in clfs.items():
        clf.fit(X[tr], y[tr])
        pred = clf.predict(X[te])
        assert set(pred) <= {0, 4, 9} and np.mean(pred == y[te]) > 0.9, name
    mlp = clfs["MLP"]
    assert [l.out_features for l in mlp.model_.hidden] == [250, 250, 250] and mlp.model_.output.out_features == 3
    again = timbre.MLPFamilyClassifier(timbre.MLPConfig(max_epochs=60), seed=0).fit(X[tr], y[tr])
    assert np.array_equal(again.predict_proba(X[te]), mlp.predict_proba(X[te]))
    svc = clfs["SVM"][-1]                       # scikit-learn's SVC: libsvm trains one-vs-one machines
    assert svc.kernel == "rbf" and svc.C == 1.0 and svc.gamma == "scale"           # untuned defaults
    assert len(svc.intercept_) == 3                                                 # 3 * 2 / 2 pairwise machines


# ---------------------------------------------------------------- transformations
def test_mean_based_transformations_move_the_source_mean_to_the_target_mean():
    rng = np.random.default_rng(1)
    Za, Zb = rng.normal(1.0, 0.3, (30, 12)), rng.normal(-2.0, 0.3, (25, 12))
    y = np.r_[np.zeros(30, int), np.ones(25, int)]
    mu = timbre.family_means(np.r_[Za, Zb], y, n_classes=2)
    assert np.allclose(timbre.mean_shift(Za, mu[0], mu[1]).mean(0), mu[1])
    assert np.allclose(timbre.diagonal_scaling(Za, mu[0], mu[1]).mean(0), mu[1])
    mu_src = mu[0].copy(); mu_src[0] = 0.0                                        # a near-zero source mean is left alone
    assert np.allclose(timbre.diagonal_scaling(Za, mu_src, mu[1])[:, 0], Za[:, 0])
    scores = timbre.transformation_success(type("C", (), {"predict": lambda self, X: (X.mean(1) < 0).astype(int)})(),
                                           timbre.mean_shift(Za, mu[0], mu[1]), target=1)
    assert scores == 1.0


def test_ridge_map_recovers_a_linear_map_and_pairs_match_pitch_and_velocity():
    rng = np.random.default_rng(2)
    W = rng.normal(0, 1, (6, 6))
    Xs = rng.normal(0, 1, (60, 6)); Yt = Xs @ W + 3.0
    rm = timbre.fit_ridge_map(Xs, Yt)
    Xn = rng.normal(0, 1, (5, 6))
    assert np.allclose(rm(Xn), Xn @ W + 3.0, atol=1e-2) and rm.n_pairs == 60 and rm.W.shape == (6, 6)
    with pytest.raises(ConfigError):
        timbre.fit_ridge_map(Xs[:2], Yt[:2])
    meta = pd.DataFrame({"pitch": [60, 62, 60, 64, 62, 60], "velocity": [100, 100, 100, 50, 100, 25]})
    pairs = timbre.paired_notes(meta, np.array([0, 1, 3]), np.array([2, 4, 5]))
    assert sorted(map(tuple, pairs)) == [(0, 2), (1, 4)]


# ---------------------------------------------------------------- caches keyed on content, loaders (issue 8)
def test_note_cache_is_keyed_on_the_renderer_content(tmp_path, monkeypatch):
    plan = timbre.plan_notes(1, seed=0, families=["reed"])
    c1 = timbre.render_note_set(plan, "numpy", n_samples=4000, progress=False)
    timbre.render_note_set(plan, "numpy", n_samples=4000, progress=False)                 # a hit: no new file
    files = lambda: sorted((tmp_path / "cache" / "timbre").glob("notes-*.npz"))
    assert len(files()) == 1
    assert c1.source["fingerprint"] == data.soundfont_fingerprint("numpy") and "path" not in c1.source
    monkeypatch.setattr(timbre, "soundfont_fingerprint", lambda sf: "another-renderer-id")  # e.g. an edited SoundFont
    c2 = timbre.render_note_set(plan, "numpy", n_samples=4000, progress=False)
    assert len(files()) == 2 and c2.source["fingerprint"] == "another-renderer-id"


def test_numpy_source_loader_and_note_set_provenance():
    assert data.SOURCES["numpy-nsynth"].loader == "paperlib.timbre:load_numpy_nsynth"
    clips = timbre.load_numpy_nsynth(per_family=1, families=["guitar"], n_samples=4000)
    assert set(clips.meta.soundfont) == {"numpy-synth"}
    train, unseen = timbre.load_note_sets("numpy-nsynth", per_family=1, n_samples=4000)
    assert train.source["name"] == "numpy-nsynth" and train.source["fingerprint"] and unseen == {}
    assert timbre.note_set_name(train) == "numpy-nsynth" and not any("/" in str(v) for v in train.source.values())
