"""fst.losses: the Gram matrix, each term, their normalisations and exact gradients."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fst import FstError
from fst.images import load_image
from fst.config import LossConfig, parse_style_layers
from fst.losses import PerceptualLoss, content_loss, gram_matrix, style_layer_loss, tv_loss


def test_gram_matrix_equals_explicit_loops():
    torch.manual_seed(0)
    f = torch.randn(2, 3, 4, 5)
    g = gram_matrix(f)
    assert g.shape == (2, 3, 3)
    expected = torch.zeros(2, 3, 3)
    for n in range(2):
        for k in range(3):
            for k2 in range(3):
                total = 0.0
                for i in range(4):
                    for j in range(5):
                        total += float(f[n, k, i, j]) * float(f[n, k2, i, j])
                expected[n, k, k2] = total / (3 * 4 * 5)
    torch.testing.assert_close(g, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g.transpose(1, 2), rtol=0, atol=0)
    # a Gram matrix is positive semi-definite
    assert torch.linalg.eigvalsh(g.double()).min() > -1e-6


def test_style_layer_loss_ignores_spatial_arrangement():
    torch.manual_seed(1)
    f = torch.rand(1, 16, 9, 11)
    target = gram_matrix(torch.rand(1, 16, 7, 7))[0]
    perm = torch.randperm(9 * 11)
    shuffled = f.reshape(1, 16, -1)[:, :, perm].reshape(1, 16, 9, 11)
    assert not torch.equal(shuffled, f)
    before = style_layer_loss(gram_matrix(f), target)
    after = style_layer_loss(gram_matrix(shuffled), target)
    assert before.shape == (1,) and float(before) > 1e-3
    torch.testing.assert_close(after, before, rtol=1e-4, atol=0)
    # while the content term does see the arrangement
    assert float(content_loss(shuffled, f)) > 0.1


def test_content_loss_zero_for_equal_and_positive_otherwise():
    torch.manual_seed(2)
    a = torch.rand(2, 8, 5, 5)
    assert float(content_loss(a, a.clone())) == 0.0
    b = a + 0.1 * torch.randn_like(a)
    value = float(content_loss(b, a))
    expected = float(((b - a) ** 2).mean() / (a**2).mean())
    assert value > 0 and value == pytest.approx(expected, rel=1e-5)


def test_style_layer_loss_is_relative_and_per_image():
    torch.manual_seed(3)
    target = gram_matrix(torch.rand(1, 4, 6, 6))[0]
    grams = torch.stack([target, 2 * target])  # the second image has twice the target's Gram
    losses = style_layer_loss(grams, target)
    assert losses.shape == (2,)
    assert float(losses[0]) == 0.0
    assert float(losses[1]) == pytest.approx(1.0, rel=1e-5)  # ||G - 2G||^2 / ||G||^2


def test_tv_loss_values():
    flat = torch.full((1, 3, 6, 7), 0.4)
    assert float(tv_loss(flat)) == 0.0
    stripes = torch.zeros(1, 3, 6, 7)
    stripes[..., ::2] = 1.0  # vertical stripes: every horizontal neighbour differs by 1
    assert float(tv_loss(stripes)) == pytest.approx(1.0)


@pytest.mark.parametrize("scale", [50.0, 1 / 50])
def test_terms_are_invariant_to_feature_scale(scale):
    """Caffe features are ~50x torchvision's: the normalised terms must not notice."""
    torch.manual_seed(4)
    gen, tgt = torch.rand(2, 8, 6, 6), torch.rand(2, 8, 6, 6)
    style_features = torch.rand(1, 8, 5, 5)
    c1 = content_loss(gen, tgt)
    c2 = content_loss(gen * scale, tgt * scale)
    torch.testing.assert_close(c2, c1, rtol=1e-5, atol=0)
    s1 = style_layer_loss(gram_matrix(gen), gram_matrix(style_features)[0])
    s2 = style_layer_loss(gram_matrix(gen * scale), gram_matrix(style_features * scale)[0])
    torch.testing.assert_close(s2, s1, rtol=1e-5, atol=0)
    assert float(c1) > 0.1 and float(s1.min()) > 0.01


def test_gram_normalisation_makes_tiling_invisible():
    torch.manual_seed(5)
    tile = torch.rand(1, 32, 6, 7)
    tiled = tile.repeat(1, 1, 2, 2)  # the same texture over four times the area
    torch.testing.assert_close(gram_matrix(tiled), gram_matrix(tile), rtol=1e-5, atol=1e-7)
    assert float(style_layer_loss(gram_matrix(tiled), gram_matrix(tile)[0])) < 1e-8
    # an unnormalised Gram would be 4x larger: the normalisation is what makes it size-free
    raw = lambda f: torch.einsum("nkhw,nlhw->nkl", f, f)  # noqa: E731
    torch.testing.assert_close(raw(tiled), 4 * raw(tile), rtol=1e-5, atol=1e-5)


def test_tiled_texture_has_the_style_of_its_tile(loss_network, style_path, photo_paths):
    """Through the real VGG: a 2x2 tiling of a texture has nearly the tile's style target."""
    tile = torch.from_numpy(load_image(style_path, size=(64, 64)).rgb)[None]
    tiled = tile.repeat(1, 1, 2, 2)
    zoomed = torch.nn.functional.interpolate(tile, scale_factor=2, mode="bilinear")  # same picture, 2x scale
    photo = torch.from_numpy(load_image(photo_paths[1], size=(128, 128)).rgb)[None]
    loss = PerceptualLoss(loss_network, [tile])
    assert float(loss.style_loss_per_image(tile)) < 1e-6
    tiled_loss, zoomed_loss, photo_loss = (float(loss.style_loss_per_image(x)) for x in (tiled, zoomed, photo))
    # only the seams differ: much closer than the same painting at another scale, or a photo
    assert tiled_loss < 0.5 * zoomed_loss and tiled_loss < 0.1 * photo_loss, (tiled_loss, zoomed_loss, photo_loss)


def test_batch_of_identical_images_gives_the_same_loss(loss_network, photo_paths, style_path):
    content = torch.from_numpy(load_image(photo_paths[1], size=(40, 32)).rgb)[None]
    style = torch.from_numpy(load_image(style_path, long_side=48).rgb)[None]
    torch.manual_seed(6)
    generated = (content + 0.1 * torch.randn_like(content)).clamp(0, 1)
    loss = PerceptualLoss(loss_network, [style])
    one = loss(generated, content=content)
    two = loss(generated.repeat(2, 1, 1, 1), content=content.repeat(2, 1, 1, 1))
    for key in ("content", "style", "tv", "total"):
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-7)
    assert float(one["content"]) > 0 and float(one["style"]) > 0 and float(one["tv"]) > 0
    # with precomputed content features (the optimize path) the content term is the same
    via_target = loss(generated, content_features=loss.content_target(content))
    torch.testing.assert_close(via_target["total"], one["total"], rtol=1e-5, atol=1e-7)
    per_image = loss.style_loss_per_image(torch.cat([generated, content]))
    assert per_image.shape == (2,)
    torch.testing.assert_close(per_image[0], one["style"], rtol=1e-5, atol=1e-7)


def test_weights_scale_their_terms(loss_network, photo_paths, style_path):
    content = torch.from_numpy(load_image(photo_paths[2], size=(32, 24)).rgb)[None]
    style = torch.from_numpy(load_image(style_path, long_side=32).rgb)[None]
    generated = content.flip(3)
    base = PerceptualLoss(loss_network, [style])(generated, content=content)
    heavy = PerceptualLoss(loss_network, [style], LossConfig(content_weight=3, style_weight=10, tv_weight=0))(
        generated, content=content
    )
    torch.testing.assert_close(heavy["content"], 3 * base["content"], rtol=1e-5, atol=0)
    torch.testing.assert_close(heavy["style"], 2 * base["style"], rtol=1e-5, atol=0)
    assert float(heavy["tv"]) == 0.0
    torch.testing.assert_close(heavy["total"], heavy["content"] + heavy["style"], rtol=1e-6, atol=0)


def test_style_blend_and_layer_options(loss_network, style_path, photo_paths):
    a = torch.from_numpy(load_image(style_path, long_side=32).rgb)[None]
    b = torch.from_numpy(load_image(photo_paths[0], long_side=32).rgb)[None]
    cfg = LossConfig(style_layers=parse_style_layers("relu1_2,relu2_2:3"))
    assert cfg.style_layers == {"relu1_2": 1.0, "relu2_2": 3.0}
    loss = PerceptualLoss(loss_network, [a, b], cfg, style_blend=[1, 3])
    assert loss.layer_weights == {"relu1_2": 0.25, "relu2_2": 0.75}
    pad = cfg.border_pad  # the loss network sees reflect-padded images, features cropped back
    ga = gram_matrix(loss_network(a, ["relu2_2"], pad=pad)["relu2_2"])[0]
    gb = gram_matrix(loss_network(b, ["relu2_2"], pad=pad)["relu2_2"])[0]
    torch.testing.assert_close(loss.target_grams["relu2_2"], 0.25 * ga + 0.75 * gb, rtol=1e-5, atol=1e-3)
    with pytest.raises(FstError, match="relu9_9"):
        PerceptualLoss(loss_network, [a], LossConfig(style_layers={"relu9_9": 1.0}))
    with pytest.raises(FstError, match="--style-layers: bad part .relu1_2:heavy."):
        parse_style_layers("relu1_2:heavy")


# ------------------------------------------------------------------ exact gradients (float64)


def test_gradcheck_of_each_term():
    torch.manual_seed(7)
    f = torch.rand(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    target_gram = gram_matrix(torch.rand(1, 3, 4, 4, dtype=torch.float64))[0]
    assert torch.autograd.gradcheck(gram_matrix, (f,))
    assert torch.autograd.gradcheck(lambda x: content_loss(x, target), (f,))
    assert torch.autograd.gradcheck(lambda x: style_layer_loss(gram_matrix(x), target_gram), (f,))
    assert torch.autograd.gradcheck(tv_loss, (f,))
    g = gram_matrix(f.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: style_layer_loss(x, target_gram), (g,))


def test_gram_backward_equals_autograd_of_the_plain_product():
    """fst's Gram runs one product in its backward ((dG + dG^T) F); autograd's own backward of
    F F^T runs two and adds them: the same gradient to float rounding, also for the cropped,
    non-contiguous activations the loss network hands over."""
    torch.manual_seed(11)
    features = torch.randn(3, 8, 20, 22)[..., 2:-2, 3:-3].requires_grad_(True)
    upstream = torch.randn(3, 8, 8)  # not symmetric: both halves of the formula matter
    (gram_matrix(features) * upstream).sum().backward()
    ours = features.grad.clone()
    features.grad = None
    flat = features.reshape(3, 8, -1)
    plain = torch.bmm(flat, flat.transpose(1, 2)) / flat[0].numel()
    torch.testing.assert_close(gram_matrix(features), plain, rtol=1e-6, atol=1e-7)
    (plain * upstream).sum().backward()
    assert float(ours.abs().max()) > 0.01
    torch.testing.assert_close(ours, features.grad, rtol=1e-5, atol=1e-6)


def test_bf16_loss_runs_vgg_channels_last_with_the_same_values(loss_network, photo_paths, style_path):
    """Under bf16 autocast on the CPU the loss hands VGG channels-last tensors (oneDNN's bf16
    kernels work in that layout; NCHW makes them reorder every tensor); float32 keeps NCHW. Same
    loss and gradient either way, to bf16 rounding: activations rounded to 8 significant bits
    (relative 2^-9) may round differently where the kernels sum in another order, so the terms (means
    over many rounded values) agree within 1 %, and the gradient, with its largest entry, within 3 %."""
    content = torch.from_numpy(load_image(photo_paths[0], size=(48, 40)).rgb)[None]
    style = torch.from_numpy(load_image(style_path, long_side=48).rgb)[None]
    bf16 = PerceptualLoss(loss_network, [style], amp_dtype=torch.bfloat16)
    assert bf16.channels_last(content) and not PerceptualLoss(loss_network, [style]).channels_last(content)
    seen = loss_network(content, ["relu1_2"], channels_last=True)["relu1_2"]
    assert seen.stride(1) == 1 and seen.shape == (1, 64, 40, 48)  # channels-last memory
    assert loss_network(content, ["relu1_2"])["relu1_2"].stride(-1) == 1  # NCHW

    def terms_and_grad(channels_last: bool):
        bf16.channels_last = lambda x: channels_last
        generated = content.clone().requires_grad_(True)
        terms = bf16(generated, content=(content * 0.9).clamp(0, 1))
        terms["total"].backward()
        return {k: float(v.detach()) for k, v in terms.items()}, generated.grad

    fast, fast_grad = terms_and_grad(True)
    plain, plain_grad = terms_and_grad(False)
    for key in ("content", "style", "total"):
        assert fast[key] > 0 and fast[key] == pytest.approx(plain[key], rel=0.01), key
    assert float((fast_grad - plain_grad).abs().max()) <= 0.03 * float(plain_grad.abs().max())


@pytest.fixture(scope="module")
def double_network(loss_network):
    """A float64 copy of the real network (the shared one stays float32)."""
    net = copy.deepcopy(loss_network).double()
    assert loss_network.features[0].weight.dtype == torch.float32
    return net


def test_gradcheck_of_the_full_perceptual_loss(double_network):
    torch.manual_seed(8)
    style = torch.rand(1, 3, 12, 12, dtype=torch.float64)
    content = torch.rand(1, 3, 12, 12, dtype=torch.float64)
    cfg = LossConfig(content_layer="relu1_2", style_layers={"relu1_2": 1.0, "relu2_2": 1.0})
    loss = PerceptualLoss(double_network, [style], cfg)
    assert loss.target_grams["relu2_2"].dtype == torch.float64
    generated = torch.rand(1, 3, 12, 12, dtype=torch.float64, requires_grad=True)

    def total(x):
        return loss(x, content=content)["total"]

    terms = loss(generated, content=content)
    assert all(v.dtype == torch.float64 for v in terms.values()), {k: v.dtype for k, v in terms.items()}
    assert all(float(terms[k].detach()) > 0 for k in ("content", "style", "tv"))
    assert torch.autograd.gradcheck(total, (generated,), eps=1e-6, atol=1e-5, rtol=1e-3)
    # the optimize path (precomputed content features) too, with the content term deeper
    cfg2 = LossConfig(content_layer="relu2_2", style_layers={"relu1_2": 1.0, "relu2_2": 2.0})
    loss2 = PerceptualLoss(double_network, [style], cfg2)
    target = loss2.content_target(content)
    assert torch.autograd.gradcheck(
        lambda x: loss2(x, content_features=target)["total"], (generated,), eps=1e-6, atol=1e-5, rtol=1e-3,
        fast_mode=True,  # a random directional derivative: the full Jacobian was checked above
    )


# ------------------------------------------------------------------ the style image's margin


def test_style_margin_removes_a_painting_frame_from_the_style_target(loss_network, style_path, tmp_path):
    """A scan with a light 8 px canvas edge: with the margin, its Gram targets are the unframed
    painting's; without it they differ (the edge's straight lines are style statistics)."""
    from PIL import Image

    painting = Image.open(style_path).convert("RGB").resize((184, 184))
    framed = Image.new("RGB", (200, 200), (235, 230, 215))
    framed.paste(painting, (8, 8))
    framed.save(tmp_path / "framed.png")
    painting.save(tmp_path / "plain.png")
    plain = load_image(tmp_path / "plain.png").rgb
    cut = load_image(tmp_path / "framed.png", margin=8 / 200).rgb  # 8 px off each side
    np.testing.assert_array_equal(cut, plain)
    assert load_image(tmp_path / "framed.png", long_side=92, margin=8 / 200).rgb.shape == (3, 92, 92)  # crop, then resize
    cfg = LossConfig(style_layers={"relu1_2": 1.0, "relu3_3": 1.0})
    grams = {name: PerceptualLoss(loss_network, [torch.from_numpy(img)[None]], cfg).target_grams
             for name, img in (("plain", plain), ("framed", load_image(tmp_path / "framed.png").rgb))}
    for layer in cfg.style_layers:
        distance = float((grams["framed"][layer] - grams["plain"][layer]).norm() / grams["plain"][layer].norm())
        assert distance > 0.02, (layer, distance)


def test_style_margin_is_recorded_and_old_records_mean_none():
    assert LossConfig().style_margin == 0.02 and LossConfig().as_dict()["style_margin"] == 0.02
    old = LossConfig().as_dict()
    del old["style_margin"]  # a model trained before the option existed used the whole painting
    assert LossConfig.from_dict(old).style_margin == 0.0
    assert LossConfig.from_dict(LossConfig(style_margin=0.1).as_dict()).style_margin == 0.1
