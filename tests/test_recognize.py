"""Tests of paperlib.recognize.data (paper 004's data: the 13 sound objects, the settings) and paperlib.recognize.model
(its three models, their loss and training)."""
import dataclasses
import os

import numpy as np
import pandas as pd
import pytest
import torch

from paperlib.core import ConfigError, DataError
from paperlib.data import SOURCES
from paperlib.synth import renderer_present
from paperlib.train import TrainConfig
import paperlib.recognize.data as R
import paperlib.recognize.model as M

HAVE_SF = renderer_present("FluidR3_GM") and renderer_present("TimGM6mb")
needs_sf = pytest.mark.skipif(not HAVE_SF, reason="FluidSynth and the Debian GM SoundFonts are not installed")
SOURCE = "gm-soundfonts" if HAVE_SF else "numpy-sounds"
SF = ["FluidR3_GM"] if HAVE_SF else ["numpy"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    "An ordinary build (10 per class) and, with SoundFonts, its cross-SoundFont twin."
    ds = R.build_dataset(SF, None, per_class=10, seed=3, data_source=SOURCE, use_cache=False, progress=False)
    dx = R.build_dataset(SF, ["TimGM6mb"], per_class=10, seed=3, data_source=SOURCE, use_cache=False,
                         progress=False) if HAVE_SF else None
    return ds, dx


# ---------------------------------------------------------------- data builder
def test_class_balance_and_shapes(small):
    ds, _ = small
    assert ds.X["waveform"].shape == ds.X["spectrogram"].shape == (130, 32, 32)
    assert ds.X["waveform"].dtype == ds.X["spectrogram"].dtype == np.float32
    assert all(np.isfinite(v).all() for v in ds.X.values())
    counts = ds.counts()
    assert list(counts.index) == list(R.CLASS_NAMES)
    assert (counts["train"] == 7).all() and (counts["val"] == 2).all() and (counts["test"] == 1).all()
    assert len(R.CLASS_NAMES) == 13 and len(set(R.CLASS_NAMES)) == 13


def test_split_is_the_papers_70_20_10():
    "build_dataset splits with the study's one stratified split; on 480 per class it is the paper's 336 / 96 / 48."
    from paperlib.train import split
    y = np.repeat(np.arange(13), 480)
    s = split(y, R.SoundConfig().split, seed=0)
    for c in range(13):
        sc = s[y == c]
        assert (sc == "train").sum() == 336 and (sc == "val").sum() == 96 and (sc == "test").sum() == 48
    assert np.array_equal(s, split(y, R.SoundConfig().split, seed=0)) and not np.array_equal(s, split(y, R.SoundConfig().split, seed=1))


def test_examples_are_unique_per_split(small):
    ds, _ = small
    keys = ds.meta.assign(split=ds.split).groupby(["label", "index"]).split.nunique()
    assert (keys == 1).all() and len(keys) == 130
    flat = ds.X["spectrogram"].reshape(130, -1)
    assert len(np.unique(flat.round(4), axis=0)) == 130          # no two windows are copies


def test_every_sound_starts_inside_its_window():
    cfg = R.SoundConfig()
    renderers = R._resolve_renderers(SF, not HAVE_SF, cfg.sr)
    for label in (0, 3, 4, 11):                                   # snare, ride, kick, a strummed chord
        for i in range(3):
            rec = R.plan_example(renderers, label, i, cfg, seed=5)
            window, clean = R.render_recipe(renderers, rec, cfg)
            assert window.shape == clean.shape == (11025,) and window.dtype == np.float32
            on = int(round(rec["onset_s"] * cfg.sr))
            assert 0 <= rec["onset_s"] <= cfg.onset_max_s
            assert np.all(clean[:on] == 0)                        # silent before the key-down
            assert on <= R.detect_onset(clean) < 11025            # sounding inside the window
            assert np.abs(window).max() <= 1.0


def test_deterministic_and_seeded(small):
    ds, _ = small
    again = R.build_dataset(SF, None, per_class=10, seed=3, data_source=SOURCE, use_cache=False, progress=False)
    assert np.array_equal(again.X["waveform"], ds.X["waveform"]) and np.array_equal(again.split, ds.split)
    other = R.build_dataset(SF, None, per_class=10, seed=4, data_source=SOURCE, use_cache=False, progress=False)
    assert not np.array_equal(other.X["waveform"], ds.X["waveform"])


def test_cache_round_trip(small):
    ds, _ = small
    a = R.build_dataset(SF, None, per_class=10, seed=3, data_source=SOURCE, progress=False)   # writes the cache
    b = R.build_dataset(SF, None, per_class=10, seed=3, data_source=SOURCE, progress=False)   # reads it
    assert b.notes["cache"] and np.array_equal(a.X["spectrogram"], b.X["spectrogram"])
    assert np.array_equal(b.X["spectrogram"], ds.X["spectrogram"]) and b.meta.equals(ds.meta)


def test_representations():
    cfg = R.SoundConfig()
    t = np.arange(11025) / 44100
    tones = np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in (100.0, 1000.0)]).astype(np.float32)
    w = R.waveform_1024(tones)
    assert w.shape == (2, 1024)
    # band-limited resampling keeps a 100 Hz tone (4096 Hz has room for it): same amplitude
    assert abs(np.abs(w[0]).max() - 0.3) < 0.02
    S = R.spectrogram_32x32(tones, cfg)
    assert S.shape == (2, 32, 32)
    assert S[0].mean(1).argmax() < S[1].mean(1).argmax()          # the higher tone sits in a higher mel row


@needs_sf
def test_cross_soundfont_split(small):
    ds, dx = small
    assert dx is not None
    keep = ds.split != "test"
    assert np.array_equal(dx.X["spectrogram"][dx.split != "test"], ds.X["spectrogram"][keep])   # same train/val
    test = dx.meta[dx.split == "test"]
    assert set(test.soundfont) == {"TimGM6mb"} and len(test) == (ds.split == "test").sum()
    assert set(dx.meta[dx.split != "test"].soundfont) == {"FluidR3_GM"}
    assert dx.test_source["soundfonts"] == ["TimGM6mb"] and ds.source["soundfonts"] == ["FluidR3_GM"]


@needs_sf
def test_kits_and_programs():
    r = R._resolve_renderers(["FluidR3_GM"], False, 44100)["FluidR3_GM"]
    snare = dict(R.class_presets(r, R.SOUND_OBJECTS[0]))
    hihat = dict(R.class_presets(r, R.SOUND_OBJECTS[2]))
    assert len(snare) == len(r.drum_kits())                       # every kit plays the snare ...
    assert not any("orchestra" in n.lower() for n in hihat.values())   # ... but the Orchestra kit has timpani there
    guitar = R.class_presets(r, R.SOUND_OBJECTS[8])
    assert [p for p, _ in guitar] == list(range(24, 32))


@pytest.fixture(scope="module")
def numpy_pool(tmp_path_factory):
    "The NumPy fallback's pool (seed 0, 10 per class), rendered once into a cache folder the fallback tests share."
    folder = tmp_path_factory.mktemp("numpy-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("PAPERLIB_CACHE", str(folder))
    try:
        ds = R.build_dataset(["numpy"], None, per_class=10, seed=0, data_source="numpy-sounds", progress=False)
    finally:
        mp.undo()
    assert ds.notes["cache"] is None                                  # rendered, not read
    return folder, ds


def test_numpy_fallback_is_announced(monkeypatch, numpy_pool):
    gm = SOURCES["gm-soundfonts"]
    monkeypatch.setitem(SOURCES, "gm-soundfonts", dataclasses.replace(gm, present=lambda root: False))
    monkeypatch.setenv("PAPERLIB_CACHE", str(numpy_pool[0]))          # the fallback's pool is rendered once
    with pytest.warns(UserWarning, match="FALLBACK"):
        ds = R.build_dataset(["FluidR3_GM"], ["TimGM6mb"], per_class=10, progress=False)
    assert ds.source["kind"] == "fallback" and "cross_soundfont" in ds.notes
    monkeypatch.setenv("PAPERLIB_STRICT", "1")
    with pytest.raises(DataError):
        R.build_dataset(["FluidR3_GM"], None, per_class=10, use_cache=False, progress=False)


def test_bad_parameters():
    with pytest.raises(ConfigError):
        R.build_dataset(SF, None, per_class=5, data_source=SOURCE, progress=False)
    with pytest.raises(ConfigError):
        R.SoundConfig(onset_max_s=0.3).check()
    with pytest.raises(ConfigError):
        R.build_dataset(SF, None, per_class=10, data_source="no-such-source", progress=False)


# ---------------------------------------------------------------- the NumPy fallback path (issue 8, item 1)
def test_onsets_are_checked_in_samples_on_the_numpy_fallback(numpy_pool):
    "The renderer presses the key at round(onset_s * sr): the onset check compares samples, not rounded seconds."
    ds = numpy_pool[1]
    m, sr = ds.meta, R.SoundConfig().sr
    assert (m.keydown_sample == (m.onset_s * sr).round().astype(int)).all()
    assert (m.onset_detected_sample >= m.keydown_sample).all() and (m.onset_detected_sample < R.SoundConfig().n_samples).all()
    # the NumPy synthesiser sounds at the key-down sample itself, which lies up to half a sample before onset_s:
    # the old check in seconds (onset_detected_s >= onset_s - 1e-9) failed for these examples
    assert (m.onset_detected_s < m.onset_s - 1e-9).any()


# ---------------------------------------------------------------- presets silent for a class (item 6)
class SilentPresetsRenderer:
    """A test double of a SoundFont renderer: drum kits 0 (Standard), 55 (Metronome, silent for every drum key), 56
    (a kit without key 59), and guitar programs 24-31, of which 31 is silent. Sounds start at the key-down sample."""
    name = "fake-sf"

    def __init__(self, sr=44100, silent_kits=(55,), silent_programs=(31,)):
        self.sr, self.silent_kits, self.silent_programs = sr, set(silent_kits), set(silent_programs)

    def drum_kits(self):
        return {0: "Standard", 55: "Metronome", 56: "No Ride 2"}

    def presets(self, bank=0):
        return self.drum_kits() if bank == 128 else {p: f"program {p}" for p in range(128)}

    def render(self, program, pitch, velocity=100, note_on=0.0, note_off=3.0, duration=4.0, drum=False, bank=0):
        n, on = int(round(duration * self.sr)), int(round(note_on * self.sr))
        out = np.zeros(n, np.float32)
        silent = (program in self.silent_kits or (program == 56 and pitch == 59)) if drum else program in self.silent_programs
        if not silent:
            t = np.arange(n - on) / self.sr
            out[on:] = (0.3 * velocity / 127 * np.sin(2 * np.pi * 110 * (1 + pitch % 12) * t) * np.exp(-t / 0.1)).astype(np.float32)
        return out


def test_presets_silent_for_a_class_are_skipped_and_listed():
    r = SilentPresetsRenderer()
    snare, ride, guitar = R.SOUND_OBJECTS[0], R.SOUND_OBJECTS[3], R.SOUND_OBJECTS[8]
    assert R.class_presets(r, snare) == [(0, "Standard"), (56, "No Ride 2")]          # the Metronome cannot play it
    assert R.class_presets(r, ride) == [(0, "Standard"), (56, "No Ride 2")]           # kit 56 keeps keys 51 and 53
    assert R.playable_voicings(r, ride, 56) == (0, 2) and R.playable_voicings(r, ride, 0) == (0, 1, 2)
    assert [p for p, _ in R.class_presets(r, guitar)] == list(range(24, 31))
    log = pd.DataFrame(R.skipped_presets(r))
    assert set(map(tuple, log[["class", "program", "action"]].values)) == {
        ("Snare", 55, "skipped"), ("Ride", 55, "skipped"), ("Ride", 56, "key replaced"), ("E-string 3rd fret", 31, "skipped")}
    assert log.reason.str.contains("silent for").all()
    # rendering never draws a skipped preset or a silent key, and every hit starts inside its window
    cfg = R.SoundConfig()
    out = R.render_class({"fake-sf": r}, 3, 40, cfg, seed=1)
    meta = pd.DataFrame(out["meta"])
    assert 55 not in set(meta.program) and not ((meta.program == 56) & (meta.pitches == "59")).any()
    assert set(meta.program) == {0, 56} and (meta.onset_detected_sample >= meta.keydown_sample).all()


def test_a_class_no_preset_can_play_is_an_error():
    r = SilentPresetsRenderer(silent_kits=(0, 55, 56))
    with pytest.raises(DataError, match="none of the 3 drum kits"):
        R.class_presets(r, R.SOUND_OBJECTS[0])


def test_numpy_renderer_skips_nothing():
    r = R._resolve_renderers(["numpy"], True, 44100)["numpy-synth"]
    for obj in R.SOUND_OBJECTS:
        assert len(R.class_presets(r, obj)) == (len(r.drum_kits()) if obj.instrument == "drums" else 8)
    assert R.skipped_presets(r) == []


# ---------------------------------------------------------------- caches keyed on content (item 4)
def test_pool_cache_is_keyed_on_the_soundfont_content(tmp_path, monkeypatch):
    cfg = R.SoundConfig()
    a, b, a2 = tmp_path / "x" / "Lib.sf2", tmp_path / "y" / "Lib.sf2", tmp_path / "z" / "Lib.sf2"
    for p, content in ((a, b"A" * 64), (b, b"B" * 64), (a2, b"A" * 64)):
        p.parent.mkdir(); p.write_bytes(content)
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))                 # same name, size and time: only the content differs
    key = lambda sf: R.pool_key([str(sf)], 10, cfg, 0, 0, False)
    assert key(a) != key(b) and key(a) == key(a2)                      # content, not path
    # a different renderer id misses the cache of a built pool
    first = R.build_dataset(["numpy"], None, per_class=10, seed=2, data_source="numpy-sounds", progress=False)
    again = R.build_dataset(["numpy"], None, per_class=10, seed=2, data_source="numpy-sounds", progress=False)
    assert first.notes["cache"] is None and again.notes["cache"] and "/" not in again.notes["cache"]   # a file name, no path
    monkeypatch.setattr(R, "soundfont_fingerprint", lambda sf: "numpy-synth-v2")
    other = R.build_dataset(["numpy"], None, per_class=10, seed=2, data_source="numpy-sounds", progress=False)
    assert other.notes["cache"] is None and other.source["fingerprint"] != again.source["fingerprint"]


def test_loaders_are_module_functions():
    from paperlib.data import SOURCES
    assert SOURCES["gm-soundfonts"].loader == "paperlib.recognize.data:load_sound_objects"
    assert SOURCES["numpy-sounds"].loader == "paperlib.recognize.data:load_sound_objects_numpy"
    clips = R.load_sound_objects_numpy(per_class=1)
    assert len(clips) == 13 and clips.source["soundfonts"] == ["numpy-synth"]


# ---------------------------------------------------------------- models
@pytest.mark.parametrize("name", ["softmax", "nn", "cnn"])
def test_model_shapes(name):
    m = M.build_model(name, seed=0)
    assert m(torch.zeros(4, 32, 32)).shape == (4, 13)
    assert m(torch.zeros(4, 1024)).shape == (4, 13)


def test_paper_architecture():
    cfg = M.ModelConfig(hidden=30)
    assert M.n_parameters(M.build_model("softmax", cfg)) == 1024 * 13 + 13
    assert M.n_parameters(M.build_model("nn", cfg)) == 1024 * 30 + 30 + 30 * 13 + 13
    cnn = M.build_model("cnn", cfg)
    x = torch.zeros(2, 1, 32, 32)
    h1 = cnn.pool1(torch.relu(cnn.conv1(x)))
    h2 = cnn.pool2(torch.relu(cnn.conv2(h1)))
    assert cnn.conv1(x).shape == (2, 32, 32, 32) and h1.shape == (2, 32, 16, 16)
    assert cnn.conv2(h1).shape == (2, 64, 16, 16) and h2.shape == (2, 64, 8, 8)
    assert (cnn.fc1.in_features, cnn.fc1.out_features, cnn.fc2.out_features) == (4096, 1024, 13)
    with pytest.raises(ConfigError):
        M.build_model("rnn")


def _toy(n=260, seed=0):
    "A learnable toy problem: class c lights up row c of the 32 x 32 image."
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 13
    X = rng.standard_normal((n, 32, 32)).astype(np.float32) * 0.5
    X[np.arange(n), y, :] += 2.0
    return X, y


def _cfg(steps, batch_size=26, eval_every=None, seed=0):
    return TrainConfig(steps=steps, batch_size=batch_size, drop_last=True, eval_every=eval_every or steps, seed=seed, threads=1)


@pytest.mark.parametrize("name", ["softmax", "nn", "cnn"])
def test_training_lowers_the_loss(name):
    X, y = _toy()
    r = M.train_model(M.build_model(name, seed=0), X, y, X[:52], y[:52], _cfg(30, eval_every=15), n_curve_train=52)
    assert [c["iteration"] for c in r.curve] == [15, 30]          # exactly `steps` steps, recorded along the way
    assert r.curve[1]["loss"] < r.curve[0]["loss"]
    assert r.train_time_s > 0 and r.total_time_s >= r.train_time_s
    assert r.accuracy(X, y) > 1 / 13 + 0.2


# ---------------------------------------------------------------- common tests of every model (scikit-learn habit)
@pytest.mark.parametrize("name", ["softmax", "nn", "cnn"])
def test_one_epoch_lowers_the_loss_on_a_tiny_batch(name):
    X, y = _toy(26)
    xb, yb = torch.from_numpy(X), torch.from_numpy(y)
    m = M.build_model(name, seed=0)
    before = M.step(m, {"x": xb, "y": yb}, 1)["loss"].item()
    M.train_model(m, X, y, X, y, _cfg(1), n_curve_train=26)        # one epoch: one batch of all 26 examples
    m.eval()
    with torch.no_grad():
        assert M.step(m, {"x": xb, "y": yb}, 1)["loss"].item() < before


@pytest.mark.parametrize("name", ["softmax", "nn", "cnn"])
def test_same_seed_same_weights(name):
    X, y = _toy(52)
    a = M.train_named(name, (X, y), (X, y), R.RecognizeSettings(iterations=4, cnn_iterations=4, batch_size=13, eval_every=2,
                                                                cnn_eval_every=2, n_curve_train=13), seed=5)
    b = M.train_named(name, (X, y), (X, y), R.RecognizeSettings(iterations=4, cnn_iterations=4, batch_size=13, eval_every=2,
                                                                cnn_eval_every=2, n_curve_train=13), seed=5)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and a.curve == b.curve
    c = M.train_named(name, (X, y), (X, y), R.RecognizeSettings(iterations=4, cnn_iterations=4, batch_size=13, eval_every=2,
                                                                cnn_eval_every=2, n_curve_train=13), seed=6)
    k = next(iter(sa))
    assert not torch.equal(c.model.state_dict()[k], sa[k])


@pytest.mark.parametrize("name", ["softmax", "nn", "cnn"])
def test_batched_inference_equals_unbatched(name):
    X, _ = _toy(70)
    m = M.build_model(name, seed=0).eval()
    with torch.no_grad():
        whole = m(torch.from_numpy(X)).argmax(1).numpy()
    r = M.TrainResult(m, M._identity)
    assert np.array_equal(r.predict(X, batch=16), whole) and np.array_equal(r.predict(X, batch=512), whole)


def test_single_step_lowers_batch_loss():
    X, y = _toy(52)
    m = M.build_model("cnn", seed=0)
    xb, yb = torch.from_numpy(X), torch.from_numpy(y)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    before = M.step(m, {"x": xb, "y": yb}, 1)["loss"]
    opt.zero_grad(); before.backward(); opt.step()
    after = torch.nn.functional.cross_entropy(m(xb), yb)
    assert after.item() < before.item()


def test_training_is_deterministic_and_standardises():
    X, y = _toy(130)
    cfg = _cfg(10, eval_every=5, seed=1)
    a = M.train_model(M.build_model("nn", seed=1), X, y, X, y, cfg, n_curve_train=26)
    b = M.train_model(M.build_model("nn", seed=1), X, y, X, y, cfg, n_curve_train=26)
    assert [c["loss"] for c in a.curve] == [c["loss"] for c in b.curve]
    Z = a.scaler(X)
    assert np.allclose(Z.mean(0), 0, atol=1e-4) and np.allclose(Z.std(0), 1, atol=1e-3)
    raw = M.train_model(M.build_model("nn", seed=1), X, y, X, y, cfg, n_curve_train=26, standardize=False)
    assert np.array_equal(raw.scaler(X), X)


def test_train_config_follows_the_settings():
    S = R.RECOGNIZE_SETTINGS["quick"]
    nn_cfg, cnn_cfg = M.train_config(S, "nn", seed=3), M.train_config(S, "cnn", seed=3)
    assert (nn_cfg.steps, cnn_cfg.steps) == (S.iterations, S.cnn_iterations) and S.iterations == 500   # the paper's 500 for the small models
    assert nn_cfg.drop_last and cnn_cfg.drop_last
    assert nn_cfg.batch_size == 50 and nn_cfg.lr == 1e-3 and nn_cfg.eval_every == 25 and nn_cfg.seed == 3
    assert M.curve_sizes(S, "nn") == (1000, None) and M.curve_sizes(S, "cnn") == (300, 300)
    assert M.curve_sizes(R.RECOGNIZE_SETTINGS["full"], "cnn") == (1248, None)


def test_profiles_complete():
    table = R.RECOGNIZE_SETTINGS
    assert set(table) == {"smoke", "quick", "full"} and all(isinstance(v, R.RecognizeSettings) for v in table.values())
    full = table["full"]
    assert full.per_class == 480 and table["quick"].per_class == 480 and table["smoke"].per_class == 10
    assert full.iterations == full.cnn_iterations == 500 and tuple(full.hidden_sizes) == (10, 20, 30, 40, 50)
    with pytest.raises(dataclasses.FrozenInstanceError):
        full.iterations = 5


def test_paper_values_and_claims_schema():
    from paperlib.claims import paper_values_table
    t = paper_values_table(M.PAPER_VALUES)
    assert len(t) == len(M.PAPER_VALUES) and set(t.paper) == {"004"} and t.name.is_unique


# ---------------------------------------------------------------- recordings, protocols, libraries (issue 12)
HAVE_AVL = bool(R.find_avl_kits())
needs_avl = pytest.mark.skipif(not HAVE_AVL, reason="the AVL drum kits (avldrums.lv2-soundfont) or FluidSynth are missing")


def test_waveform_does_not_wrap():
    "A hit ringing to the window's end must not leak onto the silent samples before its onset (the FFT wrap)."
    t = np.arange(11025) / 44100
    y = np.where(t >= 0.1, np.sin(2 * np.pi * 300 * t), 0.0)[None].astype(np.float32)   # silent, then loud to the end
    pre = slice(0, int(0.1 * 4096) - 20)
    assert np.abs(R.waveform_1024(y)[0, pre]).max() < 0.01
    assert np.abs(R.waveform_1024(y, pad=False)[0, pre]).max() > 0.02                   # the old resampling wraps


def test_recording_ids_pair_stereo_channels():
    assert R._recording_id(10, "Std Snr 1(L)", 4) == R._recording_id(11, "Std Snr 1(R)", 2) == "stereo:Std Snr 1"
    assert R._recording_id(5, "808 Snare 1", 1) == "s5" != R._recording_id(6, "808 Snare 1", 1)


def test_components_join_presets_that_share_a_sample():
    comp = R._components([0, 8, 16, 24], {0: {"a"}, 8: {"a", "b"}, 16: {"c"}, 24: {"b"}})
    assert comp == {0: 0, 8: 0, 16: 16, 24: 0}


def test_unseen_split_holds_out_whole_groups():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 120)
    groups = np.array([f"c{c}|lib|{g}" for c, g in zip(y, rng.integers(0, 6, len(y)))])
    groups[y == 2] = "c2|lib|0"                                # one group: cannot be held out
    split, held, stuck = R.unseen_split(y, groups, (0.7, 0.2, 0.1), seed=0)
    assert stuck == ["c2|lib"] and held and not any(h.startswith("c2|") for h in held)
    assert set(groups[split == "test"]) == set(held)                          # the test split is exactly the held-out groups
    assert not set(groups[split != "test"]) & set(held)                       # ... and no held-out group is trained on
    for c in (0, 1):
        share = np.mean(split[y == c] == "test")
        assert 0 < share <= 0.5
    assert (split[y == 2] != "test").all() and (split[y == 2] == "val").any()
    assert np.array_equal(split, R.unseen_split(y, groups, (0.7, 0.2, 0.1), seed=0)[0])


def test_recording_groups_on_the_numpy_fallback(numpy_pool):
    meta = numpy_pool[1].meta
    g = R.recording_groups(meta)
    assert len(g) == len(meta)
    guitar = meta.instrument.to_numpy() == "guitar"
    assert all(s.startswith("guitar|numpy-synth|") for s in g[guitar])
    assert all(s.split("|")[0] == c for s, c in zip(g[~guitar], meta["class"][~guitar]))
    t = R.recording_table(meta)
    assert len(t) == 13 and (t["distinct recordings"] == t["presets drawn"]).all()


@needs_sf
def test_fluidr3_recordings_match_the_issue():
    "FluidR3's kits share samples: one rim-shot recording, few ride and hi-hat recordings; one per guitar program."
    z = R.soundfont_zones(R.soundfont_path("FluidR3_GM"))
    assert R.note_recording(z, 128, 0, 37, 100) == R.note_recording(z, 128, 8, 37, 100)
    kits = [k for b, k in z if b == 128]
    rim = frozenset().union(*[R._class_samples("FluidR3_GM", R.CLASS_NAMES.index("Rim"), k) for k in kits])
    assert len(rim) == 1
    g = [R._class_samples("FluidR3_GM", R.CLASS_NAMES.index("E-string 3rd fret"), p) for p in R.GUITAR_PROGRAMS]
    assert len(set().union(*g)) == 8


def test_max_normalized_xcorr():
    a = np.random.default_rng(1).standard_normal(500)
    assert R.max_normalized_xcorr(a, -0.3 * np.r_[np.zeros(40), a]) == pytest.approx(1.0)
    assert R.max_normalized_xcorr(a, np.random.default_rng(2).standard_normal(500)) < 0.3
    assert np.isnan(R.max_normalized_xcorr(a, np.zeros(10)))


def test_rotation_classes_leave_out_the_small_tom():
    assert R.CLASS_NAMES.index("Small-tom") not in R.ROTATION_CLASSES and len(R.ROTATION_CLASSES) == 7


@needs_avl
def test_avl_kits_render_their_drum_classes():
    pool = R.load_pool([str(p) for p in R.find_avl_kits().values()], 2, classes=R.ROTATION_CLASSES, use_cache=False)
    assert pool["X"]["spectrogram"].shape == (2 * len(R.ROTATION_CLASSES), 32, 32)
    assert set(pool["y"]) == set(R.ROTATION_CLASSES)


def test_accuracy_summary_and_all_of():
    c = np.array([[1, 1, 0, 1], [1, 0, 0, 1]], float)
    s = M.accuracy_summary(c, n_boot=200)
    assert s["accuracy"] == pytest.approx(0.625) and s["seeds"] == 2 and s["lo"] <= 0.625 <= s["hi"]
    one = M.accuracy_summary(c[:1], n_boot=200)
    assert one["seeds"] == 1 and np.isnan(one["seed_sd"])
    assert M.all_of(["holds", "holds"]) == "holds" and M.all_of(["holds", "inconclusive"]) == "inconclusive"
    assert M.all_of(["inconclusive", "does not hold"]) == "does not hold"
    assert M.all_of(["holds", "not testable here"]) == "not testable here"


def test_train_seeds_records_one_curve():
    S = R.RECOGNIZE_SETTINGS["smoke"]
    X = np.random.default_rng(0).standard_normal((60, 32, 32)).astype(np.float32); y = np.arange(60) % 13
    rs = M.train_seeds("softmax", (X, y), (X[:13], y[:13]), S, seeds=[0, 1])
    assert len(rs) == 2 and len(rs[0].curve) > 1 and len(rs[1].curve) == 1
    assert M.correct_matrix(rs, X, y).shape == (2, 60)


@needs_sf
def test_presets_are_probed_on_a_synthesizer_of_their_own_with_the_same_drum_bank():
    "Probing on the build's synthesizer would leak FluidSynth state into the examples; a kit file's probe must find its kits."
    from paperlib import synth
    for bank in (128, 0):
        r = synth.get_renderer("FluidR3_GM", 16000, drum_bank=bank)
        probe = R._probe_renderer(r)
        assert probe is not r and probe.drum_bank == bank and probe.drum_kits() == r.drum_kits()
        assert R._probe_renderer(synth.get_renderer("FluidR3_GM", 16000, drum_bank=bank)) is probe   # one per file, rate, bank


def test_cnn_channels_last_layout_computes_the_same_function():
    "The CNN's channels-last convolutions are a memory layout only: the same logits as the plain layout, up to rounding."
    import torch
    from paperlib.recognize.model import LeNetCNN
    torch.manual_seed(0); m = LeNetCNN().eval()
    x = torch.randn(4, 32, 32)
    assert m.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = m(x)
        h = x.reshape(4, 1, 32, 32)                                   # the same layers, plain layout
        h = m.pool1(torch.relu(torch.nn.functional.conv2d(h, m.conv1.weight.contiguous(), m.conv1.bias, padding=2)))
        h = m.pool2(torch.relu(torch.nn.functional.conv2d(h.contiguous(), m.conv2.weight.contiguous(), m.conv2.bias, padding=2)))
        ref = m.fc2(torch.relu(m.fc1(h.contiguous().flatten(1))))
    assert torch.allclose(got, ref, atol=1e-5)
