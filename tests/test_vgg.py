"""fst.vgg: the frozen VGG16 loss network with the real (Caffe-convention) weights."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from fst import FstError
from fst.images import load_image
from fst.losses import PerceptualLoss
from fst.vgg import ENV_WEIGHTS, LAYER_NAMES, file_sha256, load_loss_network

# Fingerprint of the Oxford VGG16 values (shared/weights/README.md): sums of conv1_1's weights
# and of conv5_3's biases, the same in any file holding them (e.g. one made by fst convert-vgg).
CONV1_1_WEIGHT_SUM, CONV1_1_WEIGHT_ABS_SUM, CONV5_3_BIAS_SUM = -4.212706642851117, 291.40991200292774, 76.73021603556117


def test_layer_names_follow_torchvision_indices():
    assert len(LAYER_NAMES) == 30
    assert LAYER_NAMES[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert LAYER_NAMES.index("conv2_1") == 5
    assert LAYER_NAMES.index("relu4_3") == 22 and LAYER_NAMES[-1] == "relu5_3"


@pytest.mark.caffe
def test_loads_the_real_caffe_weights(loss_network):
    assert loss_network.convention == "caffe"
    assert loss_network.identity == f"caffe:sha256:{file_sha256(os.environ[ENV_WEIGHTS])[:16]}"
    conv1_1, conv5_3 = loss_network.features[0], loss_network.features[LAYER_NAMES.index("conv5_3")]
    assert float(conv1_1.weight.double().sum()) == pytest.approx(CONV1_1_WEIGHT_SUM, rel=1e-9)
    assert float(conv1_1.weight.double().abs().sum()) == pytest.approx(CONV1_1_WEIGHT_ABS_SUM, rel=1e-9)
    assert float(conv5_3.bias.double().sum()) == pytest.approx(CONV5_3_BIAS_SUM, rel=1e-9)
    assert not any(p.requires_grad for p in loss_network.parameters())
    loss_network.train()
    assert not loss_network.training  # always frozen


def test_returns_exactly_the_requested_layers(loss_network):
    x = torch.rand(1, 3, 32, 48)
    wanted = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    with torch.no_grad():
        out = loss_network(x, wanted)
    assert set(out) == set(wanted)
    assert out["relu1_2"].shape == (1, 64, 32, 48)
    assert out["relu2_2"].shape == (1, 128, 16, 24)
    assert out["relu3_3"].shape == (1, 256, 8, 12)
    assert out["relu4_3"].shape == (1, 512, 4, 6)
    for value in out.values():
        assert value.min() >= 0 and value.max() > 0  # after a ReLU, and alive
    with torch.no_grad():
        conv = loss_network(x, ["conv5_3", "pool2"])
    assert conv["conv5_3"].shape == (1, 512, 2, 3) and conv["conv5_3"].min() < 0  # before its ReLU
    assert conv["pool2"].shape == (1, 128, 8, 12)


def test_unknown_layer_is_an_error(loss_network):
    with pytest.raises(FstError, match="relu6_1"):
        loss_network(torch.rand(1, 3, 16, 16), ["relu1_2", "relu6_1"])


def test_computes_only_as_deep_as_needed(loss_network):
    calls = []
    conv2_1 = loss_network.features[LAYER_NAMES.index("conv2_1")]
    conv1_2 = loss_network.features[LAYER_NAMES.index("conv1_2")]
    handles = [
        conv2_1.register_forward_hook(lambda *a: calls.append("conv2_1")),
        conv1_2.register_forward_hook(lambda *a: calls.append("conv1_2")),
    ]
    try:
        with torch.no_grad():
            loss_network(torch.rand(1, 3, 16, 16), ["relu1_2"])
        assert calls == ["conv1_2"]
        with torch.no_grad():
            loss_network(torch.rand(1, 3, 16, 16), ["relu2_2"])
        assert calls == ["conv1_2", "conv1_2", "conv2_1"]
    finally:
        for h in handles:
            h.remove()


def test_training_loss_runs_the_content_without_autograd(loss_network):
    """The content photo goes through VGG once, up to the content layer, outside autograd: the
    loss equals the optimize form (content features given), and no gradient reaches the content
    (batched with the output, its rows' gradient was computed and thrown away every step)."""
    from fst.losses import LossConfig, PerceptualLoss

    torch.manual_seed(0)
    criterion = PerceptualLoss(loss_network, [torch.rand(1, 3, 32, 32)], LossConfig())
    generated = torch.rand(2, 3, 24, 24, requires_grad=True)
    content = torch.rand(2, 3, 24, 24, requires_grad=True)
    terms = criterion(generated, content)
    given = criterion(generated, content_features=criterion.content_target(content))
    for name in ("content", "style", "tv", "total"):
        torch.testing.assert_close(terms[name], given[name], rtol=1e-5, atol=0)
    terms["total"].backward()
    assert content.grad is None
    assert generated.grad is not None and generated.grad.abs().sum() > 0


@pytest.mark.caffe
def test_caffe_preprocessing_is_bgr_255_minus_mean(loss_network):
    torch.manual_seed(1)
    x = torch.rand(2, 3, 10, 12)
    bgr = x[:, [2, 1, 0]] * 255.0 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    conv = loss_network.features[0]
    expected = F.conv2d(bgr, conv.weight, conv.bias, padding=1)
    with torch.no_grad():
        got = loss_network(x, ["conv1_1"])["conv1_1"]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-3)
    # and it is not the RGB order: the swap matters for these weights
    rgb = x * 255.0 - torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1)
    assert (F.conv2d(rgb, conv.weight, conv.bias, padding=1) - got).abs().max() > 1.0


def test_missing_weights_path_gives_a_clear_error(tmp_path):
    missing = str(tmp_path / "nowhere" / "vgg16.pth")
    with pytest.raises(FstError) as e:
        load_loss_network(missing)
    message = str(e.value)
    assert missing in message
    assert "--vgg-weights" in message and ENV_WEIGHTS in message and "torchvision" in message


def test_broken_weights_files_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(FstError, match="not a loadable VGG16 state_dict"):
        load_loss_network(str(junk))
    wrong = tmp_path / "wrong.pth"
    torch.save({"0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(FstError, match="do not fit VGG16"):
        load_loss_network(str(wrong))


def test_pretrained_weights_are_real(loss_network, photo_paths, style_path):
    """Random weights would not make a painting's style its own, and unlike a photo's."""
    style = torch.from_numpy(load_image(style_path, long_side=64).rgb)[None]
    photo = torch.from_numpy(load_image(photo_paths[0], long_side=64).rgb)[None]
    loss = PerceptualLoss(loss_network, [style])
    with torch.no_grad():
        own = float(loss.style_loss_per_image(style))
        other = float(loss.style_loss_per_image(photo))
    assert own < 1e-6
    # ~12 with the Oxford weights; randomly initialised VGG16 weights give ~1.3 here
    assert other > 5.0, other
    # features of a real photo and of noise are far apart, while a photo and its slight blur are close
    torch.manual_seed(2)
    noise = torch.rand_like(photo)
    blurred = F.avg_pool2d(F.pad(photo, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    with torch.no_grad():
        f_photo, f_noise, f_blur = (loss_network(x, ["relu3_3"])["relu3_3"] for x in (photo, noise, blurred))
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    assert rel(f_noise, f_photo) > 0.8
    assert rel(f_blur, f_photo) < 0.6 * rel(f_noise, f_photo)
    # the trained first layer's scale (~0.17; PyTorch's random init gives ~0.1)
    w = loss_network.features[0].weight
    assert w.shape == (64, 3, 3, 3)
    assert 0.13 < float(w.abs().mean()) < 0.3


def test_border_pad_keeps_shapes_and_interior(loss_network, photo_paths):
    x = torch.from_numpy(load_image(photo_paths[0], long_side=64).rgb)[None]
    plain = loss_network(x, ["relu1_2", "relu4_3"])
    padded = loss_network(x, ["relu1_2", "relu4_3"], pad=8)
    for name in plain:
        assert padded[name].shape == plain[name].shape
    # relu1_2 sees 5x5 pixels: 2 px in from the border, padding changes nothing...
    torch.testing.assert_close(padded["relu1_2"][..., 2:-2, 2:-2], plain["relu1_2"][..., 2:-2, 2:-2])
    # ...on the border, reflected pixels replace zeros
    assert (padded["relu1_2"][..., 0, :] - plain["relu1_2"][..., 0, :]).abs().max() > 1.0
    with pytest.raises(ValueError):
        loss_network(x, ["relu1_2"], pad=5)
