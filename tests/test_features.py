"""Tests of paperlib.features: each frame feature of paper 000 against librosa configured to the same
definition (see the mapping table in nbs/02_features.ipynb), hand-computed cases, batching, the
from-spectrogram path, the spectrogram helpers and the errors on bad input. Timing is benchmarked in
tests/benchmarks/bench_features.py, not tested here.

Everything runs in float32, as the library does by default: the STFT is a float64 FFT rounded to complex64
exactly as librosa's. One reference is computed in float64: librosa's float32 flatness on exactly silent
frames (see test_flatness_vs_librosa)."""
import numpy as np
import pytest

librosa = pytest.importorskip("librosa")

from paperlib.core import ConfigError, DataError
from paperlib import features as F

SR, N_FFT, HOP = 16000, 256, 160
N_BINS = N_FFT // 2 + 1
RTOL = 1e-5


def _clip(rng, n=8000):
    "Noise, a hum, a DC offset, an impact-like burst and an exactly silent stretch (0.5 s at 16 kHz)."
    t = np.arange(n) / SR
    y = 0.01 * rng.standard_normal(n) + 0.05 * np.sin(2 * np.pi * 220 * t) + 0.004
    i = n // 3
    y[i:i + 600] += rng.standard_normal(600) * np.exp(-np.arange(600) / 80.0)
    y[n - 1200:n - 400] = 0.0
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def y():
    rng = np.random.default_rng(1)
    return np.stack([_clip(rng) for _ in range(3)])           # (3, 8000)


@pytest.fixture(scope="module")
def S_lib(y):
    return np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))  # (3, 129, 51), librosa's own STFT


@pytest.fixture(scope="module")
def feats(y):
    return F.frame_features(y, sr=SR, n_fft=N_FFT, hop_length=HOP)


# --- the shared STFT --------------------------------------------------------------------------------------

def test_stft_magnitude_equals_librosa(y, S_lib):
    S = F.stft_magnitude(y, n_fft=N_FFT, hop_length=HOP)
    assert S.shape == S_lib.shape == (3, N_BINS, 1 + y.shape[-1] // HOP) and S.dtype == np.float32
    np.testing.assert_allclose(S, S_lib, rtol=1e-6, atol=0)


@pytest.mark.parametrize("kw", [dict(win_length=200, window="hamming"), dict(center=False), dict(n_fft=960, hop_length=480)])
def test_stft_magnitude_settings_equal_librosa(y, kw):
    kw = {"n_fft": N_FFT, "hop_length": HOP, **kw}
    np.testing.assert_allclose(F.stft_magnitude(y, **kw), np.abs(librosa.stft(y, **kw)), rtol=1e-6, atol=1e-12)


def test_stft_float64_and_block_size_do_not_change_values(y):
    S64 = F.stft_magnitude(y.astype(np.float64), n_fft=N_FFT, hop_length=HOP, dtype=np.float64)
    np.testing.assert_allclose(S64, np.abs(librosa.stft(y.astype(np.float64), n_fft=N_FFT, hop_length=HOP)), rtol=1e-12, atol=1e-15)
    small = F.magnitude_frames(y, N_FFT, HOP, block_bytes=8 * N_FFT * 7)   # 7 frames per block
    np.testing.assert_array_equal(small, F.magnitude_frames(y, N_FFT, HOP))


def test_paper_000_settings():
    s = F.SETTINGS["000"]
    assert s["n_fft"] // 2 + 1 == 129 and s["hop_length"] / s["sr"] == 0.010


# --- each feature against librosa configured to the same definition ----------------------------------------

def test_energy_vs_librosa(feats, S_lib):
    np.testing.assert_allclose(feats["energy"], S_lib.sum(axis=-2), rtol=RTOL)


def test_centroid_bins_vs_librosa(feats, S_lib):
    ref = librosa.feature.spectral_centroid(S=S_lib, freq=np.arange(N_BINS))[..., 0, :]
    np.testing.assert_allclose(feats["centroid"], ref, rtol=RTOL)
    assert (feats["centroid"] == 0).any()                  # the silent frames: librosa leaves them at 0 too


def test_centroid_hz_vs_librosa_default(feats, S_lib):
    ref = librosa.feature.spectral_centroid(S=S_lib, sr=SR, n_fft=N_FFT)[..., 0, :]   # librosa's default, Hz
    np.testing.assert_allclose(feats["centroid_hz"], ref, rtol=RTOL)
    np.testing.assert_allclose(F.spectral_centroid(S_lib, sr=SR), ref, rtol=RTOL)


def test_flatness_vs_librosa(feats, S_lib):
    # librosa's float32 flatness sums the 129 logs of a frame sequentially (its S is F-ordered): on the exactly
    # silent frames (every bin floored at 1e-10, true flatness 1) it returns 0.99998. So the reference is
    # librosa run in float64 on the same (float32) spectrogram; ours stays float32 (pairwise sums).
    ref = librosa.feature.spectral_flatness(S=S_lib.astype(np.float64), power=1.0, amin=1e-10)[..., 0, :]
    np.testing.assert_allclose(feats["flatness"], ref, rtol=RTOL)
    silent = F.energy_contour(S_lib) == 0
    assert silent.any() and np.allclose(feats["flatness"][silent], 1.0, rtol=1e-6)
    ref32 = librosa.feature.spectral_flatness(S=S_lib, power=1.0, amin=1e-10)[..., 0, :]
    np.testing.assert_allclose(feats["flatness"][~silent], ref32[~silent], rtol=RTOL)
    # librosa's default (flatness of power |X|^2) is a different number: the mapping matters
    assert not np.allclose(feats["flatness"], librosa.feature.spectral_flatness(S=S_lib)[..., 0, :], rtol=0.01)


def test_onset_vs_librosa(feats, S_lib):
    ref = librosa.onset.onset_strength(S=S_lib, lag=1, max_size=1, aggregate=np.sum, center=False, detrend=False)
    assert ref[..., 0].max() == 0 and feats["onset"][..., 0].max() == 0
    np.testing.assert_allclose(feats["onset"], ref, rtol=RTOL)


def test_zcr_vs_librosa(y, feats):
    ref = librosa.feature.zero_crossing_rate(y - y.mean(axis=-1, keepdims=True), frame_length=N_FFT,
                                             hop_length=HOP, center=True, threshold=0.0)[..., 0, :] * N_FFT
    np.testing.assert_array_equal(feats["zcr"], ref)
    assert feats["zcr"].dtype == np.int32


def test_zcr_about_zero_vs_librosa(y):
    ref = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP, threshold=0.0)[..., 0, :] * N_FFT
    np.testing.assert_array_equal(F.zero_crossings(y, N_FFT, HOP, reference="zero"), ref)


def test_public_feature_functions_equal_frame_features(feats, y):
    S = F.stft_magnitude(y)
    for name, fn in [("energy", F.energy_contour), ("centroid", F.spectral_centroid),
                     ("flatness", F.spectral_flatness), ("onset", F.onset_strength)]:
        np.testing.assert_array_equal(fn(S), feats[name])
    np.testing.assert_array_equal(F.zero_crossings(y), feats["zcr"])


# --- hand-computed cases --------------------------------------------------------------------------------

def test_constant_spectrum_has_flatness_one():
    np.testing.assert_allclose(F.spectral_flatness(np.full((129, 4), 0.3)), 1.0, rtol=1e-6)


def test_flatness_floors_empty_bins_at_amin():
    S = np.zeros((4, 1)); S[0, 0] = 1.0                       # one bin 1, three bins floored at 1e-10
    gm, am = (1.0 * 1e-30) ** 0.25, (1.0 + 3e-10) / 4
    np.testing.assert_allclose(F.spectral_flatness(S, amin=1e-10), gm / am, rtol=1e-5)
    np.testing.assert_allclose(F.spectral_flatness(np.zeros((4, 2))), 1.0)   # silence: all floored, flat


@pytest.mark.parametrize("k", [0, 7, 128])
def test_single_bin_spectrum_centroid_is_that_bin(k):
    S = np.zeros((129, 3)); S[k] = [0.5, 2.0, 1e-3]
    np.testing.assert_allclose(F.spectral_centroid(S), k)
    np.testing.assert_allclose(F.spectral_centroid(S, sr=16000), k * 16000 / 256, rtol=1e-6)


def test_silent_frame_centroid_zero_and_energy_by_hand():
    S = np.zeros((5, 3)); S[:, 1] = [1, 2, 3, 4, 0]
    np.testing.assert_allclose(F.spectral_centroid(S), [0, (2 + 6 + 12) / 10, 0])
    np.testing.assert_allclose(F.energy_contour(S), [0, 10, 0])


def test_onset_of_a_step_by_hand():
    S = np.ones((6, 5)); S[2:, 2:] = 3.0; S[0, 4] = 0.0       # frame 2: 4 bins rise by 2; frame 4: one bin falls
    np.testing.assert_allclose(F.onset_strength(S), [0, 0, 8, 0, 0])
    S[:, 3] = 5.0                                             # every bin rises at 3 (by 2 or 4), falls at 4
    np.testing.assert_allclose(F.onset_strength(S), [0, 0, 8, 2 * 4 + 4 * 2, 0])


def test_square_wave_zero_crossings_by_hand():
    period, L, hop = 16, 256, 160
    sq = np.tile(np.r_[np.ones(period // 2), -np.ones(period // 2)], 100) + 0.25   # mean 0.25: crosses it
    Z = F.zero_crossings(sq, L, hop)
    assert (Z[1:-1] == 2 * L // period - 1).all()              # 31 sign changes among 256 samples (255 pairs)
    np.testing.assert_array_equal(F.zero_crossings(sq, L, hop, reference="frame")[1:-1], Z[1:-1])
    assert F.zero_crossings(np.full(600, 0.3), L, hop).max() == 0                  # constant: no crossings
    assert (F.zero_crossings(sq + 1.0, L, hop, reference="zero") == 0).all()      # never crosses zero


def test_zcr_frame_reference_removes_a_drift():
    t = np.arange(4000) / SR
    y = np.sin(2 * np.pi * 1000 * t) + np.linspace(-5, 5, t.size)   # a 1 kHz tone on a steep ramp
    Zf = F.zero_crossings(y, N_FFT, HOP, reference="frame")
    assert (np.abs(Zf[2:-2] - 2 * 1000 * N_FFT / SR) <= 2).all()      # ~32 crossings of each frame's mean
    Zc = F.zero_crossings(y, N_FFT, HOP, reference="clip")                # the ramp crosses the clip's mean once
    assert (Zc == 0).mean() > 0.7 and Zc[len(Zc) // 2] > 20


# --- batching and the from-spectrogram path ----------------------------------------------------------------

def test_batch_equals_per_clip(y, feats):
    for i in range(len(y)):
        one = F.frame_features(y[i])
        for k in feats:
            np.testing.assert_array_equal(one[k], feats[k][i])


def test_list_and_nd_batches(y, feats):
    as_list = F.frame_features(list(y))
    nd = F.frame_features(np.stack([y, y[::-1]]))            # (2, 3, n_samples)
    for k in feats:
        np.testing.assert_array_equal(as_list[k], feats[k])
        assert nd[k].shape == (2, *feats[k].shape)
        np.testing.assert_array_equal(nd[k][0], feats[k])
        np.testing.assert_array_equal(nd[k][1], feats[k][::-1])


def test_from_spectrogram_equals_from_waveform(y, feats):
    S = F.stft_magnitude(y)
    from_S = F.frame_features(S=S)
    assert "zcr" not in from_S and set(from_S) == set(feats) - {"zcr"}
    for k in from_S:
        np.testing.assert_array_equal(from_S[k], feats[k])
    with_y = F.frame_features(y, S=np.ascontiguousarray(S))   # a C-ordered S (not our transposed view) too
    for k in feats:
        np.testing.assert_array_equal(with_y[k], feats[k])


def test_float64_features(y, S_lib):
    f64 = F.frame_features(y.astype(np.float64), dtype=np.float64)
    assert all(v.dtype == np.float64 for k, v in f64.items() if k != "zcr")
    S64 = np.abs(librosa.stft(y.astype(np.float64), n_fft=N_FFT, hop_length=HOP))
    ref = librosa.feature.spectral_flatness(S=S64, power=1.0)[..., 0, :]
    np.testing.assert_allclose(f64["flatness"], ref, rtol=1e-10)


# --- the other spectrogram helpers ---------------------------------------------------------------------

def test_log_magnitude_vs_librosa(S_lib):
    np.testing.assert_allclose(F.log_magnitude(S_lib[0]), librosa.amplitude_to_db(S_lib[0], ref=1.0), rtol=1e-5, atol=1e-4)
    P = S_lib[1] ** 2
    np.testing.assert_allclose(F.log_magnitude(P, power=2.0, top_db=None), librosa.power_to_db(P, top_db=None), rtol=1e-5, atol=1e-4)
    batch = F.log_magnitude(S_lib, top_db=40.0)                # top_db per spectrogram, as one call per clip
    for i in range(len(S_lib)):
        np.testing.assert_allclose(batch[i], librosa.amplitude_to_db(S_lib[i], top_db=40.0), rtol=1e-5, atol=1e-4)


def test_mel_spectrogram_vs_librosa(y):
    kw = dict(sr=16000, n_fft=960, hop_length=480, n_mels=128)          # paper 002
    ref = librosa.feature.melspectrogram(y=y, **kw)
    M = F.mel_spectrogram(y, **kw)
    assert M.shape == ref.shape
    np.testing.assert_allclose(M, ref, rtol=1e-4, atol=1e-6 * ref.max())
    S = F.stft_magnitude(y, n_fft=960, hop_length=480)
    np.testing.assert_allclose(F.mel_spectrogram(S=S, **kw), M, rtol=1e-6)
    np.testing.assert_allclose(F.mel_spectrogram(y, power=1.0, **kw), librosa.feature.melspectrogram(y=y, power=1.0, **kw),
                               rtol=1e-4, atol=1e-6)


def test_resize_area_is_block_average():
    S = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(F.resize_spectrogram(S, (2, 2)), [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(F.resize_spectrogram(S, (4, 4)), S)
    np.testing.assert_allclose(F.resize_spectrogram(S, (1, 1)), S.mean())


@pytest.mark.parametrize("shape", [(32, 32), (128, 128), (7, 50)])
def test_resize_matches_torch(S_lib, shape):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(S_lib.astype(np.float64))[:, None]          # (3, 1, 129, 51)
    area = torch.nn.functional.adaptive_avg_pool2d(x, shape)[:, 0].numpy()
    lin = torch.nn.functional.interpolate(x, size=shape, mode="bilinear", align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(F.resize_spectrogram(S_lib.astype(np.float64), shape), area, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(F.resize_spectrogram(S_lib.astype(np.float64), shape, method="linear"), lin, rtol=1e-10, atol=1e-12)


# --- errors at the boundary -----------------------------------------------------------------------------

@pytest.mark.parametrize("bad, match", [
    (np.r_[np.zeros(300), np.nan, np.zeros(300)].astype(np.float32), "non-finite"),
    (np.r_[np.zeros(300), np.inf], "non-finite"),
    (np.float32(0.5), "scalar"),
    (np.zeros(100, np.float32), "fewer than n_fft"),
    (np.zeros(600, np.int16), "integer|dtype int16"),
    ([np.zeros(600), np.zeros(601)], "different lengths"),
    ([np.zeros((2, 600))], "1-D"),
    ([], "empty"),
])
def test_bad_waveforms_raise_data_error(bad, match):
    with pytest.raises(DataError, match=match):
        F.frame_features(bad)


def test_error_messages_name_the_fix():
    with pytest.raises(DataError) as e:
        F.stft_magnitude(np.zeros(100))
    assert "How to fix" in str(e.value) and e.value.fix


@pytest.mark.parametrize("kw, match", [
    (dict(n_fft=1), "n_fft"), (dict(n_fft=256.0), "n_fft"), (dict(hop_length=0), "hop_length"),
    (dict(hop_length=-160), "hop_length"), (dict(win_length=512), "win_length"), (dict(zcr_reference="mean"), "zcr_reference"),
    (dict(window="no-such-window"), "window"), (dict(dtype=np.int32), "dtype"),
])
def test_bad_parameters_raise_config_error(kw, match):
    with pytest.raises(ConfigError, match=match):
        F.frame_features(np.zeros(2000, np.float32), **kw)


@pytest.mark.parametrize("bad, match", [
    (np.zeros(129), "shape"), (np.zeros((129, 5), complex), "complex"), (-np.ones((129, 5)), "negative"),
    (np.full((129, 5), np.nan), "non-finite"), (np.ones((100, 5)), "bins"),
])
def test_bad_spectrograms_raise_data_error(bad, match):
    with pytest.raises(DataError, match=match):
        F.frame_features(S=bad)


def test_spectrogram_and_waveform_must_agree(y):
    with pytest.raises(DataError, match="frames"):
        F.frame_features(y[:, :4000], S=F.stft_magnitude(y))
    with pytest.raises(ConfigError, match="needs a waveform"):
        F.frame_features()
    with pytest.raises(ConfigError):
        F.resize_spectrogram(np.ones((8, 8)), (0, 4))
    with pytest.raises(ConfigError):
        F.resize_spectrogram(np.ones((8, 8)), (4, 4), method="cubic")


def test_the_hann_window_is_scipys_without_importing_it():
    import scipy.signal
    for n in [1, 2, 3, 255, 256, 400, 1024, 2048, 4095]:
        assert np.array_equal(F._hann(n), scipy.signal.get_window("hann", n, fftbins=True)), n
    assert np.array_equal(F.get_window("hann", 1024, 400)[312:712], scipy.signal.get_window("hann", 400, fftbins=True))
    assert np.array_equal(F.get_window("hamming", 256), scipy.signal.get_window("hamming", 256, fftbins=True))
