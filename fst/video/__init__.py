"""Video stylization: `fst stylize clip.mp4` (decode, stylize, stabilize, encode, audio kept).

Modules, one concept each:
    io.py         PyAV decode of the source and atomic encode/remux of the output
    flow.py       OpenCV DIS optical flow, warping, forward-backward occlusion check
    stabilize.py  flow-guided blending of the previous stylized frame (less flicker)
    measure.py    the warping-error flicker measure (`fst evaluate --video SRC OUT`)
    command.py    the stylize command's video path (progress, errors, output names)
    bench.py      speed, memory and flicker of the whole command (`python -m fst.video.bench`)

This file imports neither PyAV nor OpenCV (they are the optional `fst[video]` extra): `fst
stylize photo.jpg` must work without them. Nothing in fst.video imports torch, except the style
term in bench.py, which is a measurement.
"""

from __future__ import annotations

from pathlib import Path

from fst import FstError

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".3gp", ".ogv"}
DEFAULT_CRF = 18  # x264's "visually lossless" end; stylized strokes suffer from coarser quantisers
DEFAULT_STABILITY = 0.9  # weight of the warped previous output where reliable (fst.video.stabilize); README: Video
MISSING_EXTRA = "video needs the video extra: pip install 'fst[video]'"


def is_video(path: str) -> bool:
    """Video by extension: what `fst stylize` sends to this package rather than to Pillow."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def require_video_libs() -> None:
    """Fail with one line (exit 2 through FstError) when PyAV or OpenCV is not installed."""
    try:
        import av  # noqa: F401
        import cv2  # noqa: F401
    except ImportError:
        raise FstError(MISSING_EXTRA) from None


def video_outputs(videos: list[str], output: str | None, style: str, several: bool) -> list[str]:
    """Where each video's stylization goes (see fst.video.command.output_paths)."""
    require_video_libs()
    from fst.video.command import output_paths

    return output_paths(videos, output, style, several)


def stylize_videos(videos: list[str], outputs: list[str], stylize_frame, args) -> int:
    """`fst stylize` on video files; returns how many failed (each already reported on one line)."""
    require_video_libs()
    from fst.video.command import run_videos

    return run_videos(videos, outputs, stylize_frame, args)


def evaluate_video(args) -> int:
    """`fst evaluate --video SRC OUT`: the warping error of OUT beside SRC's own."""
    require_video_libs()
    from fst.video.measure import run

    return run(args)
