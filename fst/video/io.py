"""Decoding a video frame by frame and writing its stylized copy, with PyAV.

Frames stream through: one decoded frame at a time, so memory does not grow with the clip.
Timestamps stay in the source stream's own time base, so the output keeps the source's timing
exactly (variable frame rates included); audio packets are copied unchanged (remuxed).
The output is written to a hidden temporary file beside it and renamed only when complete.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fst import FstError
from fst.images import check_writable, default_file_mode
from fst.video import DEFAULT_CRF

# Output extension -> (video encoder, its options). H.264 yuv420p plays everywhere.
OUTPUT_FORMATS = {
    ".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9",
}

# Before the encoder halves the chroma (yuv420p keeps one Cb, Cr pair per 2x2 pixels), its detail
# finer than 2 px is low-passed: decimated as it is, a stroke's colour detail aliases differently
# each time the stroke moves by a fraction of a pixel, and a stable stylized video crawls in colour
# (measured on box.mp4's great_wave, 40 stabilized frames: the yuv420p round trip raised the warping
# error from 2.44 to 2.78 (0..255); with this filter 2.64; per-frame 9.07 -> 8.99). The filter
# removes only what 4:2:0 cannot carry.
CHROMA_SIGMA = 1.5  # px, Gaussian on Cb and Cr at full resolution (~0.75 px at chroma resolution)
REORDER_FRAMES = 16  # decoded frames held back to put timestamps in order (H.264 reorders at most 16)


@dataclass
class Frame:
    rgb: np.ndarray  # uint8 (H, W, 3), as decoded (before any display rotation)
    pts: int  # output timestamp, in VideoSource.time_base
    duration: int  # in VideoSource.time_base


def _one_line(error: Exception) -> str:
    """FFmpeg's own words for an error, without the errno and path PyAV adds."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return text.splitlines()[0]


class VideoSource:
    """The first video stream of a file and its audio streams, cut to [start, start + duration) seconds."""

    def __init__(self, path: str, start: float = 0.0, duration: float | None = None):
        self.path = path
        if not os.path.exists(path):
            raise FstError(f"{path}: no such file")
        try:
            self.container = av.open(path)
        except av.FFmpegError as e:
            raise FstError(f"{path}: not a video FFmpeg can read ({_one_line(e)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise FstError(f"{path}: has no video stream")
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"
        self.audio = list(self.container.streams.audio)
        self.time_base: Fraction = self.video.time_base
        self.rate: Fraction = self.video.average_rate or self.video.guessed_rate or Fraction(30)
        self.width, self.height = self.video.codec_context.width, self.video.codec_context.height
        if not self.width or not self.height:
            self.container.close()
            raise FstError(f"{path}: video stream without a picture size")
        self.origin = float(self.video.start_time * self.time_base) if self.video.start_time is not None else 0.0
        self.start, self.end = start, (start + duration if duration is not None else None)
        self.cut = start > 0 or duration is not None
        self.length = self._length()
        if start and self.length is not None and start >= self.length:
            self.container.close()
            raise FstError(f"{path}: --start {start:g} s is past its end ({self.length:.1f} s)")
        self.display_matrix: list[int] | None = None  # from the first frame's side data
        self.frames_read = 0
        self.packets_read = 0  # video packets with data: what the file still holds (decoders may drop some)
        self.last_end = self.origin + start  # end time (s) of the last frame delivered

    def _length(self) -> float | None:
        """Seconds of video the headers announce (from `origin`), or None."""
        if self.video.duration:
            return float(self.video.duration * self.time_base)
        if self.container.duration:
            return self.container.duration / av.time_base - max(0.0, self.origin)
        return None

    def expected_frames(self) -> int | None:
        """Frames in the cut, for the progress bar (exact for a whole file with a frame index)."""
        if not self.cut and self.video.frames:
            return self.video.frames
        seconds = self.length
        if self.end is not None:
            seconds = min(seconds, self.end) if seconds is not None else self.end
        return max(0, round((seconds - self.start) * self.rate)) if seconds is not None else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.container.close()

    def read(self):
        """Yield Frame for video and av.Packet (timestamps shifted by the cut) for audio, in file order."""
        t0, t1 = self.origin + self.start, (self.origin + self.end if self.end is not None else None)
        if self.start > 0:
            self.container.seek(int(t0 / self.time_base), stream=self.video)  # the keyframe before
        shift = {s.index: round(self.start / s.time_base) for s in [self.video, *self.audio]}
        pending: deque = deque()  # decoded frames, in display order, waiting for their timestamp
        stamps: list[int] = []  # a heap of their timestamps
        video_done, position = False, t0
        try:
            for packet in self.container.demux([self.video, *self.audio]):
                if packet.stream.type == "audio":
                    if packet.pts is None or (self.start > 0 and packet.pts * packet.time_base < t0):
                        continue  # (a whole file keeps its audio from before the first frame: encoder priming)
                    if t1 is not None and packet.pts * packet.time_base >= t1:
                        if video_done:
                            break
                        continue
                    packet.pts -= shift[packet.stream.index]
                    if packet.dts is not None:
                        packet.dts -= shift[packet.stream.index]
                    yield packet
                    continue
                self.packets_read += packet.size > 0
                for frame in [] if video_done else packet.decode():
                    if self.display_matrix is None:
                        self.display_matrix = _display_matrix(frame)
                    # as arrays: holding decoded AVFrames back keeps the decoder's buffer pool growing
                    pending.append((frame.to_ndarray(format="rgb24"), frame.duration))
                    heapq.heappush(stamps, frame.pts if frame.pts is not None else self._next_stamp(stamps))
                    position = frame.time or position
                    if len(pending) > REORDER_FRAMES:
                        out = self._frame(pending, stamps, t0, t1, shift[self.video.index])
                        video_done = out is False
                        if out:
                            yield out
            while pending and not video_done:
                out = self._frame(pending, stamps, t0, t1, shift[self.video.index])
                video_done = out is False
                if out:
                    yield out
        except av.FFmpegError as e:
            raise FstError(f"{self.path}: broken video near {position - self.origin:.2f} s ({_one_line(e)})") from None
        if not video_done:
            self._check_complete()

    def _next_stamp(self, stamps: list[int]) -> int:
        """A frame without a timestamp: one frame after the latest known."""
        latest = max(stamps) if stamps else round(self.last_end / self.time_base)
        return latest + self._default_duration()

    def _default_duration(self) -> int:
        return max(1, round(1 / (self.rate * self.time_base)))

    def _frame(self, pending: deque, stamps: list[int], t0: float, t1: float | None, shift: int):
        """The next frame in display order with the smallest pending timestamp -> Frame, None
        (before the cut) or False (past its end).

        Files whose B-frames were muxed with pts = dts (box.mp4 is one) give frames in display order
        with their timestamps permuted; the timestamps as a set are right, so they are handed out
        in increasing order. On sane files this changes nothing.
        """
        (rgb, own_duration), pts = pending.popleft(), heapq.heappop(stamps)
        duration = (stamps[0] - pts) if stamps and stamps[0] > pts else (own_duration or self._default_duration())
        time = pts * self.time_base
        if time < t0 - 1e-6:
            return None
        if t1 is not None and time >= t1 - 1e-6:
            return False
        self.frames_read += 1
        self.last_end = float((pts + duration) * self.time_base)
        return Frame(rgb, pts - shift, duration)

    def _check_complete(self) -> None:
        """The file ended: refuse a result shorter than the headers announce (a truncated file)."""
        if not self.cut and self.video.frames and self.packets_read < self.video.frames:
            raise FstError(f"{self.path}: truncated or broken: read {self.packets_read} of "
                           f"{self.video.frames} frames; no output written")
        if self.length is None:
            return
        expected = self.origin + (min(self.length, self.end) if self.end is not None else self.length)
        slack = max(2.0 / float(self.rate), 0.1)  # container durations round; two frames or 0.1 s
        if self.last_end < expected - slack:
            raise FstError(f"{self.path}: truncated or broken: video ends at {self.last_end - self.origin:.2f} s "
                           f"of {expected - self.origin:.2f} s; no output written")


def _display_matrix(frame: av.VideoFrame) -> list[int] | None:
    """The frame's rotation/flip matrix (9 int32, FFmpeg's DISPLAYMATRIX), or None."""
    # looked up by type: PyAV 18 iterates the container's keys (types), older PyAV its SideData items
    side = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    return None if side is None else [int(v) for v in np.frombuffer(bytes(side), np.int32)]


def check_output(path: str, overwrite: bool) -> str:
    """Refuse an unknown video extension or an existing file without --overwrite, before any work."""
    return check_writable(path, overwrite, OUTPUT_FORMATS, ", ".join(OUTPUT_FORMATS))


class VideoSink:
    """The output file, written under a temporary name and renamed by commit(); abort() removes it."""

    def __init__(self, path: str, source: VideoSource, width: int, height: int, crf: int = DEFAULT_CRF):
        self.path, self.source = path, source
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=".fst-", suffix=Path(path).suffix, dir=folder)
        os.close(fd)
        try:
            self.container = av.open(self.tmp, "w")
            self._add_streams(width, height, crf)
        except BaseException:
            self.abort()
            raise

    def _add_streams(self, width: int, height: int, crf: int) -> None:
        codec = OUTPUT_FORMATS[Path(self.path).suffix.lower()]
        self.video = self.container.add_stream(codec, rate=self.source.rate)
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.video.time_base = self.source.time_base
        self.video.codec_context.time_base = self.source.time_base
        self.video.options = {"crf": str(crf), **({"b:v": "0"} if codec == "libvpx-vp9" else {})}
        self.audio = {}
        for stream in self.source.audio:
            name = stream.codec_context.name
            if name not in self.container.supported_codecs:
                raise FstError(f"{self.source.path}: its {name} audio cannot be copied into "
                               f"{Path(self.path).suffix} unchanged (write .mkv instead)")
            self.audio[stream.index] = self.container.add_stream_from_template(stream)
        self.started = False

    def write(self, rgb: np.ndarray, pts: int, duration: int, display_matrix: list[int] | None) -> None:
        """One stylized uint8 (H, W, 3) frame at the source's timestamp."""
        if not self.started and display_matrix is not None:  # before the first frame is encoded
            self.video.set_display_matrix(display_matrix)
        self.started = True
        frame = av.VideoFrame.from_ndarray(chroma_prefiltered(rgb), format="rgb24")
        frame.pts, frame.duration, frame.time_base = pts, duration, self.source.time_base
        self.container.mux(self.video.encode(frame))

    def copy_audio(self, packet: av.Packet) -> None:
        packet.stream = self.audio[packet.stream.index]
        self.container.mux(packet)

    def commit(self) -> None:
        """Flush the encoder, close the file and move it under its name."""
        try:
            self.container.mux(self.video.encode(None))
            self.container.close()
            os.chmod(self.tmp, default_file_mode())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Nothing under the output's name, no temporary file left."""
        try:
            if getattr(self, "container", None) is not None:
                self.container.close()
        except Exception:  # a half-written file may not close cleanly; it is deleted next
            pass
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def chroma_prefiltered(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> the same with its chroma low-passed for 4:2:0 (CHROMA_SIGMA); luma kept."""
    import cv2

    ycc = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2YCrCb)  # float: no rounding of the luma
    ycc[..., 1:] = cv2.GaussianBlur(ycc[..., 1:], (0, 0), CHROMA_SIGMA)
    return np.clip(cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB) + 0.5, 0, 255).astype(np.uint8)
