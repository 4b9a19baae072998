"""Arithmetic counts for GFLOP/s: multiply-accumulates of the convolutions (the rest, instance
norms, Grams and element-wise work, is a few per cent and left out). GFLOP/s = 2 MAC / s."""

from __future__ import annotations


def vgg_macs(height: int, width: int, last_layer: str) -> int:
    """One image through fst's VGG16 features from conv1_1 to `last_layer` (inclusive)."""
    from fst.vgg import LAYER_NAMES, _CFG

    macs, c_in, h, w, index = 0, 3, height, width, 0
    names = iter(LAYER_NAMES)
    for v in _CFG:
        if index > LAYER_NAMES.index(last_layer):
            break
        if v == "M":
            h, w = h // 2, w // 2
            next(names)
            index += 1
        else:
            macs += 9 * c_in * v * h * w
            c_in = v
            next(names), next(names)  # conv, relu
            index += 2
    return macs


def train_step_macs(transformer_macs: int, vgg_side: int, content_layer: str, batch: int) -> int:
    """One training step: the transformer forward and backward (3x its forward: output, input
    and weight gradients), the output through VGG to relu4_3 and back (2x: the weights are frozen,
    input gradients only), the content through VGG to `content_layer` (forward only)."""
    out = vgg_macs(vgg_side, vgg_side, "relu4_3")
    content = vgg_macs(vgg_side, vgg_side, content_layer)
    return batch * (3 * transformer_macs + 2 * out + content)


def fst_net_macs(channels: int, res_blocks: int, size: int, margin: int | None = None) -> int:
    """fst's TransformerNet on a size x size image: its margin included (BORDER_MARGIN each side,
    TRAINING_MARGIN in a training step, then up to a multiple of 4)."""
    from fst.transformer import BORDER_MARGIN, macs_per_pixel

    side = size + 2 * (BORDER_MARGIN if margin is None else margin)
    side += (4 - size % 4) % 4
    return macs_per_pixel(channels, res_blocks) * side * side


def pe_net_macs(size: int) -> int:
    """PE's TransformerNet (Johnson's layout at width 32, no margin) on a size x size image."""
    from fst.bench.baselines import PE_CHANNELS
    from fst.transformer import DEFAULT_RES_BLOCKS, macs_per_pixel

    return macs_per_pixel(PE_CHANNELS, DEFAULT_RES_BLOCKS) * size * size
