"""Flicker, measured: the warping error (Lai et al. 2018, "Learning blind video temporal consistency").

For consecutive frames t-1, t of a video V and the optical flow of its *source* S:
    E_t = mean over reliable pixels x of |V_t(x) - V_{t-1}(x + flow_t(x))|     (0..255, channel mean)
where flow_t is the backward DIS flow between S_t and S_{t-1} and "reliable" is its
forward-backward check (no occlusion). The figure is the mean of E_t over the clip. The same figure
for S itself is the floor: what resampling and the flow's own error leave on a perfectly stable
video. The measure uses DIS's "medium" preset, finer than the stabilizer's "fast" one, so that it
is not graded by exactly the flow it was made with.
"""

from __future__ import annotations

import cv2
import numpy as np

from fst import FstError
from fst.video.flow import FlowPair, gray, warp

MEASURE_PRESET = "medium"


def warping_error(sources, outputs, preset: str = MEASURE_PRESET) -> dict:
    """Two iterables of uint8 (H, W, 3) frames in step -> {"frames", "output", "source"} (0..255)."""
    flow = FlowPair(preset)
    prev_src = prev_out = prev_gray = None
    out_errors, src_errors, reliable_share = [], [], []
    for src, out in zip(sources, outputs):
        if src.shape != out.shape:  # a --max-size output: measure at its size
            src = cv2.resize(src, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_AREA)
        cur_gray = gray(src)
        if prev_gray is not None:
            backward, reliable = flow(cur_gray, prev_gray)
            if reliable.any():
                out_errors.append(_masked_error(out, warp(prev_out, backward), reliable))
                src_errors.append(_masked_error(src, warp(prev_src, backward), reliable))
            reliable_share.append(float(reliable.mean()))
        prev_src, prev_out, prev_gray = src, out, cur_gray
    if not out_errors:
        raise FstError("the warping error needs at least two frames")
    return {"frames": len(out_errors) + 1, "output": float(np.mean(out_errors)), "source": float(np.mean(src_errors)),
            "reliable": float(np.mean(reliable_share))}


def _masked_error(frame: np.ndarray, warped: np.ndarray, mask: np.ndarray) -> float:
    diff = np.abs(frame.astype(np.float32) - warped.astype(np.float32)).mean(-1)
    return float(diff[mask].mean())


def video_frames(path: str, start: float = 0.0):
    """The uint8 (H, W, 3) frames of a video file from `start` seconds on, streamed."""
    from fst.video.io import Frame, VideoSource

    with VideoSource(path, start) as source:
        for item in source.read():
            if isinstance(item, Frame):
                yield item.rgb


def measure_files(source_path: str, output_path: str, start: float = 0.0) -> dict:
    """`fst evaluate --video SRC OUT [--start S]`: OUT's warping error beside SRC's own (from S on),
    over OUT's frames."""
    from fst.video.io import VideoSource

    with VideoSource(source_path, start) as s, VideoSource(output_path) as o:
        n_src, n_out = s.expected_frames(), o.expected_frames()
    if n_src and n_out and n_out > n_src + 1:
        raise FstError(f"{output_path}: {n_out} frames, more than {source_path}'s {n_src}: not its stylization")
    report = warping_error(video_frames(source_path, start), video_frames(output_path))
    return {"source_file": source_path, "output_file": output_path, "start": start, **report}


def run(args) -> int:
    from fst.video import require_video_libs

    require_video_libs()
    import json

    source_path, output_path = args.video
    report = measure_files(source_path, output_path, args.start)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"warping error (mean |frame_t - warp(frame_t-1)| on 0..255 over {report['reliable']:.0%} reliable pixels, "
          f"{report['frames']} frames):")
    print(f"    {output_path:<40} {report['output']:.2f}")
    print(f"    {source_path + ' (source)':<40} {report['source']:.2f}")
    return 0
