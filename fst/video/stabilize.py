"""Flow-guided stabilization: less flicker, the style's strokes kept, no ghost trails.

A feed-forward network stylizes each frame on its own, and it amplifies small changes: on
box.mp4's still background the source changes by 0.3 (0..255) from one frame to the next, its
great_wave stylization by 3.6, and the difference grows with the lag like a random walk (10.6 over
16 frames), partly because what moves elsewhere in the picture changes the network's output
everywhere (instance norms, a wide receptive field). Two recursive filters along the optical flow
of the *source* frames (flow: backward flow t -> t-1), both only where the flow is reliable:

1. the network's input (`prepare`): the previous *filtered* source warped onto the current one and
   blended in with weight INPUT_WEIGHT where the two differ by less than INPUT_CHANGE, none where
   they differ more (moving objects, new content). Camera noise and compression no longer reach the
   network on still parts, so its strokes there change less, at no cost to the style (flicker 0.72x
   per-frame on box.mp4, style term 0.97x).
2. the output (`blend`): the previous *output* warped onto the current frame and blended in:
       a     = weight * mask                   mask: forward-backward check passed and the warped
                                               source agrees with the current source, feathered
       blend = stylized + a * (warp(out_{t-1}) - stylized)
   A moving object is followed by the flow; what it uncovers fails the check and is taken fresh
   (no trails); a scene cut fails everywhere.

Averaging is a blur, and the style term is a sharpness detector: one bicubic warp by half a pixel
raises great_wave's J_style by 22 %, a bilinear one by 70 %. So the previous output is warped with
a Lanczos kernel (it is warped again every frame), and the blend keeps the fresh stylization's local
contrast at every scale: it runs in a Laplacian pyramid (LEVELS octaves: pixel texture, strokes,
waves; the top, colour and shading, blended as is), each detail level scaled back up to the fresh
level's local energy where the blend lowered it (where the strokes line up the gain is 1; where they
do not, the level keeps its energy instead of fading: variance-preserving blending, Heitz & Neyret
2018). Where a is 0 the output is the fresh stylization (to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fst.video import DEFAULT_STABILITY
from fst.video.flow import STABILIZER_FLOW, FlowPair, gray, warp

SOURCE_TOLERANCE = 20  # |luma_t - warp(luma_{t-1})| in 0..255 above which a pixel "changed"
FEATHER = 5  # px, the mask's edge softening (Gaussian kernel side)
WARP_INTERPOLATION = cv2.INTER_LANCZOS4  # the output is warped again every frame: bilinear would blur it away
INPUT_WEIGHT = 0.97  # the source filter's weight where the source did not change
INPUT_CHANGE = (3.0, 12.0)  # 0..255, blurred: the source filter's weight falls from INPUT_WEIGHT to 0 over this
INPUT_BLUR = 1.5  # px, the change's Gaussian blur: a moving edge lets go of its neighbours too
LEVELS = 5  # pyramid octaves with their own contrast: 1, 2, 4, 8, 16 px (relu1_2 to relu4_3 of the style term)
ENERGY_SIGMA = 2.0  # px at each level, the neighbourhood over which its local energy is compared
MAX_GAIN = 3.0
STILL_SIGMA = 2.0  # px, the neighbourhood over which "still" and "moved" are compared
STILL_MARGIN = 0.25  # 0..255: "still" may fit this much worse and still be taken (flat regions fit both)


@dataclass
class Motion:
    """What the output blend needs from a source frame and the previous one."""

    flow: np.ndarray | None  # float32 (H, W, 2) backward flow to the previous frame; None: the first frame
    weight: np.ndarray | None  # float32 (H, W) in [0, weight]: the warped previous output's share


def _level_energy(band: np.ndarray) -> np.ndarray:
    """(h, w, 3) -> (h, w): the channel mean of band^2, averaged over a neighbourhood."""
    return cv2.GaussianBlur(cv2.transform(band * band, _CHANNEL_MEAN), (0, 0), ENERGY_SIGMA)


_CHANNEL_MEAN = np.full((1, 3), 1 / 3, np.float32)


def _laplacian(x: np.ndarray, levels: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(H, W, C) -> `levels` band-pass levels (finest first) and the low-pass top, 2x smaller each."""
    bands = []
    for _ in range(levels):
        low = cv2.pyrDown(x)
        bands.append(x - cv2.pyrUp(low, dstsize=x.shape[1::-1]))
        x = low
    return bands, x


def contrast_keeping_blend(stylized: np.ndarray, warped: np.ndarray, a: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """(H, W, 3) float32 x2 and a (H, W) blend weight in [0, 1) -> stylized + a (warped - stylized),
    each detail level of its Laplacian pyramid scaled back up to the fresh stylization's local energy
    at that level. The blend is made at full resolution first, so where a is 0 (what a moving object
    uncovered) no band of the warped ghost is mixed in: only the gains see the neighbourhood."""
    blend = stylized + a[..., None] * (warped - stylized)
    fresh, _ = _laplacian(stylized, levels)
    bands, out = _laplacian(blend, levels)
    for level in reversed(range(levels)):
        gain = np.sqrt(_level_energy(fresh[level]) / np.maximum(_level_energy(bands[level]), 1e-8))
        out = cv2.pyrUp(out, dstsize=bands[level].shape[1::-1]) + np.clip(gain, 1.0, MAX_GAIN)[..., None] * bands[level]
    return out


class Stabilizer:
    """Per frame, in order: `network_input, motion = prepare(source)`, the network on network_input,
    then `blend(motion, stylized)`. prepare of the next frame may run (in another thread) while the
    network and blend work on this one: each keeps its own state.

    source uint8 (H, W, 3); network_input and stylized float32 (H, W, 3) in [0, 1]."""

    def __init__(self, weight: float = DEFAULT_STABILITY, keep_contrast: bool = True):
        self.weight, self.keep_contrast = weight, keep_contrast
        self.flow = FlowPair(**STABILIZER_FLOW)
        self.prev_gray: np.ndarray | None = None
        self.prev_input: np.ndarray | None = None  # float32 (H, W, 3) 0..255, the filtered source
        self.prev_out: np.ndarray | None = None

    def prepare(self, source: np.ndarray) -> tuple[np.ndarray, Motion]:
        """The network's input for this source frame, and its motion from the previous one."""
        cur_gray, network_input, motion = gray(source), source.astype(np.float32), Motion(None, None)
        if self.weight > 0 and self.prev_gray is not None and self.prev_gray.shape == cur_gray.shape:
            backward, reliable = self.flow(cur_gray, self.prev_gray)
            change = cv2.absdiff(cur_gray, warp(self.prev_gray, backward))  # uint8 (H, W)
            mask = (reliable & (change < SOURCE_TOLERANCE)).astype(np.float32)
            mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # flow is least sure at motion edges
            motion = Motion(backward, self.weight * cv2.GaussianBlur(mask, (FEATHER, FEATHER), 0))
            network_input = self._filtered(network_input, self._held_still(cur_gray, backward, change))
        self.prev_gray, self.prev_input = cur_gray, network_input
        return network_input / 255.0, motion

    def _held_still(self, cur_gray: np.ndarray, backward: np.ndarray, change: np.ndarray) -> np.ndarray:
        """The flow, zero where the previous frame as it was fits the current one as well as warped.
        On a still background DIS returns noise of a few hundredths of a pixel; the source filter's
        state, warped along it frame after frame, wanders (0.15 px on a still noisy photo at weight
        0.97, keeping 0.6x the noise instead of the formula's 0.12x). The output blend follows the
        flow as it is: its weight is lower, and there the measure's flow has the same noise."""
        still = cv2.absdiff(cur_gray, self.prev_gray).astype(np.float32)
        moved = change.astype(np.float32)
        held = cv2.GaussianBlur(still, (0, 0), STILL_SIGMA) <= cv2.GaussianBlur(moved, (0, 0), STILL_SIGMA) + STILL_MARGIN
        return np.where(held[..., None], np.float32(0), backward)

    def _filtered(self, source: np.ndarray, backward: np.ndarray) -> np.ndarray:
        """float32 (H, W, 3) 0..255 -> the same blended with the warped previous filtered source
        where they differ little (a recursive temporal filter that lets go where things change)."""
        previous = warp(self.prev_input, backward, cv2.INTER_CUBIC)  # bilinear would blur it frame after frame
        change = cv2.GaussianBlur(cv2.transform(cv2.absdiff(source, previous), _CHANNEL_MEAN), (0, 0), INPUT_BLUR)
        low, high = INPUT_CHANGE
        a = INPUT_WEIGHT * np.clip((high - change) / (high - low), 0.0, 1.0)
        return source + a[..., None] * (previous - source)

    def blend(self, motion: Motion, stylized: np.ndarray) -> np.ndarray:
        """The stylized frame with the previous output blended in along the motion."""
        out = stylized
        if motion.flow is not None and self.prev_out is not None and self.prev_out.shape == stylized.shape:
            warped = warp(self.prev_out, motion.flow, WARP_INTERPOLATION)
            if self.keep_contrast:
                out = contrast_keeping_blend(stylized, warped, motion.weight)
            else:
                out = stylized + motion.weight[..., None] * (warped - stylized)
            out = np.clip(out, 0.0, 1.0, out=out)  # the gains may overshoot; what is encoded is clipped anyway
        self.prev_out = out
        return out

    def __call__(self, source: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """The output blend alone, for a stylization of the unfiltered source."""
        return self.blend(self.prepare(source)[1], stylized)
