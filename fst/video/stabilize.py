"""Flow-guided blending: less flicker, the style's strokes kept, no ghost trails.

A feed-forward network stylizes each frame on its own, so small changes between frames (noise,
compression, a few pixels of motion) move its strokes: the video boils. Here the previous *output*
frame is warped onto the current one along the optical flow of the *source* frames and blended
into the fresh stylization, only where the flow is reliable:
    a     = weight * mask                        mask: forward-backward check passed and the
                                                 warped source agrees with the current source
    blend = stylized + a * (warp(out_{t-1}) - stylized)
A moving object is followed by the flow; what it uncovers fails the check and is taken fresh (no
trails); a scene cut fails everywhere. The mask is feathered over a few pixels so its edges do not
show.

Averaging is a blur, and the style term is a sharpness detector at the pixel scale: on box.mp4
with great_wave, one bilinear warp of a stylized frame raises J_style by 50 %, a 0.7 px Gaussian
blur triples it, plain blending at weight 0.7 raises it by 65 %. So the previous output is warped
with bicubic interpolation (it is warped again every frame), and the blend keeps the fresh frame's
local contrast: the blend is split into bands (pixel-scale texture, strokes, and the low-pass
colour and shading, which is blended as is) and each detail band is scaled back up to the fresh
stylization's local energy in that band. Where the strokes line up the gain is 1; where they do
not, the band keeps its energy instead of fading (variance-preserving blending, as in Heitz &
Neyret 2018 for textures). Where the mask is 0 the output is the fresh stylization (to float rounding).
"""

from __future__ import annotations

import cv2
import numpy as np

from fst.video import DEFAULT_STABILITY
from fst.video.flow import FlowPair, gray, warp

SOURCE_TOLERANCE = 20  # |luma_t - warp(luma_{t-1})| in 0..255 above which a pixel "changed"
FEATHER = 5  # px, the mask's edge softening (Gaussian kernel side)
WARP_INTERPOLATION = cv2.INTER_CUBIC  # the output is warped again every frame: bilinear would blur it away
BAND_SIGMAS = (1.0, 3.0)  # px: pixel-scale texture | strokes | colour and shading (blended as is)
ENERGY_SIGMA = 4.0  # px, the neighbourhood over which a band's local energy is compared
MAX_GAIN = 3.0


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), sigma)


_CHANNEL_MEAN = np.full((1, 3), 1 / 3, np.float32)


def _local_energy(band: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W): the channel mean of band^2, averaged over a neighbourhood."""
    return _blur(cv2.transform(band * band, _CHANNEL_MEAN), ENERGY_SIGMA)


def contrast_keeping_blend(stylized: np.ndarray, warped: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 x2 and a (H, W, 1) blend weight in [0, 1) -> the blend, each detail band
    scaled back to the fresh stylization's local energy in that band."""
    blend = stylized + a * (warped - stylized)
    out = np.zeros_like(blend)
    fresh_rest, blend_rest = stylized, blend
    for sigma in BAND_SIGMAS:
        fresh_low, blend_low = _blur(fresh_rest, sigma), _blur(blend_rest, sigma)
        fresh_band, blend_band = fresh_rest - fresh_low, blend_rest - blend_low
        energy_fresh, energy_blend = _local_energy(fresh_band), _local_energy(blend_band)
        gain = np.clip(np.sqrt(energy_fresh / np.maximum(energy_blend, 1e-8)), 1.0, MAX_GAIN)
        out += gain[..., None] * blend_band
        fresh_rest, blend_rest = fresh_low, blend_low
    return out + blend_rest


class Stabilizer:
    """Feed it frames in order: (source uint8 (H, W, 3), stylized float32 (H, W, 3) in [0, 1])."""

    def __init__(self, weight: float = DEFAULT_STABILITY, preset: str = "fast", keep_contrast: bool = True):
        self.weight, self.keep_contrast = weight, keep_contrast
        self.flow = FlowPair(preset)
        self.prev_gray: np.ndarray | None = None
        self.prev_out: np.ndarray | None = None

    def __call__(self, source: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        cur_gray = gray(source)
        out = stylized
        if self.weight > 0 and self.prev_gray is not None and self.prev_gray.shape == cur_gray.shape:
            backward, reliable = self.flow(cur_gray, self.prev_gray)
            change = cv2.absdiff(cur_gray, warp(self.prev_gray, backward))  # uint8 (H, W)
            mask = (reliable & (change < SOURCE_TOLERANCE)).astype(np.float32)
            mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # flow is least sure at motion edges
            mask = cv2.GaussianBlur(mask, (FEATHER, FEATHER), 0)[..., None]
            warped, a = warp(self.prev_out, backward, WARP_INTERPOLATION), self.weight * mask
            out = contrast_keeping_blend(stylized, warped, a) if self.keep_contrast else stylized + a * (warped - stylized)
        self.prev_gray, self.prev_out = cur_gray, out
        return out
