"""`fst stylize clip.mp4`: the video path of the stylize command.

Per frame: decode -> (downscale) -> flow and the filtered source (fst.video.stabilize) -> the photo
pipeline (stylize_frame, from fst.stylize) -> the output blend -> encode; audio packets are copied
through as they come. The flow runs before the network, not beside it in a second thread: ONNX
Runtime keeps both cores of the 2-core machine busy, and a thread beside it was slower (measured).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

from fst import FstError
from fst.video.io import Frame, VideoSink, VideoSource, check_output
from fst.video import DEFAULT_CRF, DEFAULT_STABILITY
from fst.video.stabilize import Stabilizer


def output_paths(videos: list[str], output: str | None, style: str, several: bool) -> list[str]:
    """Output video names: NAME_STYLE.mp4 beside each input, the -o file, or -o FOLDER/NAME.mp4."""
    if output is None:
        return [str(Path(p).with_name(f"{Path(p).stem}_{style}.mp4")) for p in videos]
    if not several and not os.path.isdir(output) and Path(output).suffix:
        return [output]
    if os.path.exists(output) and not os.path.isdir(output):
        raise FstError(f"{output}: several inputs need an output folder, not a file")
    names = [f"{Path(p).stem}.mp4" for p in videos]
    if len(set(names)) != len(names):  # same file name in different sub-folders
        names = [f"{i:04d}_{n}" for i, n in enumerate(names)]
    return [os.path.join(output, n) for n in names]


def frame_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """(width, height) after --max-size, both even (yuv420p halves the chroma planes)."""
    scale = min(1.0, max_size / max(width, height)) if max_size else 1.0
    w, h = max(2, round(width * scale)), max(2, round(height * scale))
    return w - w % 2, h - h % 2


def stylize_video(src: str, dst: str, stylize_frame, args) -> int:
    """Stylize one video file into dst (atomically). Returns the number of frames written.

    stylize_frame: float32 (3, H, W) [0, 1] -> float32 (3, H, W) [0, 1], the photo pipeline.
    """
    from tqdm import tqdm

    weight = 0.0 if args.per_frame else (args.stability if args.stability is not None else DEFAULT_STABILITY)
    with VideoSource(src, args.start or 0.0, args.duration) as source:
        width, height = frame_size(source.width, source.height, args.max_size)
        stabilizer = Stabilizer(weight)
        sink = VideoSink(dst, source, width, height, DEFAULT_CRF if args.crf is None else args.crf)
        bar = tqdm(total=source.expected_frames(), unit="frame", desc=os.path.basename(src),
                   leave=True, dynamic_ncols=True)
        try:
            for item in source.read():
                if not isinstance(item, Frame):
                    sink.copy_audio(item)
                    continue
                rgb = item.rgb
                if rgb.shape[:2] != (height, width):
                    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
                network_input, motion = stabilizer.prepare(rgb)
                styled = stylize_frame(network_input.transpose(2, 0, 1)).transpose(1, 2, 0)
                if styled.shape[:2] != (height, width):
                    styled = cv2.resize(styled, (width, height), interpolation=cv2.INTER_AREA)
                out = (np.clip(stabilizer.blend(motion, styled), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
                sink.write(out, item.pts, item.duration, source.display_matrix)
                bar.update(1)
            if source.frames_read == 0:
                raise FstError(f"{src}: no video frames in the chosen range")
            sink.commit()
        except BaseException:
            sink.abort()
            raise
        finally:
            bar.close()
        return source.frames_read


def run_videos(videos: list[str], outputs: list[str], stylize_frame, args) -> int:
    """Stylize each video; one error line per failed file, the others still run. Returns failures."""
    if args.stability is not None and not 0.0 <= args.stability < 1.0:
        raise FstError("--stability must be from 0 up to (not including) 1")
    from fst.allocator import tune_allocator

    tune_allocator()  # every frame allocates the same few-MB arrays again: keep them (fst.allocator)
    for out in outputs:  # refuse to clobber before spending any time
        check_output(out, args.overwrite)
    failed = 0
    for src, dst in zip(videos, outputs):
        try:
            frames = stylize_video(src, dst, stylize_frame, args)
            print(f"saved {dst} ({frames} frames)")
        except (FstError, OSError) as e:
            failed += 1
            text = str(e) if isinstance(e, FstError) else (e.strerror or str(e))
            print(f"fst: error: {text if text.startswith(src) else f'{src}: {text}'}", file=sys.stderr)
    return failed
