"""Tests of paperlib.backbones: the state-dict keys and shapes are exactly torchvision's, parameter counts are the
published ones, and load_weights round-trips, fails clearly and adapts the first convolution."""
import pytest
import torch
from torch import nn

from paperlib.backbones import (TORCHVISION_PARAMETERS, VGG19, VGG19_LAYERS, BasicBlock, ResNet18, load_weights,
                                parameter_count)
from paperlib.core import ConfigError

# ---------------------------------------------------------------- the expected state dicts, written out
# Derived from torchvision's architecture definitions (https://github.com/pytorch/vision):
#   torchvision/models/vgg.py    : VGG(make_layers(cfgs["E"])) -> `features` = Conv2d(k=3, p=1) + ReLU per int of cfg E
#                                  (64, 64, M, 128, 128, M, 256 x4, M, 512 x4, M, 512 x4, M), MaxPool2d per M;
#                                  avgpool = AdaptiveAvgPool2d((7, 7)); classifier = Linear(25088, 4096), ReLU, Dropout,
#                                  Linear(4096, 4096), ReLU, Dropout, Linear(4096, num_classes).
#   torchvision/models/resnet.py : ResNet(BasicBlock, [2, 2, 2, 2]) -> conv1 (7x7, s2, no bias), bn1, relu, maxpool,
#                                  layer1-4 of BasicBlock(conv1, bn1, relu, conv2, bn2, downsample), avgpool, fc.
# Order is registration order, as in torchvision's state_dict().

VGG19_EXPECTED = [
    ("features.0.weight", (64, 3, 3, 3)), ("features.0.bias", (64,)),
    ("features.2.weight", (64, 64, 3, 3)), ("features.2.bias", (64,)),
    ("features.5.weight", (128, 64, 3, 3)), ("features.5.bias", (128,)),
    ("features.7.weight", (128, 128, 3, 3)), ("features.7.bias", (128,)),
    ("features.10.weight", (256, 128, 3, 3)), ("features.10.bias", (256,)),
    ("features.12.weight", (256, 256, 3, 3)), ("features.12.bias", (256,)),
    ("features.14.weight", (256, 256, 3, 3)), ("features.14.bias", (256,)),
    ("features.16.weight", (256, 256, 3, 3)), ("features.16.bias", (256,)),
    ("features.19.weight", (512, 256, 3, 3)), ("features.19.bias", (512,)),
    ("features.21.weight", (512, 512, 3, 3)), ("features.21.bias", (512,)),
    ("features.23.weight", (512, 512, 3, 3)), ("features.23.bias", (512,)),
    ("features.25.weight", (512, 512, 3, 3)), ("features.25.bias", (512,)),
    ("features.28.weight", (512, 512, 3, 3)), ("features.28.bias", (512,)),
    ("features.30.weight", (512, 512, 3, 3)), ("features.30.bias", (512,)),
    ("features.32.weight", (512, 512, 3, 3)), ("features.32.bias", (512,)),
    ("features.34.weight", (512, 512, 3, 3)), ("features.34.bias", (512,)),
    ("classifier.0.weight", (4096, 25088)), ("classifier.0.bias", (4096,)),
    ("classifier.3.weight", (4096, 4096)), ("classifier.3.bias", (4096,)),
    ("classifier.6.weight", (1000, 4096)), ("classifier.6.bias", (1000,)),
]


def _bn(prefix, c):
    "The five state-dict entries of a BatchNorm2d(c)."
    return [(f"{prefix}.weight", (c,)), (f"{prefix}.bias", (c,)), (f"{prefix}.running_mean", (c,)),
            (f"{prefix}.running_var", (c,)), (f"{prefix}.num_batches_tracked", ())]


RESNET18_EXPECTED = (
    [("conv1.weight", (64, 3, 7, 7))] + _bn("bn1", 64)
    # layer1: 64 -> 64, stride 1, no downsample
    + [("layer1.0.conv1.weight", (64, 64, 3, 3))] + _bn("layer1.0.bn1", 64)
    + [("layer1.0.conv2.weight", (64, 64, 3, 3))] + _bn("layer1.0.bn2", 64)
    + [("layer1.1.conv1.weight", (64, 64, 3, 3))] + _bn("layer1.1.bn1", 64)
    + [("layer1.1.conv2.weight", (64, 64, 3, 3))] + _bn("layer1.1.bn2", 64)
    # layer2: 64 -> 128, stride 2, 1x1 downsample
    + [("layer2.0.conv1.weight", (128, 64, 3, 3))] + _bn("layer2.0.bn1", 128)
    + [("layer2.0.conv2.weight", (128, 128, 3, 3))] + _bn("layer2.0.bn2", 128)
    + [("layer2.0.downsample.0.weight", (128, 64, 1, 1))] + _bn("layer2.0.downsample.1", 128)
    + [("layer2.1.conv1.weight", (128, 128, 3, 3))] + _bn("layer2.1.bn1", 128)
    + [("layer2.1.conv2.weight", (128, 128, 3, 3))] + _bn("layer2.1.bn2", 128)
    # layer3: 128 -> 256
    + [("layer3.0.conv1.weight", (256, 128, 3, 3))] + _bn("layer3.0.bn1", 256)
    + [("layer3.0.conv2.weight", (256, 256, 3, 3))] + _bn("layer3.0.bn2", 256)
    + [("layer3.0.downsample.0.weight", (256, 128, 1, 1))] + _bn("layer3.0.downsample.1", 256)
    + [("layer3.1.conv1.weight", (256, 256, 3, 3))] + _bn("layer3.1.bn1", 256)
    + [("layer3.1.conv2.weight", (256, 256, 3, 3))] + _bn("layer3.1.bn2", 256)
    # layer4: 256 -> 512
    + [("layer4.0.conv1.weight", (512, 256, 3, 3))] + _bn("layer4.0.bn1", 512)
    + [("layer4.0.conv2.weight", (512, 512, 3, 3))] + _bn("layer4.0.bn2", 512)
    + [("layer4.0.downsample.0.weight", (512, 256, 1, 1))] + _bn("layer4.0.downsample.1", 512)
    + [("layer4.1.conv1.weight", (512, 512, 3, 3))] + _bn("layer4.1.bn1", 512)
    + [("layer4.1.conv2.weight", (512, 512, 3, 3))] + _bn("layer4.1.bn2", 512)
    + [("fc.weight", (1000, 512)), ("fc.bias", (1000,))]
)


def _keys_shapes(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return VGG19().eval()          # built once: 143 M parameters take seconds


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return ResNet18().eval()


# ---------------------------------------------------------------- architecture

def test_vgg19_state_dict_is_torchvisions(vgg):
    assert _keys_shapes(vgg) == VGG19_EXPECTED
    assert isinstance(vgg.avgpool, nn.AdaptiveAvgPool2d) and vgg.avgpool.output_size == (7, 7)
    assert len(vgg.features) == 37 and len(vgg.classifier) == 7 and len(VGG19_LAYERS) == 37
    assert VGG19_LAYERS[0] == "conv1_1" and VGG19_LAYERS[34] == "conv5_4" and VGG19_LAYERS[36] == "pool5"


def test_resnet18_state_dict_is_torchvisions(resnet):
    assert _keys_shapes(resnet) == RESNET18_EXPECTED
    assert resnet.state_dict()["bn1.num_batches_tracked"].dtype == torch.long


def test_parameter_counts_are_the_published_ones(vgg, resnet):
    assert parameter_count(vgg) == TORCHVISION_PARAMETERS["VGG-19"] == 143_667_240
    assert parameter_count(resnet) == TORCHVISION_PARAMETERS["ResNet-18"] == 11_689_512
    r = ResNet18()
    for p in r.parameters(): p.requires_grad_(False)
    r.fc.weight.requires_grad_(True)
    assert parameter_count(r, trainable_only=True) == 512 * 1000


@pytest.mark.parametrize("in_channels, num_classes", [(8, 10), (1, 1000)])
def test_in_channels_and_num_classes_change_only_first_and_last_layer(in_channels, num_classes):
    exp = dict(RESNET18_EXPECTED)
    exp["conv1.weight"] = (64, in_channels, 7, 7)
    exp["fc.weight"], exp["fc.bias"] = (num_classes, 512), (num_classes,)
    assert _keys_shapes(ResNet18(in_channels=in_channels, num_classes=num_classes)) == list(exp.items())
    v = VGG19(in_channels=in_channels, num_classes=num_classes, init_weights=False)   # no init: shapes only
    exp = dict(VGG19_EXPECTED)
    exp["features.0.weight"] = (64, in_channels, 3, 3)
    exp["classifier.6.weight"], exp["classifier.6.bias"] = (num_classes, 4096), (num_classes,)
    assert _keys_shapes(v) == list(exp.items())
    assert parameter_count(v) == 143_667_240 + (in_channels - 3) * 64 * 9 + (num_classes - 1000) * 4097


def test_bad_options_raise_config_error():
    with pytest.raises(ConfigError, match="in_channels"):
        ResNet18(in_channels=0)
    with pytest.raises(ConfigError, match="num_classes"):
        VGG19(num_classes=2.5, init_weights=False)


def test_forward_passes_and_feature_maps(vgg, resnet):
    x = torch.randn(1, 3, 32, 32)                       # VGG-19 at 32x32: pool5 is 1x1 (small input for speed)
    with torch.no_grad():
        stages = vgg.forward_stages(x)
        assert {k: tuple(v.shape) for k, v in stages.items()} == {
            "pool1": (1, 64, 16, 16), "pool2": (1, 128, 8, 8), "pool3": (1, 256, 4, 4),
            "pool4": (1, 512, 2, 2), "pool5": (1, 512, 1, 1)}
        assert torch.equal(stages["pool5"], vgg.forward_features(x))
        emb = vgg.embed(x)
        assert emb.shape == (1, 4096) and (emb >= 0).all()
        logits = vgg(x)
        assert logits.shape == (1, 1000) and torch.allclose(logits, vgg.classifier[6](emb), atol=1e-6)
        named = vgg.forward_stages(x, names=["conv1_1", "relu1_1"])
        assert (named["conv1_1"] < 0).any() and (named["relu1_1"] >= 0).all()   # the conv output kept before the ReLU
        assert torch.equal(named["relu1_1"], named["conv1_1"].clamp(min=0))
        with pytest.raises(ConfigError, match="conv6_1"):
            vgg.forward_stages(x, names=["conv6_1"])
        x = torch.randn(2, 3, 64, 64)
        st = resnet.forward_stages(x)
        assert {k: tuple(v.shape) for k, v in st.items()} == {
            "stem": (2, 64, 16, 16), "layer1": (2, 64, 16, 16), "layer2": (2, 128, 8, 8),
            "layer3": (2, 256, 4, 4), "layer4": (2, 512, 2, 2)}
        assert torch.equal(resnet.forward_features(x), st["layer4"])
        emb = resnet.embed(x)
        assert emb.shape == (2, 512)
        assert torch.allclose(resnet.fc(emb), resnet(x)) and resnet(x).shape == (2, 1000)


def test_eight_channel_resnet_forward_and_backward():
    torch.manual_seed(0)
    net = ResNet18(in_channels=8, num_classes=10)
    out = net(torch.randn(2, 8, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert net.conv1.weight.grad.shape == (64, 8, 7, 7)


def test_basic_block_shortcut():
    assert BasicBlock(64, 64).downsample is None
    b = BasicBlock(64, 128, stride=2).eval()
    assert b(torch.randn(1, 64, 9, 9)).shape == (1, 128, 5, 5)


# ---------------------------------------------------------------- load_weights

def test_load_weights_round_trip_through_a_file(resnet, tmp_path):
    f = tmp_path / "resnet18.pth"
    with torch.no_grad():                   # non-trivial running statistics, so that the buffers matter too
        resnet.bn1.running_mean.uniform_(-1, 1); resnet.bn1.num_batches_tracked.fill_(7)
    torch.save(resnet.state_dict(), f)
    torch.manual_seed(1)
    fresh = ResNet18().eval()
    assert load_weights(fresh, f) is fresh
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fresh(x), resnet(x))
    assert fresh.bn1.num_batches_tracked.item() == 7


def test_load_weights_vgg_from_a_mapping(vgg):
    fresh = load_weights(VGG19(init_weights=False).eval(), vgg.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fresh(x), vgg(x))


def test_old_checkpoints_without_num_batches_tracked_load(resnet):
    sd = {k: v for k, v in resnet.state_dict().items() if not k.endswith("num_batches_tracked")}
    fresh = load_weights(ResNet18().eval(), sd)
    assert fresh.bn1.num_batches_tracked.item() == 0
    assert torch.equal(fresh.bn1.running_var, resnet.bn1.running_var)


def test_wrong_key_is_a_strict_error_naming_it(resnet):
    sd = dict(resnet.state_dict())
    sd["fc.weights"] = sd.pop("fc.weight")
    with pytest.raises(ConfigError) as e:
        load_weights(ResNet18(), sd)
    msg = str(e.value)
    assert "missing" in msg and "fc.weight" in msg and "not in the model" in msg and "fc.weights" in msg
    assert "How to fix" in msg


def test_data_parallel_prefix_is_explained(resnet):
    sd = {f"module.{k}": v for k, v in resnet.state_dict().items()}
    with pytest.raises(ConfigError, match="module."):
        load_weights(ResNet18(), sd)


def test_in_channels_mismatch_says_so_and_mean_adaptation_fixes_it(resnet, tmp_path):
    f = tmp_path / "rgb.pth"
    torch.save(resnet.state_dict(), f)
    with pytest.raises(ConfigError) as e:
        load_weights(ResNet18(in_channels=8), f)
    msg = str(e.value)
    assert "in_channels differs" in msg and "conv1.weight (64, 3, 7, 7) vs (64, 8, 7, 7)" in msg
    assert "adapt_first_conv='mean'" in msg and "in_channels=3" in msg
    eight = load_weights(ResNet18(in_channels=8).eval(), f, adapt_first_conv="mean")
    mean = resnet.conv1.weight.detach().mean(1, keepdim=True)
    assert torch.allclose(eight.conv1.weight, mean.expand(-1, 8, -1, -1))
    assert torch.equal(eight.layer3[1].conv2.weight, resnet.layer3[1].conv2.weight)
    scaled = load_weights(ResNet18(in_channels=8).eval(), f, adapt_first_conv="scaled_mean")
    assert torch.allclose(scaled.conv1.weight, mean.expand(-1, 8, -1, -1) * 3 / 8)
    # a grey image copied on all channels: scaled_mean keeps the first layer's response of the RGB model
    grey = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(scaled.conv1(grey.expand(-1, 8, -1, -1)), resnet.conv1(grey.expand(-1, 3, -1, -1)), atol=1e-5)
        assert scaled(grey.expand(-1, 8, -1, -1)).shape == (1, 1000)
    one = load_weights(ResNet18(in_channels=1), f, adapt_first_conv="mean")   # 1-channel spectrogram
    assert one.conv1.weight.shape == (64, 1, 7, 7)


def test_vgg_first_conv_adaptation(vgg):
    v8 = load_weights(VGG19(in_channels=8, init_weights=False).eval(), vgg.state_dict(), adapt_first_conv="mean")
    assert torch.allclose(v8.features[0].weight, vgg.features[0].weight.mean(1, keepdim=True).expand(-1, 8, -1, -1))
    with torch.no_grad():
        assert v8(torch.randn(1, 8, 32, 32)).shape == (1, 1000)


def test_num_classes_mismatch_says_so(resnet):
    with pytest.raises(ConfigError, match=r"num_classes differs.*1000 outputs, the model 10"):
        load_weights(ResNet18(num_classes=10), resnet.state_dict())


def test_unreadable_or_missing_files(tmp_path, resnet):
    with pytest.raises(ConfigError, match="does not exist"):
        load_weights(ResNet18(), tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="could not read"):
        load_weights(ResNet18(), bad)
    ckpt = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": resnet.state_dict()}, ckpt)
    with pytest.raises(ConfigError, match="training checkpoint"):
        load_weights(ResNet18(), ckpt)
    with pytest.raises(ConfigError, match="adapt_first_conv"):
        load_weights(ResNet18(), resnet.state_dict(), adapt_first_conv="sum")
