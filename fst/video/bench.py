"""Video benchmark: the whole `fst stylize CLIP` command, stabilized against per-frame.

    python -m fst.video.bench [--video box.mp4] [--model great_wave] [--seconds 5] [--repeats 2]

speed    frames per second of the whole command (start-up, decode, stylize, flow, encode, audio
         copy) in fresh processes, the modes interleaved so that a busy machine slows them
         alike; peak RSS of each process (its VmHWM).
flicker  the warping error (fst.video.measure) of both outputs, and the source's own.
style    the style term J_style of both outputs on sampled frames, with the model's training loss
         (fst.evaluate.load_criterion; this part imports torch: it is a measurement).
memory   peak RSS of a short and a long run (the clip looped by remuxing, no re-encode) at a small
         --max-size: frames stream, so it must not grow with the length.
`bench_video` returns the rows and the printed table; `fst bench` shows the same table.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fst.video import DEFAULT_STABILITY
from fst.video.measure import measure_files, video_frames

REPO = Path(__file__).resolve().parent.parent.parent


# `fst ARGS` that reports its own peak RSS on exit. VmHWM counts only this program's memory image:
# ru_maxrss of a child would include the benchmark's own memory, copied at fork before the exec.
_PEAK_WRAPPER = (
    "import atexit, sys\n"
    "def peak():\n"
    "    status = open('/proc/self/status').read()\n"
    "    print('fst-peak-rss-kib', status.split('VmHWM:')[1].split()[0], file=sys.stderr)\n"
    "atexit.register(peak)\n"
    "from fst.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def timed(args: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, frames written) of one whole `fst` command in a fresh process (Linux)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"fst {' '.join(args)} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    frames = int(re.search(r"\((\d+) frames\)", proc.stdout).group(1))
    peak_kib = int(re.search(r"fst-peak-rss-kib (\d+)", proc.stderr).group(1))
    return wall, peak_kib / 1024, frames


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

    criterion, _ = load_criterion(model, vgg_weights=vgg_weights)
    terms = []
    with torch.no_grad():
        for i, rgb in enumerate(video_frames(path)):
            if i % every == every // 2:
                x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()[None] / 255.0
                terms.append(float(criterion.style_loss_per_image(x)))
    return float(np.mean(terms))


def bench_video(video: str, model: str = "great_wave", seconds: float | None = 5.0, repeats: int = 2,
                weights: tuple[float, ...] = (), style_every: int = 30, memory_size: int = 160, memory_loops: int = 4,
                vgg_weights: str | None = None, workdir: str | None = None) -> tuple[list[dict], str]:
    """Rows (stabilized at the default weight, per-frame, other --stability weights, memory) and the table."""
    work = workdir or tempfile.mkdtemp(prefix="fst-video-bench-")
    cut = ["--duration", str(seconds)] if seconds else []
    modes = {f"stability {DEFAULT_STABILITY}": [], "per-frame": ["--per-frame"],
             **{f"stability {w}": ["--stability", str(w)] for w in weights if w != DEFAULT_STABILITY}}
    outputs = {mode: os.path.join(work, f"{mode.replace(' ', '_')}.mp4") for mode in modes}
    runs: dict[str, list] = {mode: [] for mode in modes}
    for _ in range(repeats):  # interleaved: a neighbour's load hits all modes alike
        for mode, flags in modes.items():
            runs[mode].append(timed(["stylize", video, "-m", model, "-o", outputs[mode], "--overwrite", *cut, *flags]))
    rows = []
    for mode in modes:
        best = min(runs[mode])  # the least disturbed run
        flicker = measure_files(video, outputs[mode])
        rows.append({"section": "video", "mode": mode, "frames": best[2], "seconds": best[0], "fps": best[2] / best[0],
                     "peak_rss_mib": max(r[1] for r in runs[mode]), "warping_error": flicker["output"],
                     "source_warping_error": flicker["source"],
                     "style": style_terms(model, outputs[mode], style_every, vgg_weights) if style_every else None})
    if memory_loops:
        rows += memory_rows(video, model, memory_size, memory_loops, work)
    return rows, format_table(rows, video, model)


def memory_rows(video: str, model: str, size: int, loops: int, work: str) -> list[dict]:
    """Peak RSS of 10 s of the clip (past the warm-up of the decoder, encoder and ONNX Runtime pools)
    and of the clip played `loops` times, at --max-size `size`."""
    rows = []
    long_clip = os.path.join(work, "looped.mp4")
    loop_clip(video, long_clip, loops)
    for name, path, extra in [("memory short", video, ["--duration", "10"]), ("memory long", long_clip, [])]:
        wall, rss, frames = timed(["stylize", path, "-m", model, "-o", os.path.join(work, "memory.mp4"), "--overwrite",
                                   "--max-size", str(size), *extra])
        rows.append({"section": "video", "mode": name, "frames": frames, "seconds": wall, "fps": frames / wall,
                     "peak_rss_mib": rss, "max_size": size})
    return rows


def format_table(rows: list[dict], video: str, model: str) -> str:
    stabilized, per_frame = rows[0], rows[1]
    lines = [f"video: fst stylize {os.path.basename(video)} -m {model}, whole command, best of the interleaved runs",
             f"{'mode':<14} {'frames':>6} {'s':>7} {'fps':>6} {'peak RSS MiB':>12} {'warp err':>8} {'style':>8}"]
    for r in rows:
        extra = (f"{r['warping_error']:>8.2f} {r['style']:>8.3f}" if r.get("style") is not None else
                 f"{r['warping_error']:>8.2f}" if "warping_error" in r else f"  (--max-size {r['max_size']})")
        lines.append(f"{r['mode']:<14} {r['frames']:>6} {r['seconds']:>7.1f} {r['fps']:>6.2f} {r['peak_rss_mib']:>12.0f} {extra}")
    lines.append(f"source warping error {stabilized['source_warping_error']:.2f}; stabilized / per-frame: warping error "
                 f"{stabilized['warping_error'] / per_frame['warping_error']:.2f}, time per frame "
                 f"{per_frame['fps'] / stabilized['fps']:.2f}"
                 + (f", style term {stabilized['style'] / per_frame['style']:.3f}" if stabilized.get("style") else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m fst.video.bench", description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(REPO.parent / "shared" / "data" / "videos" / "box.mp4"))
    p.add_argument("--model", default="great_wave")
    p.add_argument("--seconds", type=float, default=5.0, help="stylize this much of the clip (0: all of it)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--weights", default="", help="also these --stability weights, comma-separated")
    p.add_argument("--style-every", type=int, default=30, help="style term on every N-th frame (0: skip, no torch)")
    p.add_argument("--memory-size", type=int, default=160, help="--max-size of the memory runs")
    p.add_argument("--memory-loops", type=int, default=4, help="the long memory run plays the clip this many times (0: no memory runs)")
    p.add_argument("--vgg-weights", default=os.environ.get("FST_VGG_WEIGHTS"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    weights = tuple(float(w) for w in args.weights.split(",") if w.strip())
    rows, table = bench_video(args.video, args.model, args.seconds or None, args.repeats, weights, args.style_every,
                              args.memory_size, args.memory_loops, args.vgg_weights)
    print(json.dumps(rows, indent=2) if args.json else table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
