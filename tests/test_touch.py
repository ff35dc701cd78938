"""Tests of paperlib.touch (paper 000): the simulator sim-touch (determinism, stems, onsets, no impulsive layer, frames),
the detector (finds impacts, ignores a tonal onset, ±50 ms matching against mir_eval), the CNN window, SoundCNN and VGG-19 shapes."""
from pathlib import Path

import numpy as np
import pytest
import torch

from paperlib.synth import SceneKit, get_renderer
from paperlib.touch import detector as td, embedding as te, sim, sound_to_umap as su


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    "A kit on the NumPy ingredients (numpy-digits voices, NumPy notes): fast and the same on every machine."
    return SceneKit(tmp_path_factory.mktemp("data"), renderer=get_renderer("numpy", sim.SR))


@pytest.fixture(scope="module")
def clip(kit):
    for i in range(20):                                   # the first clip with at least two impacts
        c = sim.simulate_clip(kit, i, seed=0, stream="test", seconds=4.0, gm_share=0.0)
        if len(c.impacts) >= 2: return c
    raise AssertionError("no clip with two impacts in 20 draws")


# ---------------------------------------------------------------- simulator
def test_simulator_is_deterministic(kit, clip):
    again = sim.simulate_clip(kit, clip.index, seed=0, stream="test", seconds=4.0, gm_share=0.0)
    for k in clip.stems: assert np.array_equal(clip.stems[k], again.stems[k])
    assert again.describe() == clip.describe()
    other = sim.simulate_clip(kit, clip.index, seed=1, stream="test", seconds=4.0, gm_share=0.0)
    assert not np.array_equal(other.stems["background"], clip.stems["background"])


def test_loader_clip_does_not_depend_on_the_batch(kit, tmp_path):
    a = sim.load_sim_touch(tmp_path, n_clips=2, seed=0, stream="tune", seconds=3.0, gm_share=0.0, kit=kit, cache=False)
    b = sim.load_sim_touch(tmp_path, n_clips=1, seed=0, stream="tune", seconds=3.0, gm_share=0.0, start=1, kit=kit, cache=False)
    assert np.array_equal(a.audio[1], b.audio[0]) and len(a) == 2 and a.source["simulator"] == "sim-touch"
    assert list(a.meta.label) == [c.scene for c in a.clips]


def test_stems_sum_to_the_mix(clip):
    n = {len(v) for v in clip.stems.values()}
    assert n == {int(4.0 * sim.SR)} and all(v.dtype == np.float32 for v in clip.stems.values())
    assert np.allclose(clip.mix, clip.stems["impacts"] + clip.stems["distractors"] + clip.stems["background"])
    assert np.abs(clip.mix).max() <= 0.99 + 1e-6


def test_onsets_are_where_the_impact_stem_starts(clip):
    y = clip.stems["impacts"].astype(np.float64)
    s0 = int(round(clip.onsets[0] * sim.SR))
    assert np.all(y[:s0] == 0) and np.abs(y[s0:s0 + 160]).max() > 0          # silent before the first, sounding at it
    for t in clip.onsets:                                                   # every onset raises the stem's energy
        s = int(round(t * sim.SR))
        assert np.sum(y[s:s + 160] ** 2) > np.sum(y[max(s - 160, 0):s] ** 2)


def test_no_impulsive_background_layer(clip):
    used = {name for r in sim.SCENE_RECIPES.values() for name, _, _ in r["layers"]}
    assert not used & set(sim.FORBIDDEN_LAYERS)
    assert set(clip.layers) <= used
    for r in sim.SCENE_RECIPES.values():                                    # material prior: none over half of a scene
        assert max(r["materials"].values()) / sum(r["materials"].values()) <= 0.5
    for m in sim.MATERIALS:                                                 # every material in at least two scenes
        assert sum(m in r["materials"] for r in sim.SCENE_RECIPES.values()) >= 2


def test_decay_follows_the_loss_factor():
    g = np.random.default_rng(0)
    slow = sim.modal_impact(400, sim.SHAPE_RATIOS["bar"], 3e-4, 5e-4, g)     # metal-like
    fast = sim.modal_impact(400, sim.SHAPE_RATIOS["bar"], 5e-2, 5e-4, g)     # skin-like
    tail = lambda y: np.sqrt(np.mean(y[int(0.1 * sim.SR):int(0.12 * sim.SR)] ** 2)) if len(y) > 0.12 * sim.SR else 0.0
    assert tail(slow) > 100 * tail(fast)


def test_frame_at_any_time_and_hand_on_the_struck_object(clip):
    for t in (-1.0, 0.0, 0.123, clip.seconds / 2, clip.seconds, clip.seconds + 3):
        f = sim.frame_at(clip, t, 32)
        assert f.shape == (32, 32, 3) and f.dtype == np.uint8
    a = sim.frame_at(clip, 1.234, 48)
    sim.frame_at(clip, 3.0, 48)
    assert np.array_equal(a, sim.frame_at(clip, 1.234, 48))                  # a pure function of (clip, t)
    for imp in clip.impacts:
        tip = sim.stick_tip(clip, imp["t"])
        assert np.allclose(tip, sim.contact_point(clip.objects[imp["obj"]]), atol=1e-9)


# ---------------------------------------------------------------- detector
def _scene(tonal_at=2.0, impacts=(0.8, 3.2)):
    g = np.random.default_rng(0)
    y = 0.003 * g.standard_normal(4 * sim.SR)
    for t in impacts:
        s = int(t * sim.SR); x = sim.modal_impact(900, sim.SHAPE_RATIOS["plate"], 5e-3, 4e-4, g)[:8000]
        y[s:s + len(x)] += 0.05 * x
    n = int(1.0 * sim.SR); tt = np.arange(n) / sim.SR                        # a piano-like tonal onset: 15 ms attack
    tone = sum(np.sin(2 * np.pi * 220 * k * tt) / k for k in range(1, 8)) * np.minimum(1, tt / 0.015) * np.exp(-tt / 0.5)
    s = int(tonal_at * sim.SR); y[s:s + n] += 0.05 * tone
    return y.astype(np.float32)


def test_detector_finds_impacts_and_ignores_a_tonal_onset():
    params = td.DetectorParams(depth_db=10.0, flat_min=0.5, onset_rel=15.0)   # a precision-oriented setting
    found = td.detect(_scene(), params)
    assert any(abs(found - 0.8) <= 0.05) and any(abs(found - 3.2) <= 0.05)
    assert not any(abs(found - 2.0) <= 0.1)


@pytest.mark.parametrize("est, hits", [([1.049], 1), ([0.951], 1), ([1.06], 0), ([0.94], 0), ([0.99, 1.01], 1), ([], 0)])
def test_matching_within_50_ms_is_one_to_one_and_agrees_with_mir_eval(est, hits):
    import mir_eval
    ref, est = np.array([1.0, 3.0]), np.array(est, float)
    m = td.match(ref, est)
    assert (m >= 0).sum() == hits and len(set(m[m >= 0])) == (m >= 0).sum()
    if len(est):
        f, p, r = mir_eval.onset.f_measure(ref, est, window=0.05)
        assert np.isclose(td.prf(hits, len(est), len(ref))[0], p) and np.isclose(td.prf(hits, len(est), len(ref))[1], r)


def test_cnn_window_is_257_by_20_and_drops_edges():
    from paperlib.features import stft_magnitude
    y = np.random.default_rng(0).standard_normal(2 * sim.SR).astype(np.float32)
    assert td.window_at(y, 1.0).shape == (257, 20)
    assert td.window_at(y, 0.02) is None and td.window_at(y, 1.95) is None
    S = stft_magnitude(y, **td.WIN)
    assert np.allclose(td.columns(y, 95, 115), S[:, 95:115], atol=1e-4)
    assert np.allclose(td.columns(y, 0, 5), S[:, :5], atol=1e-4)


# ---------------------------------------------------------------- networks
def test_sound_cnn_shapes():
    torch.manual_seed(0)
    m = su.SoundCNN(su.SoundCNNConfig(channels=(4, 8, 8, 16, 16))).eval()
    assert m(torch.zeros(3, 257, 20)).shape == (3, 2)
    assert m.features(torch.zeros(1, 1, 257, 20)).shape == (1, 16, 9, 1)
    loss = su.euclidean_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]))
    assert float(loss) == pytest.approx(12.5)


def test_vgg19_keys_and_shapes_are_torchvisions():
    expected = [(l.split()[0], tuple(int(v) for v in l.split()[1].split("x")))
                for l in (Path(__file__).parent / "data" / "vgg19_parameters.txt").read_text().splitlines() if l.strip() and not l.startswith("#")]
    model, desc = te.vgg19_model(None, seed=0)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == expected
    assert "random" in desc
    again, _ = te.vgg19_model(None, seed=0)
    assert torch.equal(model.features[0].weight, again.features[0].weight)   # seeded


def test_image_features_shapes():
    frames = (np.random.default_rng(0).random((2, 32, 32, 3)) * 255).astype(np.uint8)
    model, _ = te.vgg19_model(None, seed=0)
    F = te.vgg_features(frames, model)
    assert F["pool5"].shape == (2, 512) and np.isfinite(F["pool5"]).all()
    H = te.colour_histogram(frames)
    assert H.shape == (2, 128) and np.allclose((H ** 2).sum(1), 1, atol=1e-5)
