"""paperlib.synth: the formant digit synthesiser, the note renderers, and the scene blocks, kit and layers."""
import numpy as np
import pytest

from paperlib import synth
from paperlib.core import ConfigError, DataError
from conftest import write_tone

needs_fluidsynth = pytest.mark.skipif(not synth.renderer_present(), reason="FluidSynth or the GM SoundFonts are not installed")


# ---------------------------------------------------------------- fingerprints and the formant digits
def test_soundfont_fingerprint_is_a_content_hash(tmp_path):
    f1, f2 = tmp_path / "x.sf2", tmp_path / "sub" / "x.sf2"
    f1.write_bytes(b"RIFF" + bytes(100)); f2.parent.mkdir(); f2.write_bytes(b"RIFF" + bytes(100))
    assert synth.soundfont_fingerprint(f1) == synth.soundfont_fingerprint(f2) != synth.soundfont_fingerprint("numpy")
    f2.write_bytes(b"RIFF" + bytes(101))
    assert synth.soundfont_fingerprint(f1) != synth.soundfont_fingerprint(f2)
    with pytest.raises(DataError, match="does not exist"):
        synth.soundfont_fingerprint(tmp_path / "missing.sf2")


def test_fallbacks_only_hides_the_soundfonts(monkeypatch):
    monkeypatch.setenv("PAPERLIB_FALLBACKS_ONLY", "1")
    assert synth.find_soundfonts() == {} and not synth.renderer_present()
    with pytest.warns(UserWarning, match="FALLBACK"):
        r = synth.get_renderer("auto", sr=8000)
    assert isinstance(r, synth.NumpyRenderer) and synth.renderer_fingerprint() == synth.NUMPY_RENDERER_ID
    r.reset()                                                             # the same API as SoundFontRenderer


def test_numpy_digits_fallback_is_deterministic_and_labelled():
    a = synth.synth_digits(n_speakers=2, takes=1, seed=3)
    b = synth.synth_digits(n_speakers=2, takes=1, seed=3)
    assert len(a) == 20 and sorted(set(a.labels)) == list(range(10))
    assert all(np.array_equal(x, y) for x, y in zip(a.audio, b.audio))
    assert all(0.25 < len(x) / a.sr < 1.0 and np.abs(x).max() > 0.1 for x in a.audio)


# ---------------------------------------------------------------- renderers
@pytest.mark.parametrize("make", [lambda: synth.NumpyRenderer(16000),
                                  pytest.param(lambda: synth.SoundFontRenderer("FluidR3_GM", 16000), marks=needs_fluidsynth)])
def test_renderer_contract(make):
    r = make()
    y = r.render(24, 52, 100, note_on=0.1, note_off=0.5, duration=1.0)
    assert y.dtype == np.float32 and y.shape == (16000,)
    onset = int(np.argmax(np.abs(y) > 1e-6))
    assert np.all(y[:1600] == 0) and 1600 <= onset < 1600 + 160      # the note starts at note_on, not before
    again = make().render(24, 52, 100, note_on=0.1, note_off=0.5, duration=1.0)
    assert np.array_equal(y, again)                                   # same render sequence -> bit-identical
    quiet, loud = (np.abs(r.render(24, 52, v, 0.0, 0.5, 1.0)).max() for v in (25, 127))
    assert loud > quiet > 0
    drum = r.render(0, 38, 100, note_on=0.05, note_off=0.1, duration=0.25, drum=True)
    assert drum.shape == (4000,) and np.abs(drum).max() > 0.01 and np.all(drum[:800] == 0)
    for bad in [dict(pitch=128), dict(velocity=0), dict(note_on=0.6, note_off=0.5), dict(note_on=2.0, note_off=3.0)]:
        kw = dict(program=24, pitch=52, velocity=100, note_on=0.0, note_off=0.5, duration=1.0) | bad
        with pytest.raises(ConfigError):
            r.render(**kw)


@needs_fluidsynth
def test_soundfont_notes_are_independent():
    r = synth.SoundFontRenderer("FluidR3_GM", 16000)
    ref = r.render(0, 60, 80, 0.2, 0.6, 1.0)
    r.render(48, 40, 127, 0.0, 2.0, 2.0)            # a loud sustained string note that would ring on
    after = r.render(0, 60, 80, 0.2, 0.6, 1.0)
    assert np.all(after[:3200] == 0)                                  # nothing of the string note leaks in
    assert np.array_equal(after[3264:], ref[3264:])                   # only the onset block's filter ramp may differ
    assert np.sum((after - ref) ** 2) < 1e-3 * np.sum(ref ** 2)
    assert len(r.drum_kits()) >= 1 and 24 in r.presets(0)
    with pytest.raises(ConfigError, match="no preset"):
        r.render(126, 38, 100, 0.0, 0.1, 0.25, drum=True) if 126 not in r.drum_kits() else r.render(0, 60, 100, 0, 0.1, 0.2, bank=77)


def test_missing_soundfont_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        synth.SoundFontRenderer(tmp_path / "nope.sf2")


def test_get_renderer_falls_back_only_when_allowed(monkeypatch):
    monkeypatch.setattr(synth, "find_soundfonts", lambda: {})
    with pytest.warns(UserWarning, match="FALLBACK"):
        assert isinstance(synth.get_renderer("auto", 16000), synth.NumpyRenderer)
    monkeypatch.setenv("PAPERLIB_STRICT", "1")
    with pytest.raises(DataError):
        synth.get_renderer("auto", 16000)
    assert isinstance(synth.get_renderer("numpy", 16000), synth.NumpyRenderer)


# ---------------------------------------------------------------- scene blocks, kit and layers
def test_blocks_have_their_documented_shapes_and_levels():
    rng = np.random.default_rng(0)
    x = synth.shaped_noise(rng, 16000, lo=100, hi=2000, tilt=-3)
    assert x.shape == (16000,) and np.sqrt(np.mean(x ** 2)) == pytest.approx(1.0, rel=1e-6)
    X = np.abs(np.fft.rfft(x)) ** 2; f = np.fft.rfftfreq(16000, 1 / 16000)
    assert X[(f > 300) & (f < 1500)].mean() > 100 * X[f > 6000].mean()          # the band is where the energy is
    env = synth.slow_envelope(rng, 8000, depth=0.5)
    assert env.shape == (8000,) and env.min() >= 0.5 - 1e-12 and env.max() <= 1 + 1e-12
    tone = synth.harmonic_tone(rng, 440.0, 16000, n_harm=3)
    spec = np.abs(np.fft.rfft(tone)); assert abs(f[np.argmax(spec)] - 440) < 2
    out = np.zeros(10); synth.place(out, np.ones(4), 8, 2.0); synth.place(out, np.ones(4), -2)
    assert out.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 2, 2]
    on = synth.poisson_onsets(np.random.default_rng(1), 10.0, 2.0, lead=1.0)
    assert np.all(np.diff(on) >= 0) and on.min() >= -1.0 and on.max() < 10.0
    dry = synth.shaped_noise(rng, 8000)
    assert np.array_equal(synth.room(dry, rng, 0.5, 0.0), dry) and synth.room(dry, rng, 0.5, 0.5).shape == dry.shape



def test_shaped_noise_and_harmonic_tone_equal_their_formulas():
    "The fast forms (cached bin powers; Chebyshev's recurrence for the harmonics) against the textbook ones."
    n, sr = 4001, 16000
    for lo, hi, tilt in [(50.0, 3000.0, -4.0), (20.0, 8000.0, 0.0)]:
        x = synth.shaped_noise(np.random.default_rng(4), n, sr, lo, hi, tilt)
        f = np.fft.rfftfreq(n, 1 / sr); f[0] = f[1]
        g = (f / 1000) ** (tilt / 6.0206) / (1 + (lo / f) ** 4) / (1 + (f / hi) ** 4)
        ref = np.fft.irfft(np.fft.rfft(np.random.default_rng(4).standard_normal(n)) * g, n)
        np.testing.assert_allclose(x, ref / np.sqrt(np.mean(ref ** 2)), atol=1e-9)
    f0 = np.linspace(100.0, 300.0, n)
    tone = synth.harmonic_tone(np.random.default_rng(3), f0, n, sr, n_harm=30, rolloff=0.7, odd=0.5)
    rng, phase = np.random.default_rng(3), 2 * np.pi * np.cumsum(f0) / sr
    ks = [k for k in range(1, 31) if k * 300.0 <= 0.45 * sr]          # 24 harmonics below 0.45 sr
    ref = sum(k ** -0.7 * (0.5 if k % 2 else 1.0) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in ks)
    np.testing.assert_allclose(tone, ref / np.sqrt(np.mean(ref ** 2)), atol=1e-9)

def test_scene_kit_keeps_its_caches_to_itself(tmp_path, monkeypatch):
    for d in range(2):
        write_tone(tmp_path / "fsdd" / "recordings" / f"{d}_ann_0.wav", sr=8000, seconds=0.3, freq=200 + 50 * d)
    a, b = synth.SceneKit(tmp_path, renderer=synth.NumpyRenderer(16000)), synth.SceneKit(tmp_path, renderer=synth.NumpyRenderer(16000))
    assert len(a.voices) == 2 and a.voices is not b.voices                     # instance state, not class state
    assert a.voices is a.voices and a.renderer is not b.renderer
    assert "_voice_cache" not in vars(synth.SceneKit) and "_renderer" not in vars(synth.SceneKit)
    assert a.provenance["voices"] == "fsdd" and len(a.provenance["fingerprint"]) == 16
    v = a.voice(np.random.default_rng(0), pitch=1.5)
    assert len(v) == int(len(a.voices[0]) / 1.5) or len(v) == int(len(a.voices[1]) / 1.5)
    n1 = a.note(24, 52, 0.5); n2 = b.note(24, 52, 0.5)
    assert n1.shape == (8000,) and np.array_equal(n1, n2)                      # a note depends on its arguments only
    with pytest.raises(ConfigError):
        synth.SceneKit(tmp_path, sr=8000)


def test_every_layer_makes_a_finite_signal_of_its_length(tmp_path):
    write_tone(tmp_path / "fsdd" / "recordings" / "0_ann_0.wav", sr=8000, seconds=0.3)
    kit = synth.SceneKit(tmp_path, renderer=synth.NumpyRenderer(16000))
    for name, layer in synth.LAYERS.items():
        y = layer(kit, np.random.default_rng(0), 8000)
        assert y.shape == (8000,) and np.isfinite(y).all(), name
        assert layer.__doc__, f"layer {name} has no recipe docstring"


@needs_fluidsynth
def test_a_soundfont_whose_kits_sit_in_another_bank_plays_them_as_kits():
    "drum_bank: kits listed under 128, played on a melodic channel from their own bank, no melodic programs left there."
    gm = synth.SoundFontRenderer("FluidR3_GM", 16000)
    assert gm.drum_bank == 128 and gm.drum_kits() and gm.presets(0)
    kit = synth.get_renderer("FluidR3_GM", 16000, drum_bank=0)      # FluidR3's bank 0 read as if it held kits
    assert kit.drum_bank == 0 and kit.drum_kits() == gm.presets(0) == kit.presets(128) and kit.presets(0) == {}
    kit.reset(); a = kit.render(0, 60, 100, 0.0, 0.2, 0.25, drum=True)
    gm.reset(); b = gm.render(0, 60, 100, 0.0, 0.2, 0.25)               # the same preset, played as a melodic note
    assert np.abs(a).max() > 1e-3 and np.array_equal(a, b)
    with pytest.raises(ConfigError, match="not a MIDI bank"):
        synth.SoundFontRenderer("FluidR3_GM", 16000, drum_bank=129)
    avl = {k: p for k, p in synth.AVL_KITS.items() if p.is_file()}
    for name in avl:                                                    # the AVL kits: bank 0, found by name
        r = synth.get_renderer(name, 16000)
        assert r.drum_bank == 0 and r.drum_kits() and r.presets(0) == {}
        assert np.abs(r.render(min(r.drum_kits()), 38, 100, 0.0, 0.2, 0.25, drum=True)).max() > 1e-3
