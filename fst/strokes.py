"""Stroke size on large photos: `fst stylize --stroke-scale S`.

A network paints strokes at the size it learnt them, on 256-px training crops: a few pixels
wide whatever the photo's size, so on a 12-megapixel photo they are tiny. With a stroke scale S
the photo is stylized at 1/S of its size (strokes S times larger relative to the photo, and S²
fewer pixels through the network), then brought back to full size guided by the full-size
photo, so that its edges stay sharp: the fast guided filter (He & Sun 2015, "Fast Guided
Filter", arXiv:1505.00996) used as a guided upsampler.

  1. At the working size, in each (2r+1)² window, fit  output ≈ a · guide + b  by least
     squares, per output channel (guide: the photo's luminance at the working size).
  2. Average a and b over the windows covering each pixel (box filter), as the guided filter does.
  3. Upsample a and b bilinearly to full size and apply them to the full-size luminance.

Where the photo has an edge, a carries the output's contrast across it and the full-size
luminance puts it back in its exact, sharp place; where the photo is flat, a ≈ 0 and b carries
the strokes. Only numpy and Pillow (the light install): no torch, no OpenCV.

Arrays are float32 (3, H, W) RGB in [0, 1] unless said otherwise.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from fst.images import resize_array

MAX_SCALE = 16.0  # a 4000-px photo at 250 px: the whole picture is one training crop

# Radius of the fit's windows, in working-resolution pixels. The strokes are what the luminance
# does not explain: they survive only through b, which is a mean over a window and then a mean
# of those means (5x5 px in all at r = 1). So r = 1, the 3x3 windows that are the smallest with
# a fit at all: the network's finest grain (2 px at the working size) is smoothed away, its
# strokes (4 px and more) come through; r = 2 visibly smoothed those away too in the flat parts
# of a 4000-px photo at S = 2 and 4.
RADIUS = 1
# Regularisation of a, in units of the luminance's variance (values in [0, 1]): a window
# across an edge of contrast c has a variance of about c²/4, so a = cov / (var + EPS) keeps at
# least half the fitted gain on edges of contrast 2·sqrt(EPS) ≈ 0.06 (16 of 255 levels) and more,
# while in flat parts (sky, out-of-focus background: noise of 1-2 levels of 255 is a variance of
# 2e-5 to 6e-5) a ≈ 0, so the photo's grain is not amplified into the result. 1e-2 softened the
# feathers of the README's example; 1e-4 looked the same as 1e-3.
EPS = 1e-3


def scale_error(scale: float, name: str = "--stroke-scale") -> str | None:
    """None for a stroke scale fst accepts (a number from 1 to MAX_SCALE), else why not."""
    if math.isfinite(scale) and 1.0 <= scale <= MAX_SCALE:
        return None
    return f"{name} must be a number from 1 to {MAX_SCALE:g}, got {scale:g}"


def working_size(width: int, height: int, scale: float, min_side: int) -> tuple[int, int]:
    """(width, height) of the photo at 1/scale, at least min_side a side (the network's limit:
    on a small photo and a large scale the strokes grow less than asked)."""
    return max(min_side, round(width / scale)), max(min_side, round(height / scale))


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) [0, 1] -> (H, W) float32 [0, 1], Rec. 601 luma (the Y of fst.images' YIQ)."""
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]).astype(np.float32)


def box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """(C, H, W) -> (C, H, W) float32: the mean over each (2r+1)² window.

    Windows are cut at the borders and divided by the pixels they hold (no padding values).
    Separable sums of 2r+1 shifted slices: for the small r used here (RADIUS) cheaper than
    cumulative sums, and exact enough in float32 because no running total over a whole row
    builds up (var = E[x²] - E[x]² below must resolve ~1e-5 from values in [0, 1]).
    """
    out = x.astype(np.float32)
    for axis in (1, 2):
        n = out.shape[axis]
        total = out.copy()
        for d in range(1, min(r, n - 1) + 1):
            head, tail = [slice(None)] * 3, [slice(None)] * 3
            head[axis], tail[axis] = slice(0, n - d), slice(d, n)
            total[tuple(head)] += out[tuple(tail)]  # the neighbour d after
            total[tuple(tail)] += out[tuple(head)]  # the neighbour d before
        index = np.arange(n)
        count = np.minimum(index + r, n - 1) - np.maximum(index - r, 0) + 1
        total /= count.reshape((-1, 1) if axis == 1 else (1, -1)).astype(np.float32)
        out = total
    return out


def fit_linear(guide: np.ndarray, output: np.ndarray, r: int = RADIUS, eps: float = EPS):
    """Guide (H, W) and output (C, H, W), both in [0, 1] -> (a, b), each (C, H, W) float32:
    per window, the least-squares output ≈ a · guide + b (a regularised by eps), then a and b
    averaged over the windows that cover each pixel. b is in [0, 1] where a = 0; a is a gain
    (|a| ≤ σ_out·σ_guide / (σ_guide² + eps) ≤ 0.5 / (2·sqrt(eps)) ≈ 8 with values in [0, 1])."""
    g = guide[None]
    mean_g, mean_o = box_mean(g, r), box_mean(output, r)
    cov = box_mean(g * output, r) - mean_g * mean_o
    var = box_mean(g * g, r) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_o - a * mean_g
    return box_mean(a, r).astype(np.float32), box_mean(b, r).astype(np.float32)


def upsample_bilinear(channel: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) float -> (H, W) float32 for size (W, H), bilinear (Pillow, pixel centres aligned)."""
    return np.asarray(Image.fromarray(channel.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR))


def guided_upsample(small: np.ndarray, styled: np.ndarray, photo: np.ndarray, r: int = RADIUS, eps: float = EPS) -> np.ndarray:
    """The stylized working-size image back at the photo's full size, the photo's edges sharp.

    small: the photo at the working size (3, h, w); styled: its stylization (3, h, w);
    photo: the full-size photo (3, H, W). -> (3, H, W) float32 in [0, 1]. One channel at a time
    at full size, so it needs about three full-size planes besides the result.
    """
    a, b = fit_linear(luminance(small), styled, r, eps)
    size = (photo.shape[2], photo.shape[1])
    guide = luminance(photo)
    out = np.empty(photo.shape, dtype=np.float32)
    for c in range(out.shape[0]):
        out[c] = upsample_bilinear(a[c], size) * guide + upsample_bilinear(b[c], size)
    return np.clip(out, 0.0, 1.0, out=out)


def stylize_scaled(stylize, photo: np.ndarray, scale: float, min_side: int) -> np.ndarray:
    """stylize ((3, h, w) -> (3, h, w)) run on the photo at 1/scale, guided back to full size.

    photo: (3, H, W) in [0, 1] -> (3, H, W) float32 in [0, 1]; strokes scale times larger.
    min_side: the smallest side stylize takes.
    """
    size = working_size(photo.shape[2], photo.shape[1], scale, min_side)
    small = np.clip(resize_array(photo, size), 0.0, 1.0)  # Lanczos over- and undershoots a little
    return guided_upsample(small, stylize(small), photo)
