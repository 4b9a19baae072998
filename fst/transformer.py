"""Johnson et al.'s image transformation network.

    9x9 conv (c) -> 3x3 conv stride 2 (2c) -> 3x3 conv stride 2 (4c) -> R residual blocks (4c)
    -> nearest x2 + 3x3 conv (2c) -> nearest x2 + 3x3 conv (c) -> 9x9 conv (3) -> sigmoid

Reflection padding everywhere, instance norm (affine, no running statistics) after every conv but
the last, nearest-neighbour upsampling then conv (no transposed conv: no checkerboard).
Johnson's widths are c=32, R=5; fst's default is slimmer (see DEFAULT_CHANNELS). Inference (ONNX
export, --backend torch) runs the same function rearranged: fst.subpixel.

Input and output: RGB in [0, 1], shape (N, 3, H, W), any H, W >= 19: the input is reflect-padded by
16 px on every side (the network's own border behaviour then falls outside the picture) and up to
a multiple of 4 (the two stride-2 stages), and the output cropped back, inside forward, so the
ONNX graph does the same. Training pads 8 px (TRAINING_MARGIN): 11-19 % fewer pixels at 256-128 px
crops; what the network learns to do at that nearer edge is cropped away at inference.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from fst import FstError
from fst.config import DEFAULT_CHANNELS, DEFAULT_RES_BLOCKS, JOHNSON_CHANNELS  # noqa: F401 (re-exported)
# Reflected pixels added on each side in forward, cropped from the output. Networks learn to paint
# differently within ~16 px of the padded edge (great_wave: a pale wash over the top rows); at 16 px
# of margin that falls outside the picture: tests/test_shipped.py's edge measure, 0.073 at 8 px
# and 0.029 at 16 for the classics' great_wave. It costs 3 % more pixels at 1024x1024.
BORDER_MARGIN = 16
TRAINING_MARGIN = 8  # fst train's (train_step): its time-to-quality figures were measured with it
MIN_SIDE = 19  # reflection padding (16 + up to 3 px) must stay below the side: 18 fails


def reflect_margin(x: torch.Tensor, m: int = BORDER_MARGIN) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H', W'): m reflected pixels on every side (whatever the network does
    at its own borders happens there and is cropped away), plus up to 3 px more at the bottom and
    right to reach a multiple of 4 (the two stride-2 stages)."""
    h, w = x.shape[-2], x.shape[-1]
    pad_h, pad_w = (4 - h % 4) % 4, (4 - w % 4) % 4
    return F.pad(x, (m, m + pad_w, m, m + pad_h), mode="reflect")


class ConvLayer(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


class OutputConv(ConvLayer):
    """The 9x9 conv to RGB, run in channels_last on the CPU: oneDNN's NCHW kernels for its 3 output
    channels are slow. Measured, forward + backward of this layer alone at batch 4, (16, 152, 152)
    in: 150 ms NCHW against 52 ms channels_last with AVX2 kernels, 106 against 74 ms with AVX-512
    (one thread); the same function (outputs equal to float rounding). The output is NCHW again."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":  # not measured elsewhere
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


class StyleNorm(nn.Module):
    """Conditional instance norm (Dumoulin et al. 2017): instance norm whose scale and shift are
    chosen by style. Each style owns one row of `scale` and `shift` (S, C); the network sets
    `weights` before each forward: (S,) for the whole batch or (N, S) per image. A one-hot row picks
    a style; other weights mix styles (interpolated parameters).

    maps=True also gives each style a C x C channel map (`map`, (S, C, C), zero: none), added to
    the affine output: y + (MAP_GAIN * map_s) y, a 1x1 convolution. The per-channel affine is a
    diagonal map; the full one lets a style added to a frozen collection recombine channels
    (README: Adding a style). Mixed like scale and shift."""

    MAP_GAIN = 0.1  # map is stored x10: at the norms' learning rate, Adam's steps on a C x C map are too large

    def __init__(self, channels: int, styles: int, maps: bool = False):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(styles, channels))
        self.shift = nn.Parameter(torch.zeros(styles, channels))
        self.map = nn.Parameter(torch.zeros(styles, channels, channels)) if maps else None
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.weights @ self.scale, self.weights @ self.shift  # (C,) or (N, C)
        if self.map is not None:
            return self._mapped(x, scale, shift)
        if scale.dim() == 1:  # one style (or mix) for the batch: instance norm's own affine (ONNX too)
            return F.instance_norm(x, weight=scale, bias=shift)
        return F.instance_norm(x) * scale[:, :, None, None] + shift[:, :, None, None]

    def _mapped(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """(I + gain * map) (scale * IN(x) + shift): for one style or mix a single 1x1 convolution of
        IN(x), weight (I + gain * map) * scale, bias (I + gain * map) @ shift (one pass in ONNX)."""
        c = self.map.shape[1]
        linear = torch.eye(c, device=x.device) + (self.weights @ self.map.flatten(1)).unflatten(-1, (c, c)) * self.MAP_GAIN
        if scale.dim() == 1:  # linear (C, C)
            weight, bias = linear * scale[None, :], linear @ shift
            return F.conv2d(F.instance_norm(x), weight[:, :, None, None].to(x.dtype), bias.to(x.dtype))
        y = F.instance_norm(x) * scale[:, :, None, None] + shift[:, :, None, None]  # linear (N, C, C): per image
        return torch.einsum("ncd,ndhw->nchw", linear.to(y.dtype), y)


def norm_layer(channels: int, styles: int, maps: bool = False) -> nn.Module:
    """Plain affine instance norm for a single-style network (styles == 0), else StyleNorm."""
    return StyleNorm(channels, styles, maps) if styles else nn.InstanceNorm2d(channels, affine=True)


def conv_norm_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, styles: int = 0,
                   maps: bool = False) -> nn.Sequential:
    return nn.Sequential(ConvLayer(c_in, c_out, kernel, stride), norm_layer(c_out, styles, maps), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """x + (conv, norm, relu, conv, norm)(x); maps: its norms' channel maps (StyleNorm), at the
    trunk's quarter resolution, where a C x C map costs 1/16 of C^2 per pixel of the picture."""

    def __init__(self, channels: int, styles: int = 0, maps: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            conv_norm_relu(channels, channels, 3, styles=styles, maps=maps),
            ConvLayer(channels, channels, 3),
            norm_layer(channels, styles, maps),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then conv + norm + relu."""

    def __init__(self, c_in: int, c_out: int, styles: int = 0):
        super().__init__()
        self.conv = conv_norm_relu(c_in, c_out, 3, styles=styles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TransformerNet(nn.Module):
    """styles == 0: a single-style network. styles == S > 0: a collection of S styles sharing every
    convolution (each style owns the scale and shift of every norm layer: StyleNorm; with
    style_maps, also a channel map in each residual block's norms)."""

    def __init__(self, channels: int = DEFAULT_CHANNELS, res_blocks: int = DEFAULT_RES_BLOCKS, styles: int = 0,
                 style_maps: bool = False):
        super().__init__()
        c, s = channels, styles
        if style_maps and not styles:
            raise FstError("style maps are a collection's (styles > 0)")
        self.channels, self.res_blocks, self.styles, self.style_maps = channels, res_blocks, styles, style_maps
        self.encoder = nn.Sequential(conv_norm_relu(3, c, 9, styles=s), conv_norm_relu(c, 2 * c, 3, 2, styles=s),
                                     conv_norm_relu(2 * c, 4 * c, 3, 2, styles=s))
        self.residuals = nn.Sequential(*[ResidualBlock(4 * c, s, style_maps) for _ in range(res_blocks)])
        self.decoder = nn.Sequential(Upsample(4 * c, 2 * c, s), Upsample(2 * c, c, s), OutputConv(c, 3, 9))

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None, margin: int = BORDER_MARGIN) -> torch.Tensor:
        """(N, 3, H, W) RGB [0, 1], H, W >= MIN_SIDE -> (N, 3, H, W) RGB [0, 1].
        style (collections only): style weights, (S,) for the batch or (N, S) per image.
        margin: reflected pixels around the input (a multiple of 4; training's is TRAINING_MARGIN)."""
        set_style(self, style)
        h, w, m = x.shape[-2], x.shape[-1], margin
        y = self.decoder(self.residuals(self.encoder(reflect_margin(x, m))))
        return torch.sigmoid(y[..., m : m + h, m : m + w])

    def architecture(self) -> dict:
        arch = {"channels": self.channels, "res_blocks": self.res_blocks}
        if self.style_maps:
            arch["style_maps"] = True
        return {**arch, "styles": self.styles} if self.styles else arch

    def shared_parameters(self) -> list[nn.Parameter]:
        """The convolutions' weights: everything but the styles' own norm parameters."""
        own = {id(p) for m in self.modules() if isinstance(m, StyleNorm) for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in own]


def set_style(net: nn.Module, style: torch.Tensor | None) -> None:
    """Hand the style weights to every StyleNorm of net (before its forward)."""
    norms = [m for m in net.modules() if isinstance(m, StyleNorm)]
    if norms and style is None:
        raise FstError("this network is a style collection: choose a style (style weights)")
    if style is not None and not norms:
        raise FstError("this network holds one style: it takes no style weights")
    for m in norms:
        m.weights = style.to(m.scale.dtype)


def one_hot(index: torch.Tensor | int, styles: int) -> torch.Tensor:
    """Style index (N,) or int -> weights (N, S) or (S,) that pick that style."""
    return F.one_hot(torch.as_tensor(index), styles).float()


def add_style_row(net: TransformerNet, like: int, maps: bool = True) -> TransformerNet:
    """The same collection with one more style (and style maps if it has them or `maps`): the new
    style's norm parameters started as a copy of style `like`'s, its maps at zero; every row of the
    others (their maps zero where the collection had none: the same function), and the
    convolutions, copied exactly."""
    grown = TransformerNet(net.channels, net.res_blocks, net.styles + 1, style_maps=maps or net.style_maps)
    state = net.state_dict()
    for key, value in list(state.items()):
        if key.endswith((".scale", ".shift")):
            state[key] = torch.cat([value, value[like : like + 1]])
        elif key.endswith(".map"):
            state[key] = torch.cat([value, torch.zeros_like(value[:1])])
    for key, value in grown.state_dict().items():
        state.setdefault(key, torch.zeros_like(value))  # maps of a collection that had none
    grown.load_state_dict(state)
    return grown


def one_style(net: TransformerNet, index: int) -> TransformerNet:
    """A collection's style `index` as a single-style network: the same convolutions, that style's
    norm row (scale, shift) as each instance norm's (weight, bias); the same function as the
    collection with one_hot(index)."""
    single = TransformerNet(net.channels, net.res_blocks)
    renamed = {".scale": ".weight", ".shift": ".bias"}
    state = {}
    for key, value in net.state_dict().items():
        suffix = key[key.rfind("."):]
        if suffix == ".map":  # a style added with its maps is not a single network's function
            if value[index].any():
                raise FstError(f"style {index} of this collection has channel maps (added with --add-style): "
                               "a single-style network has none; start from another of its styles")
            continue
        if suffix in renamed:
            key, value = key[: -len(suffix)] + renamed[suffix], value[index]
        state[key] = value.clone()
    single.load_state_dict(state)
    return single


def macs_per_pixel(channels: int, res_blocks: int) -> int:
    """Multiply-accumulates of the convolutions per pixel they run on (H, W multiples of 4; forward
    also runs them on its BORDER_MARGIN, 6 % more at 1024x1024)."""
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
        net = TransformerNet(arch["channels"], arch["res_blocks"], arch.get("styles", 0), arch.get("style_maps", False))
        # a checkpoint of an --ema run: its averaged weights, what the run evaluates and will save
        net.load_state_dict({k: v.float() for k, v in state.get("averaged", state["model"]).items()})
    except FstError:
        raise
    except Exception as e:
        raise FstError(f"{path}: not an fst model; a .pth is needed here (the model fst train writes; {type(e).__name__})") from None
    return net.to(device).eval(), state["meta"]
