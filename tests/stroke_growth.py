"""How far a model's strokes grow with --stroke-scale: the measure of
test_stroke.test_strokes_grow_with_the_scale, also printed for any models (README: Shipped styles):

    python tests/stroke_growth.py starry_night classics:starry_night great_wave

For S = 2 and 3 on the nuthatch cut, how many octaves the strokes' dominant scale moved against
two controls (see the test): the S = 1 result through the same guided filter (ideal log2 S; the
test asks half of it) and the S = 1 result merely resampled (the test asks 0.25).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from conftest import FIXTURES
from fst.images import load_image, resize_array
from fst.strokes import guided_upsample, luminance, working_size
from fst.stylize import MIN_SIDE, load_stylizer, stylize_array

NUTHATCH = FIXTURES / "large" / "nuthatch_cut.jpg"  # not beside the others: tests glob those
SCALES = (2, 3)


def texture(out: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """The output's luminance less what a global linear fit of the photo's luminance explains:
    the strokes, (H, W)."""
    y, g = luminance(out).ravel(), luminance(photo).ravel()
    fit = np.stack([g, np.ones_like(g)], axis=1)
    return (y - fit @ np.linalg.lstsq(fit, y, rcond=None)[0]).reshape(out.shape[1:])


def scale_octaves(texture: np.ndarray) -> float:
    """Dominant spatial scale of a texture: the power-weighted mean of log2(wavelength in px) over
    its spectrum (Hann window; wavelengths from 2 px to half the shorter side)."""
    h, w = texture.shape
    power = np.abs(np.fft.rfft2((texture - texture.mean()) * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    f = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :])
    band = (f >= 2 / min(h, w)) & (f <= 0.5)
    return float(-(power[band] * np.log2(f[band])).sum() / power[band].sum())


def growth(stylizer, photo: np.ndarray) -> dict:
    """{"centres": dominant scale at S = 1, 2, 3, "over_filter": {S: octaves above the filtered
    S = 1 result}, "over_resampled": {S: octaves above the resampled S = 1 result}}."""
    full = stylize_array(stylizer, photo)
    filtered = scale_octaves(texture(guided_upsample(photo, full, photo), photo))
    result = {"centres": [scale_octaves(texture(full, photo))], "over_filter": {}, "over_resampled": {}}
    for scale in SCALES:
        centre = scale_octaves(texture(stylize_array(stylizer, photo, stroke_scale=scale), photo))
        size = working_size(photo.shape[2], photo.shape[1], scale, MIN_SIDE)
        small = np.clip(resize_array(photo, size), 0, 1)
        resampled = guided_upsample(small, np.clip(resize_array(full, size), 0, 1), photo)
        result["centres"].append(centre)
        result["over_filter"][scale] = centre - filtered
        result["over_resampled"][scale] = centre - scale_octaves(texture(resampled, photo))
    return result


if __name__ == "__main__":
    photo = load_image(NUTHATCH).rgb
    for spec in sys.argv[1:]:
        g = growth(load_stylizer(spec), photo)
        print(f"{spec}: " + "; ".join(f"S={s}: {g['over_filter'][s]:.2f} (test asks {0.5 * math.log2(s):.2f}), "
                                      f"{g['over_resampled'][s]:.2f} (asks 0.25)" for s in SCALES), flush=True)
