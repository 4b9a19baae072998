"""Johnson et al.'s image transformation network.

    9x9 conv (c) -> 3x3 conv stride 2 (2c) -> 3x3 conv stride 2 (4c) -> R residual blocks (4c)
    -> nearest x2 + 3x3 conv (2c) -> nearest x2 + 3x3 conv (c) -> 9x9 conv (3) -> sigmoid

Reflection padding everywhere, instance norm (affine, no running statistics) after every conv but
the last, nearest-neighbour upsampling then conv (no transposed conv: no checkerboard).
Johnson's widths are c=32, R=5; fst's default is slimmer (see DEFAULT_CHANNELS). Inference (ONNX
export, --backend torch) runs the same function rearranged: fst.subpixel.

Input and output: RGB in [0, 1], shape (N, 3, H, W), any H, W >= 11: the input is reflect-padded by
8 px on every side (the network's own border behaviour then falls outside the picture) and up to
a multiple of 4 (the two stride-2 stages), and the output cropped back, inside forward, so the
ONNX graph does the same.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from fst import FstError
from fst.config import DEFAULT_CHANNELS, DEFAULT_RES_BLOCKS, JOHNSON_CHANNELS  # noqa: F401 (re-exported)
BORDER_MARGIN = 8  # reflected pixels added on each side in forward, cropped from the output
MIN_SIDE = 11  # reflection padding (8 + up to 3 px) must stay below the side: 10 fails


def reflect_margin(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H', W'): BORDER_MARGIN reflected pixels on every side (whatever the
    network does at its own borders happens there and is cropped away), plus up to 3 px more at
    the bottom and right to reach a multiple of 4 (the two stride-2 stages)."""
    h, w, m = x.shape[-2], x.shape[-1], BORDER_MARGIN
    pad_h, pad_w = (4 - h % 4) % 4, (4 - w % 4) % 4
    return F.pad(x, (m, m + pad_w, m, m + pad_h), mode="reflect")


class ConvLayer(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


def conv_norm_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        ConvLayer(c_in, c_out, kernel, stride), nn.InstanceNorm2d(c_out, affine=True), nn.ReLU(inplace=True)
    )


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_norm_relu(channels, channels, 3),
            ConvLayer(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then conv + norm + relu."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = conv_norm_relu(c_in, c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TransformerNet(nn.Module):
    def __init__(self, channels: int = DEFAULT_CHANNELS, res_blocks: int = DEFAULT_RES_BLOCKS):
        super().__init__()
        c = channels
        self.channels, self.res_blocks = channels, res_blocks
        self.encoder = nn.Sequential(conv_norm_relu(3, c, 9), conv_norm_relu(c, 2 * c, 3, 2), conv_norm_relu(2 * c, 4 * c, 3, 2))
        self.residuals = nn.Sequential(*[ResidualBlock(4 * c) for _ in range(res_blocks)])
        self.decoder = nn.Sequential(Upsample(4 * c, 2 * c), Upsample(2 * c, c), ConvLayer(c, 3, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB [0, 1], H, W >= MIN_SIDE -> (N, 3, H, W) RGB [0, 1]."""
        h, w, m = x.shape[-2], x.shape[-1], BORDER_MARGIN
        y = self.decoder(self.residuals(self.encoder(reflect_margin(x))))
        return torch.sigmoid(y[..., m : m + h, m : m + w])

    def architecture(self) -> dict:
        return {"channels": self.channels, "res_blocks": self.res_blocks}


def macs_per_pixel(channels: int, res_blocks: int) -> int:
    """Multiply-accumulates of the convolutions per pixel they run on (H, W multiples of 4; forward
    also runs them on its BORDER_MARGIN, 3 % more at 1024x1024)."""
    c = channels
    full, quarter, sixteenth = 1.0, 0.25, 1 / 16
    total = 9 * 9 * 3 * c * full  # 9x9 in
    total += 3 * 3 * c * 2 * c * quarter  # stride 2
    total += 3 * 3 * 2 * c * 4 * c * sixteenth  # stride 2
    total += res_blocks * 2 * 3 * 3 * (4 * c) ** 2 * sixteenth
    total += 3 * 3 * 4 * c * 2 * c * quarter  # up 1 (conv at 1/2 resolution)
    total += 3 * 3 * 2 * c * c * full  # up 2 (conv at full resolution)
    total += 9 * 9 * c * 3 * full  # 9x9 out
    return int(total)


def load_model(path: str, device="cpu") -> tuple[TransformerNet, dict]:
    """A final model or a training checkpoint -> (TransformerNet in eval mode, metadata)."""
    if not os.path.isfile(path):
        raise FstError(f"{path}: no such model file")
    if path.lower().endswith(".onnx"):
        raise FstError(f"{path}: an ONNX file; a .pth is needed here (the model fst train writes)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        arch = state["meta"]["architecture"]
        net = TransformerNet(arch["channels"], arch["res_blocks"])
        net.load_state_dict({k: v.float() for k, v in state["model"].items()})
    except FstError:
        raise
    except Exception as e:
        raise FstError(f"{path}: not an fst model; a .pth is needed here (the model fst train writes; {type(e).__name__})") from None
    return net.to(device).eval(), state["meta"]
