"""Tests of paperlib.recognize (paper 004's data: the 13 sound objects) and paperlib.recognize_models (its models)."""
import dataclasses
import os

import numpy as np
import pandas as pd
import pytest
import torch

from paperlib.core import ConfigError, DataError
from paperlib.data import SOURCES, renderer_present
import paperlib.recognize as R
import paperlib.recognize_models as M

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


def test_split_disjoint_and_stratified():
    y = np.repeat(np.arange(13), 480)
    split = R.stratified_split(y, (0.7, 0.2, 0.1), seed=0)
    for c in range(13):
        s = split[y == c]
        assert (s == "train").sum() == 336 and (s == "val").sum() == 96 and (s == "test").sum() == 48
    assert set(np.unique(split)) == {"train", "val", "test"}       # every example in exactly one split
    assert np.array_equal(split, R.stratified_split(y, (0.7, 0.2, 0.1), seed=0))
    assert not np.array_equal(split, R.stratified_split(y, (0.7, 0.2, 0.1), seed=1))


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


def test_numpy_fallback_is_announced(monkeypatch):
    gm = SOURCES["gm-soundfonts"]
    monkeypatch.setitem(SOURCES, "gm-soundfonts", dataclasses.replace(gm, present=lambda root: False))
    with pytest.warns(UserWarning, match="FALLBACK"):
        ds = R.build_dataset(["FluidR3_GM"], ["TimGM6mb"], per_class=10, use_cache=False, progress=False)
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
def test_onsets_are_checked_in_samples_on_the_numpy_fallback():
    "The renderer presses the key at round(onset_s * sr): the onset check compares samples, not rounded seconds."
    ds = R.build_dataset(["numpy"], None, per_class=10, seed=0, data_source="numpy-sounds", use_cache=False, progress=False)
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
    assert SOURCES["gm-soundfonts"].loader == "paperlib.recognize:load_sound_objects"
    assert SOURCES["numpy-sounds"].loader == "paperlib.recognize:load_sound_objects_numpy"
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


@pytest.mark.parametrize("name", ["softmax", "nn", "cnn"])
def test_training_lowers_the_loss(name):
    X, y = _toy()
    r = M.train_model(M.build_model(name, seed=0), X, y, X[:52], y[:52],
                      M.TrainConfig(iterations=30, batch_size=26, eval_every=15, n_curve_train=52), seed=0)
    assert [c["iteration"] for c in r.curve] == [15, 30]          # exactly `iterations` steps, recorded along the way
    assert r.curve[1]["loss"] < r.curve[0]["loss"]
    assert r.train_time_s > 0 and r.total_time_s >= r.train_time_s
    assert r.accuracy(X, y) > 1 / 13 + 0.2


def test_single_step_lowers_batch_loss():
    X, y = _toy(52)
    m = M.build_model("cnn", seed=0)
    xb, yb = torch.from_numpy(X), torch.from_numpy(y)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    before = torch.nn.functional.cross_entropy(m(xb), yb)
    opt.zero_grad(); before.backward(); opt.step()
    after = torch.nn.functional.cross_entropy(m(xb), yb)
    assert after.item() < before.item()


def test_training_is_deterministic_and_standardises():
    X, y = _toy(130)
    cfg = M.TrainConfig(iterations=10, batch_size=26, eval_every=5, n_curve_train=26)
    a = M.train_model(M.build_model("nn", seed=1), X, y, X, y, cfg, seed=1)
    b = M.train_model(M.build_model("nn", seed=1), X, y, X, y, cfg, seed=1)
    assert [c["loss"] for c in a.curve] == [c["loss"] for c in b.curve]
    Z = a.scaler(X)
    assert np.allclose(Z.mean(0), 0, atol=1e-4) and np.allclose(Z.std(0), 1, atol=1e-3)
    raw = M.train_model(M.build_model("nn", seed=1), X, y, X, y, dataclasses.replace(cfg, standardize=False), seed=1)
    assert np.array_equal(raw.scaler(X), X)


def test_torch_threads_restored():
    n = torch.get_num_threads()
    with M.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n


def test_profiles_complete():
    for table in (R.DATA_PROFILES, M.TRAIN_PROFILES):
        assert set(table) == {"smoke", "quick", "full"}
    full = M.TRAIN_PROFILES["full"]
    assert R.DATA_PROFILES["full"]["per_class"] == 480
    assert full["iterations"] == full["cnn_iterations"] == 500 and tuple(full["hidden_sizes"]) == (10, 20, 30, 40, 50)
