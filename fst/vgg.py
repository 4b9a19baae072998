"""The frozen VGG16 loss network (conv1_1 ... conv5_3), with each weight convention's preprocessing.

Callers always pass RGB in [0, 1], shape (N, 3, H, W). Two weight sources:

* caffe: the original Oxford VGG16 (what Johnson et al. used), a local state_dict keyed like
  torchvision's `vgg16().features` ("0.weight", "2.weight", ...). It expects BGR, 0..255, minus
  the mean (B 103.939, G 116.779, R 123.68), no std.
* torchvision: `VGG16_Weights.IMAGENET1K_V1`, downloaded and cached by torchvision (or a local copy
  of that file, keyed "features.0.weight", ...). It expects RGB in [0, 1], minus mean
  (0.485, 0.456, 0.406), divided by std (0.229, 0.224, 0.225).

Both are written here as   x' = (x[:, perm] - mean) / std   on the [0, 1] input. The two give
features of very different magnitude (Caffe's are ~50x larger); `fst.losses` normalises each
term by its target's energy so that the default loss weights mean the same for both.
"""

from __future__ import annotations

import hashlib
import os

import torch
import torch.nn.functional as F
from torch import nn

from fst import FstError

ENV_WEIGHTS = "FST_VGG_WEIGHTS"
TORCHVISION = "torchvision"  # the value of --vgg-weights / FST_VGG_WEIGHTS that selects IMAGENET1K_V1

# torchvision vgg16().features, index by index: conv/relu pairs and max-pools.
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
LAYER_NAMES: list[str] = []
for _block, _n in enumerate([2, 2, 3, 3, 3], start=1):
    for _i in range(1, _n + 1):
        LAYER_NAMES += [f"conv{_block}_{_i}", f"relu{_block}_{_i}"]
    if _block < 5:
        LAYER_NAMES.append(f"pool{_block}")

CONVENTIONS = {
    # (channel order applied to RGB input, mean, std) on the [0, 1] scale
    "caffe": ([2, 1, 0], [103.939 / 255, 116.779 / 255, 123.68 / 255], [1 / 255] * 3),
    "torchvision": ([0, 1, 2], [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


def _make_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=False)]
            c_in = v
    return nn.Sequential(*layers)


class LossNetwork(nn.Module):
    """Frozen VGG16 features returning several activations from one forward pass."""

    def __init__(self, state_dict: dict, convention: str, identity: str):
        super().__init__()
        if convention not in CONVENTIONS:
            raise FstError(f"unknown VGG convention {convention!r}")
        self.features = _make_features()
        problem = _mismatch(self.features.state_dict(), state_dict)
        if problem:
            raise FstError(f"VGG weights do not fit VGG16's convolution layers: {problem}")
        self.features.load_state_dict(state_dict)
        perm, mean, std = CONVENTIONS[convention]
        self.convention = convention
        self.identity = identity  # recorded with every saved result
        self.perm = perm
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # always eval: frozen, no dropout/bn anyway
        return super().train(False)

    def forward(self, x: torch.Tensor, layers: list[str], pad: int = 0,
                channels_last: bool = False) -> dict[str, torch.Tensor]:
        """x: (N, 3, H, W) RGB in [0, 1] -> {layer: activation (N, C, H', W')}.

        Runs only as deep as the deepest requested layer.

        pad (a multiple of 8, < H and W): reflect-pad the image first and crop every activation
        back to the image's own extent (pad / 2^poolings). VGG's convolutions zero-pad, which
        makes the image border look like an edge to the loss; networks trained without this learn
        bright and dark lines along their output's borders.

        channels_last: run the convolutions on channels-last tensors (the activations come back
        in that memory format; same values). Under bf16 autocast on the CPU, oneDNN's kernels want
        that layout and reorder every NCHW tensor to it and back (PerceptualLoss uses it there).
        """
        wanted = set(layers)
        unknown = wanted - set(LAYER_NAMES)
        if unknown:
            raise FstError(f"unknown VGG layer(s): {', '.join(sorted(unknown))}")
        if pad % 8:
            raise ValueError("pad must be a multiple of 8")
        last = max(LAYER_NAMES.index(name) for name in wanted)
        if pad:
            x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        h = (x[:, self.perm] - self.mean) / self.std
        if channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        out = {}
        crop = pad
        for index in range(last + 1):
            h = self.features[index](h)
            name = LAYER_NAMES[index]
            if name.startswith("pool"):
                crop //= 2
            if name in wanted:
                out[name] = h[..., crop : h.shape[-2] - crop, crop : h.shape[-1] - crop] if crop else h
        return out


def _mismatch(expected: dict, given: dict) -> str:
    """What keeps `given` from loading into a state_dict shaped like `expected` ('' if nothing)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [f"{k} is {tuple(given[k].shape)}, not {tuple(v.shape)}" for k, v in expected.items()
             if k in given and tuple(getattr(given[k], "shape", ())) != tuple(v.shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of {len(expected)} tensors missing ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}{', ...' if len(unexpected) > 3 else ''})")
    if wrong:
        parts.append(f"{wrong[0]}" + (f" (and {len(wrong) - 1} more of the wrong shape)" if len(wrong) > 1 else ""))
    return "; ".join(parts) + ("; expected torchvision vgg16().features keys 0.weight, 0.bias, 2.weight, ..." if parts else "")


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _no_weights_message(reason: str) -> str:
    return (
        f"no VGG16 weights for the loss network ({reason}): pass --vgg-weights PATH or set "
        f"{ENV_WEIGHTS}=PATH to a Caffe-convention VGG16 state_dict, or go online so torchvision "
        f"can download VGG16_Weights.IMAGENET1K_V1 (--vgg-weights {TORCHVISION})"
    )


def load_loss_network(source: str | None = None, device: str | torch.device = "cpu") -> LossNetwork:
    """source: a path, 'torchvision', or None (then $FST_VGG_WEIGHTS, then torchvision)."""
    source = source or os.environ.get(ENV_WEIGHTS) or TORCHVISION
    if source == TORCHVISION:
        from torchvision.models import VGG16_Weights, vgg16

        try:
            model = vgg16(weights=VGG16_Weights.IMAGENET1K_V1)
        except Exception as e:  # offline, blocked, corrupt cache...
            raise FstError(_no_weights_message(f"torchvision download failed: {type(e).__name__}")) from None
        state = model.features.state_dict()
        identity = f"torchvision:VGG16_Weights.IMAGENET1K_V1:{VGG16_Weights.IMAGENET1K_V1.url.rsplit('/', 1)[-1]}"
        return LossNetwork(state, "torchvision", identity).to(device)
    if not os.path.isfile(source):
        raise FstError(_no_weights_message(f"{source}: no such file"))
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FstError(f"{source}: not a loadable VGG16 state_dict ({type(e).__name__})") from None
    if not isinstance(state, dict):
        raise FstError(f"{source}: not a state_dict")
    convention = "caffe"
    if any(k.startswith("features.") for k in state):
        # A local copy of torchvision's full vgg16 file: keep the features, its own convention.
        state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        convention = "torchvision"
    identity = f"{convention}:sha256:{file_sha256(source)[:16]}"
    return LossNetwork(state, convention, identity).to(device)
