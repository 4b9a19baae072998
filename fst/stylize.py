"""`fst stylize`: run a trained network on images, through ONNX Runtime (default) or PyTorch.

This module imports neither torch nor onnxruntime at import time: the ONNX path never loads
torch at all (start-up is part of the latency users time).

Images here are float32 (3, H, W) RGB in [0, 1]; the ONNX model's own convention is 0..255.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from fst import FstError
from fst.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    SAVE_FORMATS,
    check_writable,
    find_images,
    load_image,
    preserve_color,
    resize_array,
    save_image,
)
from fst.mixing import style_weights
from fst.strokes import scale_error, stylize_scaled
from fst.styles import resolve_style
from fst.video import VIDEO_EXTENSIONS, is_video, stylize_videos, video_outputs

MIN_SIDE = 19  # = fst.transformer.MIN_SIDE (not imported: that module imports torch)


class StyleChoice:
    """A collection's chosen style or mix (style weights and a name for files); a single-style
    network has no choice to make. Subclasses set `styles` (names, [] for one style) and `name`."""

    styles: list[str]
    name: str

    def _first_style(self) -> tuple[np.ndarray | None, str]:
        weights, label = style_weights(self.styles)
        return weights, label or self.name

    def choose(self, style: str | None = None, mix: str | None = None, model: str = "this model") -> None:
        weights, label = style_weights(self.styles, style, mix, model)
        if weights is not None:
            self.weights, self.name = weights, label


class OnnxStylizer(StyleChoice):
    """An ONNX Runtime session over an fst model; CUDA when available, else CPU."""

    def __init__(self, model: str | bytes, device: str = "auto", threads: int = 0, release_memory: bool = False):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        # No busy-waiting of the intra-op threads after a run: they would take the cores from
        # whatever runs next (other requests in `fst serve`, PyTorch in the same process: twice
        # as slow right after a run here); it costs ONNX Runtime itself ~1 ms at 256², 0 at 1024².
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if device.startswith("cuda") and not has_cuda:
            raise FstError(f"--device {device}: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
        if device.startswith("cuda") or device == "auto" and has_cuda:
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(device.partition(":")[2] or 0)}))
        elif device != "auto" and device != "cpu":
            raise FstError(f"--device {device}: the ONNX Runtime backend runs on auto, cpu or cuda[:N] "
                           "(--backend torch for others)")
        try:
            self.session = ort.InferenceSession(model, options, providers=providers)
        except Exception as e:
            name = model if isinstance(model, str) else "model"
            raise FstError(f"{name}: not a loadable ONNX model ({str(e).splitlines()[0][:160]})") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.name = self.metadata.get("fst.style", "")
        self.styles = json.loads(self.metadata.get("fst.style_names", "[]"))  # a collection's, in weight order
        self.weights, self.name = self._first_style()
        # release_memory (fst serve): the arena gives its blocks back after each run, else it keeps
        # every session's largest run for good (~0.5 GB per model after one 2048² request).
        self.run_options = None
        if release_memory:
            self.run_options = ort.RunOptions()
            self.run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def __call__(self, rgb: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """(3, H, W) [0, 1] -> (3, H, W) [0, 1]; weights: a collection's (S,) style weights
        (default: the ones `choose` set)."""
        feed = {"input": (rgb[None] * 255.0).astype(np.float32)}
        if self.styles:
            feed["style_weights"] = self.weights if weights is None else weights
        out = self.session.run(None, feed, self.run_options)[0][0]
        return out / 255.0


class TorchStylizer(StyleChoice):
    """The same network in eager PyTorch (--backend torch)."""

    def __init__(self, path: str, device: str = "auto"):
        import torch

        from fst.runtime import pick_device
        from fst.subpixel import for_inference
        from fst.transformer import load_model

        self.torch = torch
        self.device = pick_device(device)
        net, meta = load_model(path, self.device)
        self.net = for_inference(net)
        self.metadata = {"fst.style": meta.get("name", ""), "fst.architecture": json.dumps(meta.get("architecture", {}))}
        self.name = meta.get("name", "")
        self.styles = meta.get("style_names", [])
        self.weights, self.name = self._first_style()

    def __call__(self, rgb: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        with self.torch.inference_mode():
            x = self.torch.from_numpy(np.ascontiguousarray(rgb))[None].to(self.device)
            w = self.weights if weights is None else weights
            style = None if w is None else self.torch.from_numpy(w).to(self.device)
            return self.net(x, style)[0].float().cpu().numpy()


def load_stylizer(spec: str | None, backend: str = "onnx", device: str = "auto", style: str | None = None,
                  mix: str | None = None):
    """A shipped style name, a .pth or an .onnx (MODEL:STYLE for a style of a collection) -> a
    callable stylizer, with the style or mix chosen (a collection's first style by default)."""
    path, named = resolve_style(spec, backend)
    if named and (style or mix):
        raise FstError(f"-m {spec} names a style already: drop --style/--mix, or name the collection alone")
    stylizer = _load_file(path, backend, device)
    stylizer.choose(named or style, mix, path)
    return stylizer


def _load_file(path: str, backend: str, device: str):
    if path.endswith(".onnx"):
        if backend == "torch":
            raise FstError(f"{path}: --backend torch needs a .pth model (the ONNX file runs on onnxruntime)")
        return OnnxStylizer(path, device)
    if backend == "torch":
        return TorchStylizer(path, device)
    # A .pth on the ONNX Runtime backend: export it in memory first (with its style names).
    from fst.export import add_metadata, to_onnx_bytes
    from fst.transformer import load_model

    net, meta = load_model(path)
    return OnnxStylizer(add_metadata(to_onnx_bytes(net), meta).SerializeToString(), device)


def _ramp(length: int, overlap_before: int, overlap_after: int) -> np.ndarray:
    """1-D feathering weights: linear ramps over the overlaps, 1 in between."""
    w = np.ones(length, dtype=np.float32)
    if overlap_before:
        w[:overlap_before] = np.linspace(0, 1, overlap_before + 2, dtype=np.float32)[1:-1]
    if overlap_after:
        w[length - overlap_after :] = np.linspace(1, 0, overlap_after + 2, dtype=np.float32)[1:-1]
    return w


def stylize_tiled(stylizer, rgb: np.ndarray, tile: int, overlap: int | None = None, guide_side: int = 768) -> np.ndarray:
    """Stylize a large (3, H, W) image in overlapping tiles, in memory bounded by the tile size.

    Instance norm normalises each tile by its own statistics, so tiles would differ in tone. A
    guide pass stylizes the whole image downscaled to `guide_side`; each tile's per-channel mean
    and standard deviation are then matched to the guide's over the same region, and the tiles are
    blended with linear feathering over their overlaps (no seams).
    """
    _, h, w = rgb.shape
    tile = max(64, tile - tile % 4)
    overlap = overlap if overlap is not None else max(16, tile // 8)
    overlap -= overlap % 4
    if h <= tile and w <= tile:
        return stylizer(rgb)
    scale = min(1.0, guide_side / max(h, w))
    gw, gh = max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale))
    guide = stylizer(resize_array(rgb, (gw, gh)))
    out = np.zeros_like(rgb)
    weight = np.zeros((h, w), dtype=np.float32)
    step = tile - overlap
    tops = list(range(0, max(h - tile, 0) + 1, step))
    lefts = list(range(0, max(w - tile, 0) + 1, step))
    if tops[-1] + tile < h:
        tops.append(h - tile)
    if lefts[-1] + tile < w:
        lefts.append(w - tile)
    for top in tops:
        for left in lefts:
            bottom, right = min(top + tile, h), min(left + tile, w)
            styled = stylizer(rgb[:, top:bottom, left:right])
            # The guide over this tile's region, at the tile's size.
            g = guide[:, int(top * scale) : max(int(top * scale) + 1, round(bottom * scale)),
                      int(left * scale) : max(int(left * scale) + 1, round(right * scale))]
            g = resize_array(g, (right - left, bottom - top))
            s_mean, s_std = styled.mean(axis=(1, 2), keepdims=True), styled.std(axis=(1, 2), keepdims=True)
            g_mean, g_std = g.mean(axis=(1, 2), keepdims=True), g.std(axis=(1, 2), keepdims=True)
            gain = np.clip(g_std / np.maximum(s_std, 1e-4), 0.5, 2.0)
            styled = np.clip((styled - s_mean) * gain + g_mean, 0.0, 1.0)
            wy = _ramp(bottom - top, overlap if top > 0 else 0, overlap if bottom < h else 0)
            wx = _ramp(right - left, overlap if left > 0 else 0, overlap if right < w else 0)
            wmap = wy[:, None] * wx[None, :]
            out[:, top:bottom, left:right] += styled * wmap
            weight[top:bottom, left:right] += wmap
    return out / np.maximum(weight, 1e-6)


def stylize_array(stylizer, rgb: np.ndarray, strength: float = 1.0, preserve_colors: bool = False, tile: int = 0,
                  stroke_scale: float = 1.0) -> np.ndarray:
    """The whole per-image pipeline on a (3, H, W) [0, 1] array.

    In this order: the network (in tiles with `tile`; at 1/stroke_scale of the size, guided back
    to full size, with a stroke scale: fst.strokes), then the original's colours and the blend with
    it, both at full size against the full-size photo.
    """
    if min(rgb.shape[1:]) < MIN_SIDE:
        raise FstError(f"{rgb.shape[2]}x{rgb.shape[1]} is too small (at least {MIN_SIDE} px a side)")

    def network(x: np.ndarray) -> np.ndarray:
        return stylize_tiled(stylizer, x, tile) if tile else stylizer(x)

    if scale_error(stroke_scale, "stroke scale"):
        raise FstError(scale_error(stroke_scale, "stroke scale"))
    out = network(rgb) if stroke_scale == 1.0 else stylize_scaled(network, rgb, stroke_scale, MIN_SIDE)
    if preserve_colors:
        out = preserve_color(rgb, out)
    if strength < 1.0:
        out = strength * out + (1.0 - strength) * rgb
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _output_paths(inputs: list[str], output: str | None, style: str, fmt: str | None) -> list[str]:
    """Where each input's result goes: beside it (no -o), the file -o names (one input), or the
    folder -o names, keeping the inputs' tree below their common folder."""
    ext = "." + (fmt or "png")
    if output is None:
        paths = [str(Path(p).with_name(f"{Path(p).stem}_{style}{ext}")) for p in inputs]
        if len(set(paths)) != len(paths):  # x.jpg and x.png side by side
            paths = [str(Path(p).with_name(f"{Path(p).stem}_{Path(p).suffix[1:]}_{style}{ext}")) for p in inputs]
        return paths
    if len(inputs) == 1 and Path(output).suffix.lower() in SAVE_FORMATS and not os.path.isdir(output):
        if fmt and SAVE_FORMATS[Path(output).suffix.lower()] != SAVE_FORMATS["." + fmt]:
            raise FstError(f"--format {fmt} with the file {output}: a file is written in its extension's format "
                           "(--format names the files of a folder output)")
        return [output]
    if Path(output).suffix.lower() in IMAGE_EXTENSIONS:
        if len(inputs) == 1:
            raise FstError(f"{output}: unknown output extension (use .png, .jpg or .webp)")
        raise FstError(f"{output}: several inputs need an output folder, not a file")
    if os.path.exists(output) and not os.path.isdir(output):
        raise FstError(f"{output}: exists and is not a folder")
    absolute = [os.path.abspath(p) for p in inputs]
    root = os.path.commonpath([os.path.dirname(p) for p in absolute])
    relative = [os.path.splitext(os.path.relpath(p, root))[0] for p in absolute]
    clashes = {r for r, n in Counter(relative).items() if n > 1}  # x.jpg and x.png in one folder
    relative = [f"{r}_{Path(p).suffix[1:]}" if r in clashes else r for r, p in zip(relative, inputs)]
    return [os.path.join(output, r + ext) for r in relative]


def run(args) -> int:
    if not 0.0 <= args.strength <= 1.0:
        raise FstError("--strength must be between 0 and 1")
    if args.tile and args.tile < 64:
        raise FstError("--tile must be at least 64 pixels")
    if scale_error(args.stroke_scale):
        raise FstError(scale_error(args.stroke_scale))
    inputs = find_images(args.inputs, extensions=IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)
    if not inputs:
        raise FstError("no input images found")
    videos = [p for p in inputs if is_video(p)]  # fst.video; folders and globs may mix both
    inputs = [p for p in inputs if not is_video(p)]
    stylizer = load_stylizer(args.model, args.backend, args.device, args.style, args.mix)
    style = stylizer.name or "styled"
    several = len(inputs) + len(videos) > 1
    video_paths = video_outputs(videos, args.output, style, several) if videos else []
    outputs = _output_paths(inputs, args.output, style, args.format) if inputs else []
    if args.skip_existing and args.overwrite:
        raise FstError("--skip-existing and --overwrite contradict each other: pick one")
    jobs = list(zip(inputs, outputs))
    if args.skip_existing:
        kept_videos = [(src, dst) for src, dst in zip(videos, video_paths) if not os.path.exists(dst)]
        jobs = [(src, dst) for src, dst in jobs if not os.path.exists(dst)]
        skipped = len(inputs) + len(videos) - len(jobs) - len(kept_videos)
        if skipped:
            print(f"skipping {skipped} file(s) whose output exists", file=sys.stderr)
        videos, video_paths = [src for src, _ in kept_videos], [dst for _, dst in kept_videos]
    for _, out in jobs:  # refuse to clobber before spending any time
        check_writable(out, args.overwrite)
    failed = 0
    if videos:
        failed = stylize_videos(videos, video_paths, lambda rgb: stylize_array(
            stylizer, rgb, args.strength, args.preserve_color, args.tile, args.stroke_scale), args)
        if not jobs:
            return 1 if failed else 0
    if len(jobs) > 1:  # a progress bar over folders; a single image skips importing tqdm
        from tqdm import tqdm

        jobs = tqdm(jobs, unit="img", desc="stylize")
    for src, dst in jobs:
        try:
            image = load_image(src, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS, max_side=args.max_size)
            out = stylize_array(stylizer, image.rgb, args.strength, args.preserve_color, args.tile, args.stroke_scale)
            save_image(dst, out, image.alpha, overwrite=args.overwrite)
            if len(jobs) == 1:
                print(f"saved {dst}")
        except (FstError, OSError) as e:  # one line for this file; the others still run
            failed += 1
            text = str(e) if isinstance(e, FstError) else (e.strerror or str(e))
            message = text if text.startswith(src) else f"{src}: {text}"
            line = f"fst: error: {message}"
            if len(jobs) > 1:
                jobs.write(line, file=sys.stderr)  # above the progress bar, on its own line
            else:
                print(line, file=sys.stderr)
    if failed:
        print(f"fst: {failed} of {len(jobs)} image(s) failed", file=sys.stderr)
        return 1
    if len(jobs) > 1:
        print(f"saved {len(jobs)} images to {args.output or 'their folders'}")
    return 0
