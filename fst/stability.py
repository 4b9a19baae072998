"""The training-time stability term (`fst train --stability-weight W`): video lever 1 of issue 13.

A network that stylizes each frame on its own flickers because it amplifies small changes: a
sub-pixel camera move or a little sensor noise moves its strokes. Synthetic motion needs no optical
flow (Gupta et al. 2017, "Characterizing and improving stability in neural style transfer"): for a
photo x and a random small motion T (shift, rotation, zoom) with fresh noise n,

    J_stability = mean over the interior of (f(T(x) + n) - T(f(x)))^2      (outputs on 0..1)

asks the network to move its output with the picture instead of repainting it. One more pass of the
transformer (not of VGG) per step. T is applied with the same bilinear resampling to both sides, so
what the resampling blurs is blurred on both sides alike.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_SHIFT = 2.0  # px, the largest translation (uniform in +-MAX_SHIFT, sub-pixel)
MAX_ROTATION = 1.0  # degrees
MAX_ZOOM = 0.01  # relative
NOISE = 2.0 / 255.0  # std of the added noise, on 0..1: a camera's noise at ISO ~800, H.264's rounding
MARGIN = 6  # px left out at each side: what the motion brings in from outside the photo is unknown


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The motions' and noise's random source for one training step: a function of the run's seed, the
    step and the rank alone, so a resumed run draws what the straight run drew (the global RNG is
    also drawn by each epoch's DataLoader, at other points of a resumed run)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 4099 + rank)


def random_motion(n: int, height: int, width: int, generator: torch.Generator | None = None,
                  device=None) -> torch.Tensor:
    """(n, 2, 3) affine matrices for F.affine_grid (normalised coordinates), each a small random move."""
    u = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731  uniform in [-1, 1)
    angle, zoom = u() * math.radians(MAX_ROTATION), 1 + u() * MAX_ZOOM
    shift_x, shift_y = u() * MAX_SHIFT * 2 / width, u() * MAX_SHIFT * 2 / height  # px -> [-1, 1] units
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin * height / width, shift_x], 1),
                         torch.stack([sin * width / height, cos, shift_y], 1)], 1)
    return theta.to(device)


def move(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) resampled by the (N, 2, 3) affine theta (bilinear; the border repeats)."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def stability_term(model, photos: torch.Tensor, output: torch.Tensor, style=None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """photos (N, 3, H, W) in [0, 1], output = model(photos, style) -> J_stability (a scalar)."""
    n, _, h, w = photos.shape
    theta = random_motion(n, h, w, generator, photos.device)
    noise = torch.randn(photos.shape, generator=generator).to(photos.device) * NOISE
    moved_output = model((move(photos, theta) + noise).clamp(0, 1), style)
    inner = (slice(None), slice(None), slice(MARGIN, h - MARGIN), slice(MARGIN, w - MARGIN))
    return F.mse_loss(moved_output[inner].float(), move(output, theta)[inner].float())
