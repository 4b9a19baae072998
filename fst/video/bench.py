"""Video benchmark: the whole `fst stylize CLIP` command, stabilized against per-frame.

    fst bench --only video [--quick] [--video CLIP]          (the section of fst bench)
    python -m fst.video.bench [--video box.mp4] [--seconds 5] [--repeats 2] [--weights 0.5,0.9]

speed    frames per second of the whole command (start-up, decode, stylize, flow, encode, audio
         copy) in fresh processes, the modes interleaved so that a busy machine slows them
         alike; each process's own peak RSS (fst.bench.harness.run_command).
flicker  the warping error (fst.video.measure) of both outputs, and the source's own.
style    the style term J_style of both outputs on sampled frames, with the model's training loss
         (fst.evaluate.load_criterion; this part imports torch: it is a measurement).
memory   peak RSS of 10 s of the clip and of the clip played `loops` times (looped by remuxing, no
         re-encode) at a small --max-size: frames stream, so it must not grow with the length.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fst import FstError
from fst.video import DEFAULT_STABILITY  # (this package's __init__ imports neither PyAV nor OpenCV)

REPO = Path(__file__).resolve().parent.parent.parent
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "videos" / "box.mp4"  # the build machines' clip (issue 13)
STABILIZED, PER_FRAME = f"stability {DEFAULT_STABILITY}", "per-frame"


def fst_command(args: list[str], log_path: str) -> tuple[float, float]:
    """One `fst ARGS` in a fresh process: (wall seconds, its own peak RSS in MB)."""
    import sys

    from fst.bench.harness import run_command

    return run_command([sys.executable, "-m", "fst", *args], log_path)


def frames_in(path: str) -> int:
    from fst.video.io import VideoSource

    with VideoSource(path) as source:
        return source.expected_frames() or 0


def loop_clip(source: str, target: str, times: int) -> None:
    """source played `times` times in a row, by copying its packets with shifted timestamps."""
    import av

    with av.open(source) as src, av.open(target, "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        length = {s.index: (s.duration or 0) + round(0.1 / s.time_base) for s in src.streams if s.index in streams}
        for k in range(times):
            src.seek(0)
            for packet in src.demux(*[s for s in src.streams if s.index in streams]):
                if packet.dts is None:
                    continue
                shift = k * length[packet.stream.index]
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def style_terms(model: str, path: str, every: int, vgg_weights: str | None = None) -> float:
    """Mean J_style of every `every`-th frame of a video, at its own size."""
    import numpy as np
    import torch

    from fst.evaluate import load_criterion
    from fst.video.measure import video_frames

    criterion, _ = load_criterion(model, vgg_weights=vgg_weights)
    terms = []
    with torch.no_grad():
        for i, rgb in enumerate(video_frames(path)):
            if i % every == every // 2:
                x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()[None] / 255.0
                terms.append(float(criterion.style_loss_per_image(x)))
    return float(np.mean(terms))


def _row(name: str, role: str, runs: list[tuple[float, float]], frames: int, **extra) -> dict:
    """A table row from the (seconds, peak MB) of each run: the least disturbed run's speed."""
    best = min(t for t, _ in runs)
    return {"section": "video", "size": None, "name": name, "role": role, "frames": frames, "seconds": best,
            "times": [round(t, 3) for t, _ in runs], "fps": frames / best,
            "memory": {"peak_rss_mb": round(max(m for _, m in runs), 1), "peak_rss_scope": "child process"}, **extra}


def bench_video(video: str, model: str = "great_wave", seconds: float | None = 5.0, repeats: int = 2,
                weights: tuple[float, ...] = (), style_every: int = 30, max_size: int | None = None,
                memory_size: int = 160, memory_loops: int = 4, vgg_weights: str | None = None,
                workdir: str | None = None, log=lambda message: None) -> dict:
    """Rows (stabilized at the default weight, per-frame, other --stability weights, memory), the
    stabilized / per-frame ratios and the settings: fst bench's "video" section."""
    from fst.video import require_video_libs

    require_video_libs()
    from fst.video.measure import measure_files

    if not os.path.isfile(video):
        raise FstError(f"{video}: no such clip (the video bench needs one: --video CLIP)")
    work = workdir or tempfile.mkdtemp(prefix="fst-video-bench-")
    cut = (["--duration", str(seconds)] if seconds else []) + (["--max-size", str(max_size)] if max_size else [])
    modes = {STABILIZED: [], PER_FRAME: ["--per-frame"],
             **{f"stability {w}": ["--stability", str(w)] for w in weights if w != DEFAULT_STABILITY}}
    outputs = {mode: os.path.join(work, f"{mode.replace(' ', '_')}.mp4") for mode in modes}
    runs: dict[str, list] = {mode: [] for mode in modes}
    for k in range(repeats):  # interleaved: a neighbour's load hits all modes alike
        for mode, flags in modes.items():
            runs[mode].append(fst_command(["stylize", video, "-m", model, "-o", outputs[mode], "--overwrite", *cut,
                                           *flags], os.path.join(work, "stylize.log")))
            log(f"video: {mode}, run {k + 1} of {repeats}: {runs[mode][-1][0]:.1f} s")
    rows = []
    for mode in modes:
        flicker = measure_files(video, outputs[mode])
        style = style_terms(model, outputs[mode], style_every, vgg_weights) if style_every else None
        rows.append(_row(mode, "fst" if mode == STABILIZED else "baseline" if mode == PER_FRAME else "reference",
                         runs[mode], frames_in(outputs[mode]), warping_error=flicker["output"],
                         source_warping_error=flicker["source"], style=style))
    ratios = _ratios(rows[0], rows[1])
    if memory_loops:
        rows += memory_rows(video, model, memory_size, memory_loops, work)
    return {"clip": os.path.basename(video), "model": model, "seconds_of_clip": seconds, "max_size": max_size,
            "repeats": repeats, "style_every": style_every, "rows": rows, "ratios": ratios}


def _ratios(stabilized: dict, per_frame: dict) -> dict:
    """Stabilized / per-frame: warping error, time per frame (whole command), style term."""
    style = stabilized["style"] / per_frame["style"] if stabilized.get("style") else None
    return {"warping_error": stabilized["warping_error"] / per_frame["warping_error"],
            "time_per_frame": per_frame["fps"] / stabilized["fps"], "style": style}


def memory_rows(video: str, model: str, size: int, loops: int, work: str) -> list[dict]:
    """Peak RSS of 10 s of the clip (past the warm-up of the decoder, encoder and ONNX Runtime pools)
    and of the clip played `loops` times, at --max-size `size`."""
    rows = []
    long_clip = os.path.join(work, "looped.mp4")
    loop_clip(video, long_clip, loops)
    output = os.path.join(work, "memory.mp4")
    for name, path, extra in [("memory short", video, ["--duration", "10"]), ("memory long", long_clip, [])]:
        run = fst_command(["stylize", path, "-m", model, "-o", output, "--overwrite", "--max-size", str(size), *extra],
                          os.path.join(work, "stylize.log"))
        rows.append(_row(name, "reference", [run], frames_in(output), max_size=size))
    return rows


def run(ctx) -> dict:
    """`fst bench --only video`: not in the default run (minutes on 2 cores, and it needs a clip);
    --quick: 1 s of the clip at --max-size 160, one round, no memory rows (CI: seconds)."""
    from fst.bench.harness import log

    quick = ctx.plan.quick
    video = ctx.video or str(DEFAULT_CLIP)
    result = bench_video(video, ctx.model.spec or "great_wave", seconds=1.0 if quick else 5.0,
                         repeats=ctx.plan.repeats["video"], style_every=10 if quick else 30,
                         max_size=160 if quick else None, memory_loops=0 if quick else 4,
                         vgg_weights=ctx.vgg_weights, workdir=ctx.workdir, log=log)
    notes = ["video: best of the interleaved runs (the least disturbed); warping error on 0..255, against the source's "
             "own; style term: the model's J_style on every "
             f"{result['style_every']}th frame of the encoded output"]
    if quick:
        notes.append("video --quick: 1 s of the clip at --max-size 160, no memory rows")
    return {**result, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    from fst.bench.report import table_text, video_table

    p = argparse.ArgumentParser(prog="python -m fst.video.bench", description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(DEFAULT_CLIP))
    p.add_argument("--model", default="great_wave")
    p.add_argument("--seconds", type=float, default=5.0, help="stylize this much of the clip (0: all of it)")
    p.add_argument("--max-size", type=int, help="--max-size of the stylize runs")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--weights", default="", help="also these --stability weights, comma-separated")
    p.add_argument("--style-every", type=int, default=30, help="style term on every N-th frame (0: skip, no torch)")
    p.add_argument("--memory-size", type=int, default=160, help="--max-size of the memory runs")
    p.add_argument("--memory-loops", type=int, default=4, help="the long memory run plays the clip this many times (0: no memory runs)")
    p.add_argument("--vgg-weights", default=os.environ.get("FST_VGG_WEIGHTS"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    weights = tuple(float(w) for w in args.weights.split(",") if w.strip())
    result = bench_video(args.video, args.model, args.seconds or None, args.repeats, weights, args.style_every,
                         args.max_size, args.memory_size, args.memory_loops, args.vgg_weights)
    print(json.dumps(result, indent=2) if args.json else table_text(video_table(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
