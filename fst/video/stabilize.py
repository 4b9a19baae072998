"""Flow-guided blending: less flicker without ghost trails.

A feed-forward network stylizes each frame on its own, so small changes between frames (noise,
compression, a few pixels of motion) flip its strokes: the video boils. Here the previous *output*
frame is warped onto the current one along the optical flow of the *source* frames and blended
into the fresh stylization, only where the flow is reliable:
    out_t = stylized_t + weight * mask * (warp(out_{t-1}) - stylized_t)
mask is 1 where the forward-backward check passes and the warped source agrees with the current
source (no occlusion, no new object, no lighting change), 0 elsewhere, feathered over a few
pixels so that its edges do not show. A moving object is followed by the flow; what it uncovers
fails the check and is taken fresh: no trails. A scene cut fails everywhere: the next frame is
stylized on its own.
"""

from __future__ import annotations

import cv2
import numpy as np

from fst.video import DEFAULT_STABILITY
from fst.video.flow import FlowPair, gray, warp

SOURCE_TOLERANCE = 20.0  # |source_t - warp(source_{t-1})| in 0..255 above which a pixel is "changed"
FEATHER = 5  # px, the mask's edge softening (Gaussian kernel side)


class Stabilizer:
    """Feed it frames in order: (source uint8 (H, W, 3), stylized float32 (H, W, 3) in [0, 1])."""

    def __init__(self, weight: float = DEFAULT_STABILITY, preset: str = "fast"):
        self.weight = weight
        self.flow = FlowPair(preset)
        self.prev_gray: np.ndarray | None = None
        self.prev_source: np.ndarray | None = None
        self.prev_out: np.ndarray | None = None

    def __call__(self, source: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        cur_gray = gray(source)
        out = stylized
        if self.weight > 0 and self.prev_gray is not None and self.prev_gray.shape == cur_gray.shape:
            backward, reliable = self.flow(cur_gray, self.prev_gray)
            change = np.abs(source.astype(np.float32) - warp(self.prev_source, backward).astype(np.float32)).max(-1)
            mask = (reliable & (change < SOURCE_TOLERANCE)).astype(np.float32)
            mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # flow is least sure at motion edges
            mask = cv2.GaussianBlur(mask, (FEATHER, FEATHER), 0)[..., None]
            out = stylized + (self.weight * mask) * (warp(self.prev_out, backward) - stylized)
        self.prev_gray, self.prev_source, self.prev_out = cur_gray, source, out
        return out
