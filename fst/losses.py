"""The perceptual loss of the method, shared by `fst train` and `fst optimize`.

    J = alpha * J_content + beta * J_style + gamma * J_tv

Plain definitions (Gatys; Johnson et al.), for activations a[l] of shape (C, H, W) at layer l:
    J_content = || a[l](C) - a[l](G) ||^2                              at one layer (relu2_2)
    G[l]_kk'  = sum_ij a[l]_kij * a[l]_k'ij                            the Gram matrix
    J_style   = sum_l sum_kk' (G[l](S) - G[l](G))^2                    over relu1_2 relu2_2 relu3_3 relu4_3

Normalisations used here, so that one set of default weights behaves the same at any image size,
batch size and VGG weight convention (Caffe features are ~50x torchvision's, which would move the
plain content term by ~50^2 and the style term by ~50^4):
    Gram:     G^[l] = G[l] / (C*H*W)                   (size-independent for a stationary texture)
    content:  J_content = mean((a(C) - a(G))^2) / mean(a(C)^2)       means over N, C, H, W
    style:    J_style_l = mean_kk'((G^(S) - G^(G))^2) / mean_kk'(G^(S)^2)     mean over N too
              J_style   = sum_l w_l * J_style_l ,  per-layer weights w_l normalised to sum to 1
    TV:       J_tv = mean((x[i+1,j] - x[i,j])^2) + mean((x[i,j+1] - x[i,j])^2)  on RGB in [0, 1]
The denominators are detached constants (the target's energy): each term is the plain term up to
a positive factor, so minimizing it is minimizing the method's loss with re-scaled alpha, beta;
and each is dimensionless, so scaling all features by s changes nothing.
Reported terms are the weighted ones: total = content + style + tv.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from fst import FstError
from fst.config import LossConfig
from fst.images import DEFAULT_MAX_PIXELS, check_min_side, load_image
from fst.vgg import LAYER_NAMES, LossNetwork

def load_style_image(path: str, long_side: int, config: LossConfig, max_pixels: int = DEFAULT_MAX_PIXELS):
    """A style image as this loss uses it: (3, H, W) RGB in [0, 1], its config.style_margin cut
    off each side, then resized so the longer side is long_side (the style's scale)."""
    rgb = load_image(path, long_side=long_side, max_pixels=max_pixels, margin=config.style_margin).rgb
    check_min_side(rgb, str(path))
    return rgb


class _Gram(torch.autograd.Function):
    """G = F F^T / size for F (N, C, HW), with one matrix product in the backward pass:
    dL/dF = (dG + dG^T) F / size. Autograd's own backward of bmm(F, F^T) computes two products
    and adds them (measured: ~10 % of a bf16 training step, batch 4 at 256 px)."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, size: int) -> torch.Tensor:
        ctx.save_for_backward(flat)
        ctx.size = size
        return torch.bmm(flat, flat.transpose(1, 2)) / size

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (flat,) = ctx.saved_tensors
        return torch.bmm((grad + grad.transpose(1, 2)) / ctx.size, flat), None


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C), G_kk' = sum_ij a_kij a_k'ij / (C H W)."""
    n, c, h, w = features.shape
    return _Gram.apply(features.reshape(n, c, h * w), c * h * w)


def content_loss(generated: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Relative squared error of features, (N, C, H, W) x2 -> scalar."""
    return (generated - content).pow(2).mean() / content.detach().pow(2).mean().clamp_min(1e-12)


def style_layer_loss(generated_gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """(N, C, C) against one target (C, C) or one per image (N, C, C) -> (N,): relative squared
    error of Gram matrices per image."""
    target = target_gram.expand_as(generated_gram)
    diff = (generated_gram - target).pow(2).mean(dim=(1, 2))
    return diff / target.detach().pow(2).mean(dim=(1, 2)).clamp_min(1e-20)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> scalar; mean squared difference of neighbouring pixels."""
    dy = (image[:, :, 1:, :] - image[:, :, :-1, :]).pow(2).mean()
    dx = (image[:, :, :, 1:] - image[:, :, :, :-1]).pow(2).mean()
    return dx + dy


class PerceptualLoss(nn.Module):
    """The loss J for a fixed blend of style images, or (separate=True, a style collection) for
    each style image on its own, with the Gram targets computed once."""

    def __init__(
        self,
        net: LossNetwork,
        style_images: list[torch.Tensor],
        config: LossConfig | None = None,
        style_blend: list[float] | None = None,
        amp_dtype: torch.dtype | None = None,
        separate: bool = False,
        style_betas: list[float] | None = None,
    ):
        """style_images: each (1, 3, H, W) RGB in [0, 1] (sizes may differ); style_blend: weights.
        separate: one target per style image, target_grams[layer] (S, C, C), picked per image by
        forward's style_index; else their blend, target_grams[layer] (C, C). style_betas: separate
        styles' own beta, one per image (default: config.style_weight for all)."""
        super().__init__()
        self.net = net
        self.config = config or LossConfig()
        self.amp_dtype = amp_dtype
        blend = style_blend or [1.0] * len(style_images)
        if len(blend) != len(style_images) or separate and style_blend:
            raise ValueError("one blend weight per style image, and none for separate styles")
        if style_betas is not None and (not separate or len(style_betas) != len(style_images)):
            raise ValueError("one beta per separate style image")
        unknown = (set(self.config.style_layers) | {self.config.content_layer}) - set(LAYER_NAMES)
        if unknown:
            raise FstError(f"unknown VGG layer(s): {', '.join(sorted(unknown))} (e.g. relu2_2)")
        total_layer_weight = sum(self.config.style_layers.values())
        if not self.config.style_layers or total_layer_weight <= 0:
            raise FstError("style layers need positive weights")
        self.layer_weights = {k: v / total_layer_weight for k, v in self.config.style_layers.items()}
        self.layers = sorted(set(self.layer_weights) | {self.config.content_layer}, key=LAYER_NAMES.index)
        # Target Gram matrices, fp32, no grad: each style's (C, C), stacked (S, C, C) or blended.
        grams = {name: [] for name in self.layer_weights}
        with torch.no_grad():
            for image in style_images:
                feats = self._features(image, list(self.layer_weights))
                for name in grams:
                    grams[name].append(gram_matrix(feats[name])[0])
        mix = torch.tensor(blend, dtype=torch.float64) / sum(blend)
        targets = {name: torch.stack(g) if separate else sum(w * x for w, x in zip(mix.tolist(), g))
                   for name, g in grams.items()}
        self.separate = separate
        # (S,) float32: each separate style's beta, picked per image like its target
        self.register_buffer("style_betas", torch.tensor(style_betas or [self.config.style_weight] * len(style_images),
                                                         device=style_images[0].device))
        for i, name in enumerate(self.layer_weights):
            self.register_buffer(f"target_{i}", targets[name])
        self.target_grams = {name: getattr(self, f"target_{i}") for i, name in enumerate(self.layer_weights)}

    def _autocast(self, device_type: str):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=self.amp_dtype)

    def cpu_bf16(self, x: torch.Tensor) -> bool:
        """Autocasting to bf16 on the CPU (fst train runs its network under the same autocast there:
        fst.train.network_forward)."""
        return self.amp_dtype == torch.bfloat16 and x.device.type == "cpu"

    def channels_last(self, x: torch.Tensor) -> bool:
        """VGG in channels-last memory when autocasting to bf16 on the CPU: oneDNN's bf16 kernels
        otherwise reorder every NCHW activation and gradient (measured, VGG to relu4_3 forward +
        backward, batch 4 at 256 px: 1.66 s NCHW against 0.74 s on an AVX-512 bf16 CPU, the same
        values to the bit). float32 keeps NCHW: 1.13x faster channels-last there, but 0.94-0.98x
        with AVX2 kernels (README: Performance)."""
        return self.cpu_bf16(x)

    def _features(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        with self._autocast(x.device.type):
            pad = self.config.border_pad if min(x.shape[-2:]) > self.config.border_pad else 0
            feats = self.net(x, layers, pad, channels_last=self.channels_last(x))
        # Grams and differences in fp32 whatever the VGG pass ran in (fp64 stays fp64).
        return {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in feats.items()}

    def style_loss_per_layer(self, images: torch.Tensor, feats: dict | None = None,
                             style_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) -> {layer: (N,)}: beta * w_l J_style_l per image; style_index (N,) picks
        each image's target when the styles are separate."""
        if feats is None:
            feats = self._features(images, list(self.layer_weights))
        if self.separate and style_index is None:
            raise ValueError("separate styles need a style_index per image")
        beta = self.style_betas[style_index] if self.separate else self.config.style_weight  # (N,) or a number
        return {name: beta * w * style_layer_loss(
                    gram_matrix(feats[name]),
                    self.target_grams[name][style_index] if self.separate else self.target_grams[name])
                for name, w in self.layer_weights.items()}

    def style_loss_per_image(self, images: torch.Tensor, feats: dict | None = None,
                             style_index: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) -> (N,): beta * sum_l w_l J_style_l, per image (unreduced style term)."""
        return sum(self.style_loss_per_layer(images, feats, style_index).values())

    def content_target(self, content: torch.Tensor) -> torch.Tensor:
        """Content features, computed once when the content is fixed (optimize)."""
        with torch.no_grad():
            return self._features(content, [self.config.content_layer])[self.config.content_layer]

    def forward(
        self, generated: torch.Tensor, content: torch.Tensor | None = None, content_features: torch.Tensor | None = None,
        style_index: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """generated, content: (N, 3, H, W) RGB in [0, 1] -> weighted terms and their total.

        With `content` (training), the content image goes through VGG only up to the content
        layer and without autograd: batched with the generated rows, its rows would get a
        gradient computed through conv1_1..relu2_2 that nothing uses (measured: ~20 % of a
        training step's CPU time). With `content_features` (from content_target), the content
        image is not run again (optimize). With neither, there is no content term.
        style_index: (N,) long, each image's style when the styles are separate (a collection).
        """
        cfg = self.config
        terms = {}
        if content is not None:
            content_features = self.content_target(content.to(generated.dtype))
        deepest = self.layers if content_features is not None else list(self.layer_weights)
        feats = self._features(generated, deepest)
        if content_features is not None:
            terms["content"] = cfg.content_weight * content_loss(feats[cfg.content_layer], content_features)
        terms["style"] = self.style_loss_per_image(generated, feats, style_index).mean()
        terms["tv"] = cfg.tv_weight * tv_loss(generated)
        terms["total"] = sum(terms.values())
        return terms
