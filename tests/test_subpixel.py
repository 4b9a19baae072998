"""fst.subpixel: the inference form of TransformerNet computes the same function."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fst.subpixel import for_inference, space_to_depth_conv_weight, upsample_conv_weight
from fst.transformer import MIN_SIDE, TransformerNet


def _perturbed(channels: int, res_blocks: int, seed: int) -> TransformerNet:
    """Random weights, instance-norm affine parameters away from (1, 0): every weight matters."""
    torch.manual_seed(seed)
    net = TransformerNet(channels, res_blocks)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return net.eval()


@pytest.mark.parametrize("channels,res_blocks", [(16, 5), (32, 5), (8, 2)])
def test_inference_form_equals_the_network(channels, res_blocks):
    net = _perturbed(channels, res_blocks, seed=channels)
    fast = for_inference(net)
    sizes = [(MIN_SIDE, MIN_SIDE), (MIN_SIDE + 1, MIN_SIDE + 2), (33, 50), (64, 97), (130, 71)]
    with torch.no_grad():
        for h, w in sizes:
            x = torch.rand(2, 3, h, w)
            ref, out = net(x), fast(x)
            assert out.shape == ref.shape == x.shape
            assert float((out - ref).abs().max()) < 2e-5, (h, w)
            assert float((ref - ref.mean()).abs().max()) > 0.05  # not a flat output that hides errors


def test_weight_rearrangements_match_the_layers_they_replace():
    torch.manual_seed(1)
    x = torch.randn(1, 5, 10, 14)
    # nearest x2 + reflect pad 1 + 3x3 conv == 3x3 conv over the edge-padded input, then depth-to-space
    w = torch.randn(4, 5, 3, 3)
    ref = F.conv2d(F.pad(F.interpolate(x, scale_factor=2.0, mode="nearest"), (1, 1, 1, 1), mode="reflect"), w)
    out = F.pixel_shuffle(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), upsample_conv_weight(w)), 2)
    assert torch.allclose(out, ref, atol=1e-5)
    # a 9x9 valid conv == a 5x5 conv between space-to-depth forms
    w = torch.randn(3, 5, 9, 9)
    ref = F.conv2d(x, w)  # (1, 3, 2, 6)
    out = F.pixel_shuffle(F.conv2d(F.pixel_unshuffle(x, 2), space_to_depth_conv_weight(w)), 2)
    assert torch.allclose(out, ref, atol=1e-4)


def test_exported_graph_uses_the_inference_form():
    import onnx

    from fst.export import to_onnx_bytes

    graph = onnx.load_from_string(to_onnx_bytes(_perturbed(8, 1, seed=0))).graph
    ops = [n.op_type for n in graph.node]
    # one nearest upsample left (quarter -> half resolution); the full-resolution one is a conv
    # with 4x the outputs, followed with the 9x9 conv's 5x5 form, by one depth-to-space
    assert ops.count("Resize") == 1 and ops.count("DepthToSpace") == 1
    assert "SpaceToDepth" not in ops  # the full-resolution tensor is never rearranged
