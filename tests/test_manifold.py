"""Paper 003 (paperlib.manifold): the street simulator's geometry and physics, features against oracles, the VQ-VAE,
the AT-net's backbone, the loaders on tiny fixtures, and the training path without librosa/scipy/sklearn/h5py."""
import io
import subprocess
import sys

import numpy as np
import pytest
import torch

from paperlib.manifold import street as st
from paperlib.manifold import vqvae as vq
from paperlib.manifold import atnet as at

SR = 22050


def _scene(left=None, right=None, cars=(), trees=()):
    open_side = st.Side(False, 6.0, np.zeros((0, 3)), 0.3, 2.0, 4.0)
    return st.Scene("test", left or open_side, right or open_side, np.array(cars, float).reshape(-1, 6),
                    np.array(trees, float).reshape(-1, 4), 0.0, 0.0, 0.0, 0.0)


def test_raycast_known_pixels():
    S = 64
    wall = st.Side(True, 10.0, np.array([[-100.0, 300.0, 20.0]]), 0.8, 2.0, 4.0)
    depth, lab = st.raycast(_scene(left=wall), 0.0, S)
    v = -(2 * (S - 1 + 0.5) / S - 1)                                    # bottom row: ground just ahead
    assert depth[S - 1, S // 2] == pytest.approx(st.CAM_HEIGHT / -v, rel=1e-5)
    assert lab[S - 1, S // 2] == st.ROAD
    assert lab[0, S - 1] == st.SKY and depth[0, S - 1] == st.MAX_DEPTH  # top right: open side, sky
    u = 2 * (0 + 0.5) / S - 1                                           # left column, middle row: the facade at x = -10
    assert lab[S // 2, 0] == st.BUILDING
    assert depth[S // 2, 0] == pytest.approx(10.0 / abs(u), rel=1e-5)
    car = [(0.0, 20.0, 0.0, 30.0, 0.0, 4.5)]                            # a car 20 m ahead (rear face at 17.75 m)
    d2, l2 = st.raycast(_scene(cars=car), 0.0, S)
    assert l2[S // 2 + 1, S // 2] == st.CAR and d2[S // 2 + 1, S // 2] == pytest.approx(17.75, rel=1e-5)


def test_simulation_is_deterministic_per_window():
    a = st.simulate(st.OAP_LIKE, {"train": 2}, 16)
    b = st.simulate(st.OAP_LIKE, {"train": 3, "test": 1}, 16)
    assert np.array_equal(a.features, b.features[:2]) and np.array_equal(a.depth, b.depth[:2])
    assert np.array_equal(a.seg, b.seg[:2])


def _impulse(p, D, n, v=(0, 0, 0)):
    x = np.zeros(D + n + 2, np.float32); x[D] = 1.0
    return st.PointSource(np.array(p, float), np.array(v, float), np.stack([x, 0 * x, 0 * x]))


def _tone(p, D, n, f, v=(0, 0, 0)):
    x = np.sin(2 * np.pi * f * (np.arange(D + n + 2) - D) / SR).astype(np.float32)
    return st.PointSource(np.array(p, float), np.array(v, float), np.stack([x, 0 * x, 0 * x]))


ARR = st.MicArray(np.array([0, 0, 1.7]), np.zeros(3), np.zeros((2, 3)), np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]))
NONE = st.Reflectors([], 0.0, None, None)
NOABS = st.Physics(absorption=False)


def test_delay_spreading_direction():
    n, D = 4096, SR // 2
    y = st.render_audio([_impulse([0, 10.0, 1.7], D, n)], NONE, ARR, SR, n, 0.0, NOABS)
    assert abs(np.argmax(np.abs(y[0])) - 10.0 / st.C_SOUND * SR) <= 1           # delay r/c
    e = [float((st.render_audio([_tone([0, d, 1.7], D, n, 300.0)], NONE, ARR, SR, n, 0.0, NOABS)[0] ** 2).sum()) for d in (10.0, 20.0)]
    assert 10 * np.log10(e[1] / e[0]) == pytest.approx(-6.02, abs=0.2)         # -6 dB per doubling
    assert (y[0] ** 2).sum() > 10 * (y[1] ** 2).sum()                          # front capsule louder for a frontal source


def test_facade_echo_and_doppler():
    n, D = 4096, SR // 2
    wall = st.Reflectors([], 0.0, None, st.Wall(7.0, np.array([[-100.0, 100.0, 20.0]]), 0.8))
    y = st.render_audio([_impulse([0, 0.0, 1.7], D, n)], wall, ARR, SR, n, 0.0, NOABS)[0]
    late = np.abs(y).copy(); late[:50] = 0                                     # skip the direct sound
    assert abs(np.argmax(late) - 2 * 7.0 / st.C_SOUND * SR) <= 1               # echo at 2d/c
    n = 16384; v, f = 20.0, 500.0
    y = st.render_audio([_tone([0, 100.0, 1.7], D, n, f, v=(0, -v, 0))], NONE, ARR, SR, n, 0.0, NOABS)[0]
    spec = np.abs(np.fft.rfft(y * np.hanning(n), 8 * n)); fr = np.fft.rfftfreq(8 * n, 1 / SR)[np.argmax(spec)]
    assert fr == pytest.approx(f * st.C_SOUND / (st.C_SOUND - v), rel=0.01)    # approaching source: Doppler


def test_filterbank_and_log_mel_match_oracles():
    from paperlib.features import mel_filterbank, mel_spectrogram
    for sr in (22050, 16000):
        assert np.allclose(st.htk_mel_filterbank(sr), mel_filterbank(sr, 2048, 256, htk=True, norm=None), atol=1e-6)
    x = np.random.default_rng(0).standard_normal((2, SR)).astype(np.float32)
    ours = st.log_mel(x, SR).numpy()
    assert ours.shape == (2, 256, 87) and st.log_mel(np.zeros((1, 16000)), 16000).shape[-1] == 63
    ref = 10 * np.log10(np.maximum(mel_spectrogram(x, sr=SR, n_fft=2048, hop_length=256, n_mels=256, htk=True, norm=None), 1e-10)) / 80
    assert np.allclose(ours[..., 8:-8], ref[..., 8:-8], atol=2e-3)            # interior frames (padding modes differ)


def test_vq_codeword_straight_through_and_loss():
    q = vq.VectorQuantizer(4, 2)
    q.codebook.weight.data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    z = torch.tensor([[0.9, 0.1], [0.2, 0.8]]).T.reshape(1, 2, 1, 2).requires_grad_()
    o = q(z)
    assert o["idx"].tolist() == [[[1, 2]]]
    assert torch.allclose(o["z_q"], torch.tensor([[1.0, 0.0], [0.0, 1.0]]).T.reshape(1, 2, 1, 2))
    by_hand = (0.1 ** 2 + 0.1 ** 2 + 0.2 ** 2 + 0.2 ** 2) / 4
    assert o["codebook"].item() == pytest.approx(by_hand) and o["commit"].item() == pytest.approx(by_hand)
    (o["z_q"] * torch.arange(1.0, 5.0).reshape(1, 2, 1, 2)).sum().backward()  # straight-through: gradient copied to z
    assert torch.allclose(z.grad, torch.arange(1.0, 5.0).reshape(1, 2, 1, 2))


@pytest.mark.parametrize("S,m", [(32, 8), (32, 16)])
def test_shapes(S, m):
    for mod, ch in (("depth", 1), ("seg", 19)):
        net = vq.VQVAE(mod, S, m).eval()
        x = torch.zeros(2, ch, S, S)
        o = net(x)
        assert o["z_e"].shape == (2, 64, m, m) and o["out"].shape == (2, ch, S, S)
    assert at.ATNet(m).eval()(torch.zeros(2, 8, S, S)).shape == (2, 64, m, m)
    assert at.E2E("depth", S, m).eval()(torch.zeros(2, 8, S, S)).shape == (2, 1, S, S)
    assert at.DirectUNet(2, "both").eval()(torch.zeros(2, 2, S, S)).shape == (2, 20, S, S)


RESNET18_SHAPES = {"conv1.weight": (64, 8, 7, 7), "bn1.running_mean": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3),
                   "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer3.1.bn2.weight": (256,),
                   "layer4.0.conv1.weight": (512, 256, 3, 3), "layer4.1.conv2.weight": (512, 512, 3, 3)}


def test_atnet_backbone_is_torchvision_resnet18():
    from paperlib.backbones import ResNet18
    sd = at.ATNet(8).backbone.state_dict()
    ref = {k: v.shape for k, v in ResNet18(8).state_dict().items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in sd.items()} == ref
    assert len([k for k in sd if k.endswith("weight")]) == 40                      # 20 convs + 20 BN weights (fc removed)
    for k, shape in RESNET18_SHAPES.items():
        assert tuple(sd[k].shape) == shape


def _png(a):
    from PIL import Image
    b = io.BytesIO(); Image.fromarray(a).save(b, format="PNG"); return np.frombuffer(b.getvalue(), np.uint8)


def test_loaders_on_fixtures(tmp_path):
    h5py = pytest.importorskip("h5py")
    o = tmp_path / "oap"; o.mkdir()
    rng = np.random.default_rng(0)
    lab = np.zeros((8, 16), np.uint8); lab[:4] = st.SKY
    with h5py.File(o / "audio.h5", "w") as f:
        for s in ("scene0001", "scene0002"): f[s] = rng.standard_normal((8, 2 * SR)).astype(np.float32) * 0.1
    with h5py.File(o / "disp.h5", "w") as f:
        for s in ("scene0001", "scene0002"): f[s] = np.full((2, 1, 8, 16), 0.1, np.float32)
    with h5py.File(o / "seg.h5", "w") as f:
        for s in ("scene0001", "scene0002"):
            d = f.create_dataset(s, (60,), dtype=h5py.vlen_dtype(np.uint8))
            for k in range(60): d[k] = _png(lab)
    (o / "tr_ids.txt").write_text("scene0001\n"); (o / "val_ids.txt").write_text("scene0002\nscene0002\n")
    (o / "te_ids.txt").write_text("scene0002\nscene0004\n")     # scene0004: listed but absent; scene0003 in no list
    ds = st.load_oap(tmp_path, size=8)
    assert len(ds) == 6 and ds.features.shape == (6, 8, 8, 8)
    assert np.allclose(ds.depth, 10.0) and (ds.seg[:, :4] == st.SKY).all() and (ds.seg[:, 4:] == 0).all()
    assert ds.meta["t"].tolist()[:2] == [0.5, 1.5] and "val: repeated ids" in ds.source["notes"]
    assert ds.source["notes"]["missing scenes"] == ["scene0004"] and ds.source["notes"]["numbers in no list"] == [3]
    m = tmp_path / "mavd"; m.mkdir()
    keys = [f"d{d}/{t:04d}_0" for d in (1, 2, 3) for t in range(2)]
    with h5py.File(m / "audio.h5", "w") as A, h5py.File(m / "disp.h5", "w") as D, h5py.File(m / "seg.h5", "w") as Sg:
        for k in keys:
            A[k] = rng.standard_normal((8, 16000)).astype(np.float32) * 0.1
            D[k] = np.full((1, 8, 16), 0.05, np.float32); Sg[k] = _png(lab)
    for s in ("train", "val", "test"): (m / f"{s}_all.txt").write_text("\n".join(keys) + "\n")
    ds = st.load_mavd(tmp_path, size=8)
    assert len(ds) == 18 and np.allclose(ds.depth, 20.0) and ds.source["notes"]["test keys also in train"] == 6
    by = st.load_mavd(tmp_path, size=8, split="by_drive")
    drives = {s: set(by.meta["drive"][by.split == s]) for s in ("train", "val", "test")}
    assert not (drives["train"] & drives["test"]) and len(by) == 6


BLOCKED = """
import sys, importlib.abc, importlib.machinery
class Refuse(importlib.abc.Loader):           # found (torch only probes with find_spec) but never importable
    def create_module(self, spec): raise ImportError('blocked: ' + spec.name)
    def exec_module(self, module): raise ImportError('blocked')
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('librosa', 'scipy', 'sklearn', 'h5py'): return importlib.machinery.ModuleSpec(name, Refuse())
sys.meta_path.insert(0, Block())
import numpy as np, torch
from paperlib.manifold import street, vqvae, atnet
from paperlib.train import TrainConfig, fit
ds = street.simulate(street.OAP_LIKE, {'train': 4}, 16)
m = vqvae.VQVAE('depth', 16, 4)
h = fit(m, vqvae.step_vq, vqvae.map_arrays('depth', ds.depth, ds.seg), TrainConfig(epochs=1, batch_size=4))
z = vqvae.encode_maps(m, 'depth', ds.depth, ds.seg)
a = atnet.ATNet(4)
h2 = fit(a, atnet.step_latent, {'x': ds.features, 'z': z}, TrainConfig(epochs=1, batch_size=4))
d = atnet.with_modality(atnet.DirectUNet(2, 'both'), 'depth')
arr = {'x': ds.features[:, :2], **vqvae.map_arrays('depth', ds.depth, ds.seg), **vqvae.map_arrays('seg', ds.depth, ds.seg)}
h3 = fit(d, atnet.step_pixels, arr, TrainConfig(epochs=1, batch_size=4))
assert atnet.predict_maps('pixels', d, 'seg', ds.features[:, :2]).shape == (4, 16, 16)
print('ok', np.isfinite(h['loss'][0]), np.isfinite(h2['loss'][0]), [m for m in ('librosa', 'scipy', 'sklearn', 'h5py') if m in sys.modules])
"""


def test_training_path_without_librosa_scipy_sklearn_h5py():
    r = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("ok True True []")


def test_audio_model_builders_are_seeded_and_picklable():
    import pickle
    from functools import partial
    from paperlib.core import ConfigError
    build = partial(at.audio_model, "direct", 3, 2, "seg", modality="seg")     # what 42 sends to in_parallel's workers
    a, b = build(), pickle.loads(pickle.dumps(build))()
    assert isinstance(a, at.DirectUNet) and a.modality == "seg"
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))      # same seed, same weights
    other = at.audio_model("direct", 4, 2, "seg")
    assert not torch.equal(a.out.weight, other.out.weight)
    with pytest.raises(ConfigError, match="audio model"):
        at.audio_model("unet", 0)
