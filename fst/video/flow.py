"""Optical flow between consecutive source frames (OpenCV DIS), warping, and the forward-backward
occlusion check shared by the stabilizer and the flicker measure.

Flows are float32 (H, W, 2) in pixels, (dx, dy). `backward_flow(cur, prev)` gives, for each pixel
x of the current frame, where it was in the previous one: prev(x + flow(x)) ~ cur(x).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

# The stabilizer's flow: DIS "fast" searched down to half resolution (finest scale 1; the preset
# stops at a quarter, "medium" goes to half with bigger patches and 6x the iterations), with fewer
# gradient-descent and variational iterations to pay for it. A quarter-resolution flow is off by
# enough to smear the stylized strokes, whose gradients are steep: warped by "fast", a frame of
# box.mp4's great_wave output differs from the same frame warped by the measure's flow by 2.1
# (0..255) where the measure trusts its flow; by this flow 1.45 (by "medium" itself, with the
# stabilizer's Lanczos kernel against the measure's bilinear one: 1.2). ~2.5x the cost of "fast".
STABILIZER_FLOW = {"preset": "fast", "FinestScale": 1, "GradientDescentIterations": 4, "VariationalRefinementIterations": 2}


def gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> uint8 (H, W) luma, what DIS reads."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class FlowPair:
    """Backward and forward DIS flow between two grey frames, and where they agree.

    preset: one of PRESETS; settings: DIS setters without their "set" (e.g. FinestScale=1)."""

    def __init__(self, preset: str = "fast", **settings):
        self.dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        for name, value in settings.items():
            getattr(self.dis, f"set{name}")(value)

    def __call__(self, cur: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) uint8 x2 -> backward flow (H, W, 2) and a bool (H, W) mask of reliable pixels."""
        backward = self.dis.calc(cur, prev, None)
        forward = self.dis.calc(prev, cur, None)
        return backward, consistent(backward, forward)


@functools.lru_cache(maxsize=4)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return xs, ys


def sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute float32 sampling coordinates x + flow(x), for cv2.remap."""
    xs, ys = _pixel_grid(*flow.shape[:2])
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """image (H, W[, C]) of the previous frame pulled onto the current one: out(x) = image(x + flow(x))."""
    map_x, map_y = sample_grid(flow)
    return cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)


def consistent(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Forward-backward check (Sundaram et al. 2010, as in Ruder et al. 2016): bool (H, W).

    Following the backward flow to the previous frame and the forward flow back must return to
    the start; where it does not, the pixel was occluded, disoccluded or the flow is wrong. Pixels
    whose backward flow leaves the frame are unreliable too.
    """
    h, w = backward.shape[:2]
    map_x, map_y = sample_grid(backward)
    forward_there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = backward + forward_there
    size = _squared_norm(backward) + _squared_norm(forward_there)
    ok = _squared_norm(loop) <= 0.01 * size + 0.5
    return ok & (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)


def _squared_norm(flow: np.ndarray) -> np.ndarray:
    """(H, W, 2) -> (H, W) dx^2 + dy^2."""
    return cv2.magnitude(flow[..., 0], flow[..., 1]) ** 2
