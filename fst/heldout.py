"""Held-out quality during training: `fst evaluate`'s figures (fst.evaluate.network_figures) of the
network being trained, on the photos the run holds out, against the training time so far.

Training time is the training loop's wall time (steps, data loading, checkpoints and previews),
less the evaluations themselves: a curve of quality against it shows what the same run would
have reached without being measured. fst train --eval-every writes these records to its log;
fst bench's quality section runs PE's loop with the same schedule and records.
"""

from __future__ import annotations

import math
import time

import torch

from fst.evaluate import network_figures, photo_arrays


class Stopwatch:
    """Seconds of training: wall time from `seconds` on, less the spans skip() leaves out."""

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds
        self._last = time.perf_counter()

    def lap(self) -> float:
        """Add the time since the last lap (or skip) and return the total."""
        now = time.perf_counter()
        self.seconds += now - self._last
        self._last = now
        return self.seconds

    def skip(self) -> None:
        """What passed since the last lap was not training (an evaluation)."""
        self._last = time.perf_counter()


class HeldOut:
    """The held-out figures every `every` seconds of training time: at 0 (the untrained network),
    at the first step past each multiple of `every`, and at the run's end."""

    def __init__(self, criterion, paths: list[str], every: float, size: int | None, seconds: float = 0.0):
        """criterion: the run's loss in float32 (the figures are fp32 whatever training runs in);
        paths: the held-out photos, loaded once at `size` (longest side; None: their own)."""
        self.criterion, self.every, self.size = criterion, every, size
        self.photos = list(photo_arrays(paths, size))
        self.next_at = self._after(seconds) if seconds else 0.0
        self.last_step: int | None = None

    def _after(self, seconds: float) -> float:
        return (math.floor(seconds / self.every) + 1) * self.every

    def due(self, seconds: float) -> bool:
        return seconds >= self.next_at

    def record(self, stylize, step: int, seconds: float) -> dict:
        """One log record: the step, the training time, how long this evaluation took, and the
        figures (fst.evaluate.network_figures) at the size evaluated."""
        start = time.perf_counter()
        figures = network_figures(self.criterion, stylize, self.photos)
        self.next_at, self.last_step = self._after(seconds), step
        return {"step": step, "train_seconds": round(seconds, 3), "eval_seconds": round(time.perf_counter() - start, 3),
                "held_out": {"size": self.size or "own", **figures}}


def torch_stylize(net, device, style: torch.Tensor | None = None):
    """A network in training as a stylizer for network_figures: (3, H, W) [0, 1] -> (3, H, W) [0, 1]."""

    def stylize(rgb):
        with torch.no_grad():
            return net(torch.from_numpy(rgb)[None].to(device), style)[0].float().cpu().numpy()

    return stylize
