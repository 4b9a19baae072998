"""TransformerNet for inference: the same function, its full-resolution tail in space-to-depth form.

The network's last two layers run at full resolution:
    nearest x2 -> reflect pad 1 -> 3x3 conv (2c -> c) -> instance norm -> ReLU -> reflect pad 4 -> 9x9 conv (c -> 3)
Run as written, ONNX Runtime and eager PyTorch spend most of the network's time there moving
full-resolution tensors (the upsampled 2c-channel copy and two padded copies: about 280 MB at
1024x1024, written once and touched for the first time in a fresh process), and the 9x9 conv with
only 3 output channels wastes most of each vectorised output block. At 1024x1024 the first run in a
process drops from about 0.68 s to 0.47 s in ONNX Runtime on this project's 2-core build machine.

Here the full-resolution tensor (N, c, 2h, 2w) is kept as its space-to-depth form (N, 4c, h, w):
channel 4k + 2i + j holds pixels (2y + i, 2x + j) of channel k (torch.pixel_unshuffle's order).
- Upsample + conv: one 3x3 conv over the edge-padded half-resolution input with 4c outputs, one
  set per output phase (i, j). Nearest copies become sums of kernel taps; reflect-padding a
  nearest-upsampled image by 1 px equals edge-padding it before upsampling.
- Instance norm: on the reshape (N, c, 4h, w), which groups each channel's four phases: the same
  statistics, the same affine parameters (a collection's StyleNorm too: per channel).
- 9x9 conv: a 5x5 conv from 4c to 4*3 channels over the same form, then depth-to-space. It needs no
  padding: the network crops BORDER_MARGIN = 16 px from every side anyway, so the 4 px its kept
  outputs read beyond them are real pixels of the tensor; the margin's outer 12 px are skipped.
The result equals TransformerNet's to float rounding (about 1e-6 on the [0, 1] scale; tested).
Weights are rearranged, never retrained: any trained model works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fst.transformer import BORDER_MARGIN, TransformerNet, reflect_margin, set_style


def upsample_conv_weight(w: torch.Tensor) -> torch.Tensor:
    """(O, C, 3, 3) conv run after nearest x2 and reflect pad 1 -> (4*O, C, 3, 3) conv over the
    edge-padded low-resolution input; output channel 4o + 2i + j is phase (i, j) of channel o."""
    o, c = w.shape[:2]
    k = w.new_zeros(o, 2, 2, c, 3, 3)
    for i in range(2):
        for j in range(2):
            for a in range(3):
                for b in range(3):
                    # full-res row 2y + i + a - 1 is low-res row y + (i + a - 1) // 2
                    k[:, i, j, :, (i + a - 1) // 2 + 1, (j + b - 1) // 2 + 1] += w[:, :, a, b]
    return k.reshape(4 * o, c, 3, 3)


def space_to_depth_conv_weight(w: torch.Tensor) -> torch.Tensor:
    """(O, C, K, K) stride-1 conv, K odd -> (4*O, 4*C, (K+1)/2, (K+1)/2) conv that maps the
    space-to-depth form of its input to the space-to-depth form of its output."""
    o, c, size = w.shape[0], w.shape[1], w.shape[2]
    taps = (size + 1) // 2
    k = w.new_zeros(o, 2, 2, c, 2, 2, taps, taps)  # out phase (i, j), in phase (s, t), offset (p, q)
    for i in range(2):
        for j in range(2):
            for s in range(2):
                for t in range(2):
                    for p in range(taps):
                        for q in range(taps):
                            # full-res tap a reads row 2y + i + a = 2(y + p) + s
                            a, b = 2 * p + s - i, 2 * q + t - j
                            if 0 <= a < size and 0 <= b < size:
                                k[:, i, j, :, s, t, p, q] = w[:, :, a, b]
    return k.reshape(4 * o, 4 * c, taps, taps)


def _conv(weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], device=weight.device, dtype=weight.dtype)
    conv.weight.data.copy_(weight)
    conv.bias.data.copy_(bias)
    return conv


class SpaceToDepthTail(nn.Module):
    """The last Upsample block and the 9x9 output conv: (N, 2c, h, w) half-resolution features ->
    (N, 3, 2h - 2m, 2w - 2m) pre-sigmoid output, BORDER_MARGIN m already cropped."""

    def __init__(self, upsample: nn.Module, output: nn.Sequential):
        super().__init__()
        up_conv, self.norm = upsample.conv[0][1], upsample.conv[1]
        self.channels = up_conv.out_channels
        self.up = _conv(upsample_conv_weight(up_conv.weight.data), up_conv.bias.data.repeat_interleave(4))
        out_conv = output[1]
        self.out = _conv(space_to_depth_conv_weight(out_conv.weight.data), out_conv.bias.data.repeat_interleave(4))
        self.skip = (BORDER_MARGIN - out_conv.kernel_size[0] // 2) // 2  # 16 - 4 full-res px = 6 here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(F.pad(x, (1, 1, 1, 1), mode="replicate"))  # (N, 4c, h, w)
        n, _, h, w = y.shape
        y = self.norm(y.reshape(n, self.channels, 4 * h, w)).reshape(n, 4 * self.channels, h, w).relu()
        s = self.skip
        return F.pixel_shuffle(self.out(y[..., s : h - s, s : w - s]), 2)


class InferenceNet(nn.Module):
    """A trained TransformerNet, same input and output (RGB [0, 1], any H, W >= MIN_SIDE), faster."""

    def __init__(self, net: TransformerNet):
        super().__init__()
        self.encoder, self.residuals = net.encoder, net.residuals
        self.upsample = net.decoder[0]
        self.tail = SpaceToDepthTail(net.decoder[1], net.decoder[2])

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """As TransformerNet.forward (style: a collection's style weights)."""
        set_style(self, style)
        h, w = x.shape[-2], x.shape[-1]
        y = self.upsample(self.residuals(self.encoder(reflect_margin(x))))
        return torch.sigmoid(self.tail(y)[..., :h, :w])


def for_inference(net: TransformerNet) -> InferenceNet:
    return InferenceNet(net).eval()
