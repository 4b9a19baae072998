"""Video: `fst stylize clip.mp4` keeps timing, sound and rotation, refuses broken input, writes
atomically, and its flicker measure and stabilizer behave as the formulas say.

Clips are made here with PyAV (a few frames of a real photo moving by a known number of pixels per
frame, with a sine tone), so the suite needs no clip files and stays fast.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, REPO, run_fst
from fst.video import DEFAULT_STABILITY
from fst.video.flow import STABILIZER_FLOW, FlowPair, gray, warp
from fst.video.measure import warping_error
from fst.video.stabilize import INPUT_WEIGHT, Stabilizer, contrast_keeping_blend

RATE = Fraction(25)
SIZE = (96, 64)  # width, height: small enough for CI, big enough for the flow
STEP = (2, 1)  # the picture moves (dx, dy) pixels per frame


def moving_frames(n: int, size=SIZE, step=STEP) -> list[np.ndarray]:
    """n uint8 (H, W, 3) views of a real photo, the window moving by `step` pixels per frame."""
    w, h = size
    photo = np.asarray(Image.open(FIXTURES / "kitten.jpg").convert("RGB").resize((w + n * step[0] + 8, h + n * step[1] + 8)))
    # the window moves right/down: the picture moves left/up by `step` each frame
    return [np.ascontiguousarray(photo[4 + i * step[1]: 4 + i * step[1] + h, 4 + i * step[0]: 4 + i * step[0] + w]) for i in range(n)]


def make_clip(path: Path, frames: int = 12, audio: bool = True, rotation: int | None = None, faststart: bool = False) -> Path:
    """An H.264 clip at RATE, optionally with an AAC sine tone and a display rotation."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=44100, layout="mono") if audio else None
        for i, rgb in enumerate(moving_frames(frames)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            samples = int(44100 * frames / RATE)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 44100, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def probe(path: Path) -> dict:
    """What a player sees: per-stream codec, frame times, durations, rotation."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {"rate": v.average_rate, "size": (v.codec_context.width, v.codec_context.height),
                "pix_fmt": v.codec_context.format.name, "codec": v.codec_context.name}
        audio = c.streams.audio[0] if c.streams.audio else None
        info["audio_codec"] = audio.codec_context.name if audio else None
        info["audio_duration"] = float(audio.duration * audio.time_base) if audio else None
        times, rotation = [], None
        for frame in c.decode(v):
            times.append(float(frame.time))
            rotation = frame.rotation if rotation is None else rotation
        info["times"], info["rotation"] = sorted(times), rotation
    return info


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


def test_frames_timing_and_audio_kept(clip, tmp_path):
    out = tmp_path / "out.mp4"
    code, stdout, stderr = run_fst("stylize", clip, "-o", out)
    assert code == 0, stderr
    assert "saved" in stdout and "frame/s" in stderr  # the progress bar counts frames
    src, dst = probe(clip), probe(out)
    assert dst["codec"] == "h264" and dst["pix_fmt"] == "yuv420p" and dst["size"] == src["size"]
    assert dst["rate"] == src["rate"] == RATE
    assert len(dst["times"]) == len(src["times"]) == 12
    assert np.allclose(dst["times"], src["times"], atol=1e-3)
    # the audio stream is copied: same codec, same length within one frame
    assert dst["audio_codec"] == src["audio_codec"] == "aac"
    assert abs(dst["audio_duration"] - src["audio_duration"]) < 1 / RATE
    with av.open(str(clip)) as a, av.open(str(out)) as b:  # remuxed, not re-encoded: the same bytes
        assert [bytes(p) for p in a.demux(audio=0) if p.size] == [bytes(p) for p in b.demux(audio=0) if p.size]


def test_rotation_kept(tmp_path):
    clip = make_clip(tmp_path / "rotated.mp4", frames=4, audio=False, rotation=90)
    assert probe(clip)["rotation"] == 90
    code, _, stderr = run_fst("stylize", clip, "-o", tmp_path / "out.mp4")
    assert code == 0, stderr
    out = probe(tmp_path / "out.mp4")
    assert out["rotation"] == 90 and out["size"] == SIZE  # stored as it was, shown turned


def test_preview_cut(clip, tmp_path):
    """--start/--duration: a piece of the clip, its sound cut alike, timestamps from zero."""
    out = tmp_path / "cut.mp4"
    code, _, stderr = run_fst("stylize", clip, "-o", out, "--start", "0.2", "--duration", "0.2", "--max-size", "48")
    assert code == 0, stderr
    info = probe(out)
    assert len(info["times"]) == 5 and info["times"][0] == pytest.approx(0.0, abs=1e-3)
    assert info["size"] == (48, 32)
    assert info["audio_duration"] == pytest.approx(0.2, abs=2 * 1024 / 44100)  # whole AAC packets


@pytest.mark.parametrize("faststart", [True, False], ids=["index-first", "index-last"])
def test_truncated_video(tmp_path, faststart):
    """Half a file: one line, non-zero exit, no output (the decodable half is not passed off as the video)."""
    whole = make_clip(tmp_path / "whole.mp4", frames=40, faststart=faststart)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    code, stdout, stderr = run_fst("stylize", cut, "-o", tmp_path / "out.mp4")
    assert code != 0
    lines = [line for line in stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "cut.mp4" in lines[0] and "Traceback" not in stderr
    assert ("truncated" in lines[0]) if faststart else ("not a video" in lines[0])
    assert sorted(os.listdir(tmp_path)) == ["cut.mp4", "whole.mp4"]


def test_not_a_video_with_a_video_extension(tmp_path):
    fake = tmp_path / "holiday.mp4"
    fake.write_text("this is text, not a video\n")
    code, _, stderr = run_fst("stylize", fake, "-o", tmp_path / "out.mp4")
    assert code != 0 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[0] == f"fst: error: {fake}: not a video FFmpeg can read (Invalid data found when processing input)"
    assert not (tmp_path / "out.mp4").exists()


def test_existing_output_refused(clip, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    code, _, stderr = run_fst("stylize", clip, "-o", out)
    assert code == 2 and "already exists (pass --overwrite" in stderr
    assert out.read_bytes() == b"precious"
    code, _, stderr = run_fst("stylize", clip, "-o", out, "--overwrite", "--duration", "0.1")
    assert code == 0, stderr
    assert len(probe(out)["times"]) == 3


def test_folder_mixes_photos_and_videos(clip, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(clip.read_bytes())
    Image.open(FIXTURES / "kitten.jpg").resize((64, 48)).save(folder / "kitten.jpg")
    code, _, stderr = run_fst("stylize", folder, "-o", tmp_path / "out", "--duration", "0.1")
    assert code == 0, stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["clip.mp4", "kitten.png"]


def test_onnx_video_path_does_not_import_torch(clip, tmp_path):
    code = (
        "import sys; from fst.cli import main; "
        f"rc = main(['stylize', {str(clip)!r}, '-o', {str(tmp_path / 'o.mp4')!r}, '--duration', '0.2']); "
        "assert rc == 0, rc; assert 'av' in sys.modules and 'cv2' in sys.modules; "
        "print('torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_without_the_video_extra(clip, tmp_path):
    """PyAV missing: one line naming the extra, exit 2 (sys.modules[name] = None blocks an import)."""
    code = ("import sys; sys.modules['av'] = None; from fst.cli import main; "
            f"sys.exit(main(['stylize', {str(clip)!r}, '-o', {str(tmp_path / 'o.mp4')!r}]))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "fst: error: video needs the video extra: pip install 'fst[video]'"


def test_ctrl_c_leaves_no_output(tmp_path):
    # long enough that the Ctrl-C lands mid-way on a fast machine (these tiny frames go at ~200/s)
    clip = make_clip(tmp_path / "long.mp4", frames=3000, audio=False)
    out = tmp_path / "out.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # A terminal's Ctrl-C: SIGINT at its default in the child, even where this test runs from a shell
    # that started it in the background (such shells set SIGINT to ignored, and children inherit that)
    proc = subprocess.Popen([sys.executable, "-m", "fst", "stylize", str(clip), "-o", str(out)],
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    started = threading.Event()
    errors: list[str] = []

    def watch():
        for chunk in iter(lambda: proc.stderr.read(64), ""):
            errors.append(chunk)
            if re.search(r"\b([3-9]|\d\d+)/3000", "".join(errors)[-200:]):  # a few frames done
                started.set()

    threading.Thread(target=watch, daemon=True).start()
    assert started.wait(120), "".join(errors)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert sorted(os.listdir(tmp_path)) == ["long.mp4"]  # no output, no hidden temporary file


# ---------------------------------------------------------------- the flicker measure and the stabilizer

def test_warping_error_on_known_motion():
    """A picture translated by whole pixels: the flow recovers the motion, so the source's own error is
    near 0; a copy with fresh noise of std s in every frame has error E|n_t - n_t-1| = 2s/sqrt(pi)."""
    frames = moving_frames(10, size=(128, 96))
    sigma = 6.0
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).round().astype(np.uint8) for f in frames]
    report = warping_error(frames, noisy)
    assert report["frames"] == 10 and report["reliable"] > 0.8
    assert report["source"] < 1.0  # bilinear resampling of an exact shift, and the flow's sub-pixel error
    expected = 2 * sigma / np.sqrt(np.pi)  # 6.77; rounding to uint8 adds ~1/12 to the variance
    assert report["output"] == pytest.approx(expected, rel=0.1)


def test_stabilizer_flow_recovers_known_motion():
    """The stabilizer's flow, searched down to half resolution and upsampled, still recovers a known
    translation: finely enough that the previous frame warped by it matches the one warped by the true
    motion within one grey level on average. A flow error e moves the picture by e, which changes a pixel
    by about e |grad I|, so the mean endpoint error must be below 1 / mean |grad I| (0.1 px for this
    photo; DIS "fast", which stops at a quarter resolution, is off by 0.17 px here)."""
    frames = moving_frames(6, size=(128, 96))
    true = np.zeros((96, 128, 2), np.float32)
    true[..., 0], true[..., 1] = STEP
    flow = FlowPair(**STABILIZER_FLOW)
    inner = (slice(8, -8), slice(8, -8))
    for prev, cur in zip(frames, frames[1:]):
        luma = gray(prev).astype(np.float32)
        gradient = np.hypot(cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=1), cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=1)) / 2
        backward, reliable = flow(gray(cur), gray(prev))
        assert reliable[inner].mean() > 0.9
        assert np.hypot(*(backward - true).transpose(2, 0, 1))[inner].mean() < 1 / gradient[inner].mean()
        assert np.abs(warp(luma, backward) - warp(luma, true))[inner].mean() < 1.0


def test_input_filter_on_a_still_noisy_picture():
    """The network's input on a still picture with fresh noise in every frame: a recursive filter with
    weight a leaves sqrt((1-a)/(1+a)) of the noise's std (0.123 at a = 0.97); up to +0.03 where the
    noise's own difference lowers the weight. The picture itself stays as sharp: DIS's noise of a few
    hundredths of a pixel is not followed (a state warped along it lost 18 % of its Laplacian)."""
    clean = moving_frames(1, size=(128, 96), step=(0, 0))[0].astype(np.float32)
    rng = np.random.default_rng(3)
    stabilizer = Stabilizer()
    ratios = []
    for _ in range(150):
        noisy = np.clip(clean + rng.normal(0, 1.5, clean.shape), 0, 255).round().astype(np.uint8)
        network_input, _ = stabilizer.prepare(noisy)
        ratios.append((network_input * 255 - clean)[8:-8, 8:-8].std() / (noisy - clean)[8:-8, 8:-8].std())
    formula = np.sqrt((1 - INPUT_WEIGHT) / (1 + INPUT_WEIGHT))
    assert formula - 0.01 < np.mean(ratios[100:]) < formula + 0.03  # after ~3 time constants 1/(1-a)
    sharpness = lambda x: cv2.Laplacian(x, cv2.CV_32F)[8:-8, 8:-8].std()  # noqa: E731
    assert sharpness(network_input * 255) == pytest.approx(sharpness(clean), rel=0.01)


def test_warping_error_command(clip, tmp_path):
    """`fst evaluate --video SRC SRC`: a video against itself gives the same figure twice."""
    code, stdout, stderr = run_fst("evaluate", "--video", clip, clip, "--json")
    assert code == 0, stderr
    import json

    report = json.loads(stdout)
    assert report["frames"] == 12 and report["output"] == pytest.approx(report["source"])


def test_warping_error_of_a_cut_from_start(tmp_path):
    """An output made with --start: `fst evaluate --video SRC OUT --start S` pairs OUT's frames with SRC's
    from S on. Here OUT is SRC's own frames from S on, so paired right it measures as the source does
    (within the re-encode's noise, 10 %). The source's motion is uneven (a window that stands, then
    jumps 6 px), so paired from SRC's start instead, still pairs meet jumps: many times the error."""
    import json

    w, h = SIZE
    photo = np.asarray(Image.open(FIXTURES / "kitten.jpg").convert("RGB").resize((w + 80, h + 8)))
    offsets = [6 * (i // 2) for i in range(13)]  # 0, 0, 6, 6, 12, 12, ...: still, jump, still, ...
    frames = [np.ascontiguousarray(photo[4:4 + h, x:x + w]) for x in offsets]
    start_frame = 1  # OUT starts on a still pair where SRC's start has one too: every pair is off
    for name, chosen in [("src.mp4", frames), ("late.mp4", frames[start_frame:])]:
        with av.open(str(tmp_path / name), "w") as out:
            video = out.add_stream("libx264", rate=RATE)
            video.width, video.height, video.pix_fmt = w, h, "yuv420p"
            for i, rgb in enumerate(chosen):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
    src, late, start = tmp_path / "src.mp4", tmp_path / "late.mp4", str(float(start_frame / RATE))
    code, stdout, stderr = run_fst("evaluate", "--video", src, late, "--start", start, "--json")
    assert code == 0, stderr
    paired = json.loads(stdout)
    assert paired["frames"] == 12 and paired["start"] == pytest.approx(float(start))
    assert paired["output"] == pytest.approx(paired["source"], rel=0.1)
    code, stdout, _ = run_fst("evaluate", "--video", src, late, "--json")
    assert json.loads(stdout)["output"] > 3 * paired["output"]
    code, stdout, stderr = run_fst("evaluate", "--video", src, late, "--start", "60")  # the clip is 0.52 s
    assert code == 2 and "past its end" in stderr and "Traceback" not in stderr
    code, stdout, stderr = run_fst("stylize", src, "--start", "60", "-o", tmp_path / "never.mp4")  # the same check
    assert code == 1 and "past its end" in stderr and not (tmp_path / "never.mp4").exists()  # a failed file: 1


def test_stabilizer_cuts_flicker_by_the_filter_formula():
    """Stylization = picture + fresh noise per frame. Plain blending of the warped previous output with
    weight w is a first-order filter on the noise: consecutive outputs differ by a std (1-w)/sqrt(1+w)
    times the per-frame one's (0.149 at w=0.8). Measured inside a 12 px margin (the strip the motion
    uncovers is taken fresh); the measure's flow resamples the noise a little differently from the
    stabilizer's (+0.035 here), so up to +0.05. The default, contrast-keeping blend flickers more than
    plain blending but at most as much as a variance-preserving one, sqrt(((w/c-1)^2+((1-w)/c)^2)/2) with
    c = sqrt(w^2+(1-w)^2) (0.173), plus the same allowance."""
    frames = moving_frames(40, size=(128, 96))
    rng = np.random.default_rng(1)
    styled = [np.clip(f / 255.0 + rng.normal(0, 0.03, f.shape), 0, 1).astype(np.float32) for f in frames]
    inside = lambda video: [np.ascontiguousarray(f[12:-12, 12:-12]) for f in video]  # noqa: E731
    per_frame = warping_error(inside(frames), inside([(s * 255 + 0.5).astype(np.uint8) for s in styled]))["output"]
    w = 0.8
    c = np.sqrt(w * w + (1 - w) ** 2)
    plain, preserving = (1 - w) / np.sqrt(1 + w), np.sqrt(((w / c - 1) ** 2 + ((1 - w) / c) ** 2) / 2)
    ratios = []
    for keep_contrast in (False, True):
        stabilizer = Stabilizer(w, keep_contrast=keep_contrast)
        out = [(np.clip(stabilizer(f, s), 0, 1) * 255 + 0.5).astype(np.uint8) for f, s in zip(frames, styled)]
        ratios.append(warping_error(inside(frames[10:]), inside(out[10:]))["output"] / per_frame)  # after warm-up
    assert plain - 0.02 < ratios[0] < plain + 0.05
    assert ratios[0] < ratios[1] < preserving + 0.05 + 0.02


def test_chroma_prefilter_removes_only_what_420_cannot_carry():
    """The encoder's chroma low-pass (Gaussian, sigma CHROMA_SIGMA px) passes a frequency f (cycles/px)
    by exp(-2 pi^2 sigma^2 f^2): a 1-px chroma checkerboard (f = 1/2, what 2x2 decimation aliases) by
    ~1e-5, a 32-px colour wave (f = 1/32) by 0.958; the luma is untouched (float conversion; only the
    final rounding: <= 1 level where nothing clips)."""
    from fst.video.io import CHROMA_SIGMA, chroma_prefiltered

    h, w = 64, 96
    to_ycc = lambda rgb: cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2YCrCb) * 255  # noqa: E731  chroma centred on 127.5
    ycc = np.zeros((h, w, 3), np.float32)
    ycc[..., 0] = 100 + np.linspace(0, 40, w)[None]  # a luma ramp, mid-range: no clipping
    checker = (np.indices((h, w)).sum(0) % 2) * 2 - 1.0
    wave = np.cos(2 * np.pi * np.arange(w) / 32)[None].repeat(h, 0)
    inner = (slice(8, -8), slice(8, -8))
    for pattern, passed in [(checker, np.exp(-2 * np.pi ** 2 * CHROMA_SIGMA ** 2 / 2)),  # f = (1/2, 1/2)
                            (wave, np.exp(-2 * np.pi ** 2 * CHROMA_SIGMA ** 2 / 32 ** 2))]:
        ycc[..., 1], ycc[..., 2] = 127.5 + 12 * pattern, 127.5 - 12 * pattern
        rgb = np.clip(cv2.cvtColor(ycc / 255, cv2.COLOR_YCrCb2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)
        before, after = to_ycc(rgb), to_ycc(chroma_prefiltered(rgb))
        kept = (after[..., 1] - 127.5)[inner].std() / (before[..., 1] - 127.5)[inner].std()
        assert kept == pytest.approx(passed, abs=0.03)  # the rounding to uint8 adds ~0.3 levels of std
        assert np.abs(after[..., 0] - before[..., 0])[inner].max() <= 1.0


def test_contrast_keeping_blend():
    """Blending two unrelated textures with weight a loses energy: plain blending leaves
    a^2 + (1-a)^2 of it (0.5 at a = 0.5); the contrast-keeping blend restores the fresh texture's energy
    in each detail band (within 15 %: local energies are estimated over a few pixels). Where the two
    agree it changes nothing, and where a = 0 the output is the fresh frame (to float rounding)."""
    rng = np.random.default_rng(2)
    fresh = rng.uniform(0.2, 0.8, (96, 128, 3)).astype(np.float32)
    other = rng.uniform(0.2, 0.8, (96, 128, 3)).astype(np.float32)
    half = np.full((96, 128), 0.5, np.float32)
    detail = lambda x: x - cv2.GaussianBlur(x, (0, 0), 3.0)  # noqa: E731
    energy = lambda x: float((detail(x)[8:-8, 8:-8] ** 2).mean())  # noqa: E731
    plain = fresh + half[..., None] * (other - fresh)
    assert energy(plain) / energy(fresh) == pytest.approx(0.5, abs=0.05)
    kept = contrast_keeping_blend(fresh, other, half)
    assert energy(kept) / energy(fresh) == pytest.approx(1.0, abs=0.15)
    assert np.allclose(contrast_keeping_blend(fresh, fresh, half), fresh, atol=1e-5)
    assert np.allclose(contrast_keeping_blend(fresh, other, np.zeros_like(half)), fresh, atol=1e-6)


def test_moving_object_leaves_no_trail():
    """A bright square slides over a still background: where it was a frame ago, the output must be the
    fresh stylization of the uncovered background, not a ghost of the square, and the network's input
    the uncovered background itself."""
    h, w, side, speed = 96, 128, 24, 6
    background = moving_frames(1, size=(w, h), step=(0, 0))[0]
    frames = []
    for t in range(12):
        f = background.copy()
        f[36:36 + side, 10 + t * speed: 10 + t * speed + side] = (250, 250, 40)
        frames.append(f)
    stylize = lambda f: (255 - f).astype(np.float32) / 255.0  # any fixed per-pixel look  # noqa: E731
    stabilizer = Stabilizer(0.8)
    for f in frames:
        network_input, motion = stabilizer.prepare(f)
        out = stabilizer.blend(motion, stylize(f))
    t = len(frames) - 1
    uncovered = (slice(40, 36 + side - 4), slice(10 + (t - 1) * speed + 2, 10 + t * speed - 2))
    ghost = np.abs(out[uncovered] - stylize(frames[t])[uncovered]).max()
    assert ghost < 0.05  # plain blending (mask = 1) leaves 0.8 of the square's colour here
    assert np.abs(out - stylize(frames[t])).mean() < 0.02
    # the network's input (the filtered source) lets go of the square too: no trail for the network to paint
    assert np.abs(network_input[uncovered] * 255 - frames[t][uncovered]).max() < 2


def test_bench_video_section_quick(tmp_path):
    """`fst bench --quick --only video` on a few-frame clip: both modes timed in fresh processes, the
    stabilized one's flicker below per-frame's, the ratios those of its rows, and the section only
    when asked for (it takes minutes at full settings)."""
    import json

    clip = make_clip(tmp_path / "clip.mp4", frames=25)  # ~10 s on 2 idle cores
    code, stdout, stderr = run_fst("bench", "--quick", "--only", "video", "--video", clip, "--model", "great_wave",
                                   "--json", timeout=120)
    assert code == 0, stderr
    report = json.loads(stdout)
    assert list(report["sections"]) == ["video"] and report["command"].endswith("--video clip.mp4")
    video = report["sections"]["video"]
    rows = {r["name"]: r for r in video["rows"]}
    default = f"stability {DEFAULT_STABILITY}"
    assert list(rows) == [default, "per-frame"]  # --quick: no memory rows
    stabilized, per_frame = rows[default], rows["per-frame"]
    for row in rows.values():
        assert row["frames"] == 25 and len(row["times"]) == 1 and row["fps"] == pytest.approx(25 / row["seconds"])
        assert row["memory"]["peak_rss_scope"] == "child process" and row["style"] > 0
        assert row["source_warping_error"] < row["warping_error"]
    assert stabilized["warping_error"] < per_frame["warping_error"]
    assert video["ratios"]["warping_error"] == pytest.approx(stabilized["warping_error"] / per_frame["warping_error"])
    assert video["ratios"]["time_per_frame"] == pytest.approx(stabilized["seconds"] / per_frame["seconds"])
    assert video["ratios"]["style"] == pytest.approx(stabilized["style"] / per_frame["style"])
    code, stdout, stderr = run_fst("bench", "--quick", "--only", "video", "--video", tmp_path / "none.mp4", timeout=60)
    assert code == 2 and stderr.strip() == f"fst: error: {tmp_path / 'none.mp4'}: no such clip (the video section needs one: --video CLIP)"
