"""`fst export`: a trained TransformerNet -> ONNX, verified against PyTorch with ONNX Runtime.

The ONNX model's convention (also stored in its metadata_props as "fst.convention"):
    input  "input":  float32, (N, 3, H, W), RGB, 0..255, any N, H, W (H, W >= 19)
    output "output": float32, (N, 3, H, W), RGB, 0..255, clamped
A style collection has a second input (and its style names, in order, in "fst.style_names"):
    input  "style_weights": float32, (S,): one weight per style; one-hot picks a style, weights
           summing to 1 mix styles (the norm layers' scales and shifts are interpolated)
The graph reflect-pads 16 px on every side and up to a multiple of 4, and crops back, so any size works.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time

import numpy as np
import torch
from torch import nn

from fst import FstError, __version__
from fst.images import default_file_mode, find_images, load_image
from fst.transformer import MIN_SIDE

CONVENTION = f"input float32 NCHW RGB 0..255 -> output float32 NCHW RGB 0..255 (clamped); any N, H>={MIN_SIDE}, W>={MIN_SIDE}"
COLLECTION_CONVENTION = CONVENTION + "; style_weights float32 (S,): one per style of fst.style_names (one-hot picks, a mix interpolates)"
VERIFY_SIZES = [(64, 97), (256, 256), (721, 1280)]  # (H, W): odd, square, large and not multiples of 4


class Pixels255(nn.Module):
    """TransformerNet with the 0..255 interface of the ONNX model."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        return (self.net(x / 255.0, style) * 255.0).clamp(0.0, 255.0)


def verify_styles(styles: int) -> list[np.ndarray | None]:
    """The style weights export checks: none for a single style; else the first and the last
    style alone, and an uneven mix of all."""
    if not styles:
        return [None]
    eye = np.eye(styles, dtype=np.float32)
    mix = np.arange(1, styles + 1, dtype=np.float32)
    return [eye[0], eye[-1], mix / mix.sum()]


def to_onnx_bytes(net: nn.Module, opset: int = 17) -> bytes:
    """Export a TransformerNet to an ONNX model in memory (dynamic batch, height and width), in its
    inference form (fst.subpixel: the same function, faster)."""
    import warnings

    from fst.subpixel import for_inference

    buf = io.BytesIO()
    styles = getattr(net, "styles", 0)
    example = (torch.rand(1, 3, 64, 64) * 255,) + ((torch.full((styles,), 1.0 / styles),) if styles else ())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and IN notices
        torch.onnx.export(
            Pixels255(for_inference(net)).eval(),
            example,
            buf,
            input_names=["input"] + (["style_weights"] if styles else []),
            output_names=["output"],
            opset_version=opset,
            dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}},
            dynamo=False,
        )
    return buf.getvalue()


def add_metadata(model_bytes: bytes, meta: dict) -> "onnx.ModelProto":  # noqa: F821
    import onnx

    model = onnx.load_from_string(model_bytes)
    names = meta.get("style_names")
    props = {
        "fst.convention": COLLECTION_CONVENTION if names else CONVENTION,
        "fst.version": __version__,
        "fst.style": meta.get("name", ""),
        "fst.styles": json.dumps(meta.get("styles", [])),
        "fst.architecture": json.dumps(meta.get("architecture", {})),
        "fst.training": json.dumps({k: meta[k] for k in ("config", "steps", "vgg", "style_sha256", "style_paths", "final_loss", "held_out") if k in meta}),
    }
    if names:
        props["fst.style_names"] = json.dumps(names)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name, model.producer_version = "fst", __version__
    return model


def _session(path_or_bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(path_or_bytes, options, providers=["CPUExecutionProvider"])


def verify(onnx_path: str, net: nn.Module, tolerance: float, log=print) -> float:
    """ONNX checker, then ORT vs PyTorch on VERIFY_SIZES; returns the largest |difference| (0..255)."""
    import onnx

    onnx.checker.check_model(onnx_path, full_check=True)
    session = _session(onnx_path)
    wrapped = Pixels255(net).eval()
    rng = np.random.default_rng(0)
    worst = 0.0
    for (h, w), style in ((size, style) for size in VERIFY_SIZES for style in verify_styles(net.styles)):
        x = (rng.random((1, 3, h, w), dtype=np.float32) * 255).astype(np.float32)
        feed = {"input": x} if style is None else {"input": x, "style_weights": style}
        ours = session.run(None, feed)[0]
        with torch.no_grad():
            ref = wrapped(torch.from_numpy(x), None if style is None else torch.from_numpy(style)).numpy()
        if ours.shape != x.shape:
            raise FstError(f"ONNX output shape {ours.shape} != input shape {x.shape}")
        diff = float(np.abs(ours - ref).max())
        which = "" if style is None else f", style weights [{', '.join(f'{v:.3f}' for v in style)}]"
        log(f"  ORT vs PyTorch at {h}x{w}{which}: max |diff| = {diff:.2e} (0..255 scale)")
        worst = max(worst, diff)
    if worst > tolerance:
        raise FstError(f"ONNX Runtime differs from PyTorch by {worst:.3g} > --tolerance {tolerance}")
    return worst


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two 0..255 arrays."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def style_count(session) -> int:
    """S for a collection's session (its style_weights input is (S,)), else 0."""
    shapes = {i.name: i.shape for i in session.get_inputs()}
    return int(shapes["style_weights"][0]) if "style_weights" in shapes else 0


def feed(x: np.ndarray, styles: int, style: int = 0) -> dict:
    """An ONNX Runtime feed: the image, and for a collection (styles > 0) that style alone."""
    return {"input": x, **({"style_weights": np.eye(styles, dtype=np.float32)[style % styles]} if styles else {})}


def _median_seconds(session, x: np.ndarray, repeats: int = 3) -> float:
    inputs = feed(x, style_count(session))
    session.run(None, inputs)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, inputs)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _photos_as_inputs(folder: str, count: int = 8, size: int = 256) -> list[np.ndarray]:
    paths = find_images([folder])[:count]
    if not paths:
        raise FstError(f"{folder}: no photos for calibration")
    return [load_image(p, long_side=size).rgb[None] * 255.0 for p in paths]


def write_fp16(src: str, dst: str) -> None:
    """fp16 weights and activations, float32 input and output kept."""
    import onnx
    import onnx.numpy_helper
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(src)
    # Constant nodes -> initializers: the converter then leaves those that feed blocked nodes in
    # fp32. Resize is blocked because its scales input must stay float32.
    graph = model.graph
    for node in [n for n in graph.node if n.op_type == "Constant" and n.attribute[0].name == "value"]:
        tensor = onnx.numpy_helper.to_array(node.attribute[0].t)
        graph.initializer.append(onnx.numpy_helper.from_array(tensor, node.output[0]))
        graph.node.remove(node)
    model = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True,
                                     op_block_list=list(DEFAULT_OP_BLOCK_LIST) + ["Resize"])
    onnx.save(model, dst)


def write_int8(src: str, dst: str, photos: list[np.ndarray]) -> None:
    """Static int8 (QDQ, per-channel weights), activations calibrated on the given photos (a
    collection's styles taking turns over them)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            styles = style_count(_session(src))
            self.items = iter([feed(p.astype(np.float32), styles, i) for i, p in enumerate(photos)])

        def get_next(self):
            return next(self.items, None)

    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a line per tensor
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepared = os.path.join(tmp, "prepared.onnx")
            quant_pre_process(src, prepared, skip_symbolic_shape=True)
            # Convolutions only: instance norm and the sigmoid stay float, where quality lives.
            quantize_static(prepared, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            op_types_to_quantize=["Conv"], activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def compare_variant(fp32_path: str, variant_path: str, photos: list[np.ndarray]) -> dict:
    """Size, speed at 512x512 and PSNR against the fp32 model's output on photos."""
    ref, var = _session(fp32_path), _session(variant_path)
    styles = style_count(ref)
    scores = [psnr(ref.run(None, feed(p, styles, i))[0], var.run(None, feed(p, styles, i))[0]) for i, p in enumerate(photos)]
    x = (np.random.default_rng(0).random((1, 3, 512, 512)) * 255).astype(np.float32)
    return {
        "size_kb": round(os.path.getsize(variant_path) / 1024, 1),
        "fp32_size_kb": round(os.path.getsize(fp32_path) / 1024, 1),
        "seconds_512": round(_median_seconds(var, x), 4),
        "fp32_seconds_512": round(_median_seconds(ref, x), 4),
        "psnr_db": round(float(np.mean(scores)), 2),
    }


def export(model_path: str, output: str, opset: int = 17, tolerance: float = 0.05, overwrite: bool = False,
           fp16: bool = False, int8: bool = False, calibration: str | None = None, log=print) -> dict:
    from fst.transformer import load_model

    if not output.endswith(".onnx"):
        raise FstError(f"{output}: the output must end in .onnx")
    stem = output[: -len(".onnx")]
    targets = [output] + ([stem + ".fp16.onnx"] if fp16 else []) + ([stem + ".int8.onnx"] if int8 else [])
    for path in targets:
        if os.path.exists(path) and not overwrite:
            raise FstError(f"{path}: already exists (pass --overwrite to replace it)")
    if int8 and not calibration:
        raise FstError("--int8 needs --calibration DIR (a few photos to calibrate activation ranges)")
    if opset < 17:
        raise FstError("--opset must be 17 or newer")
    photos = _photos_as_inputs(calibration) if calibration else None  # a bad folder fails before any file is written
    net, meta = load_model(model_path)
    model = add_metadata(to_onnx_bytes(net, opset), meta)
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    import onnx

    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=folder)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.chmod(tmp, default_file_mode())
        log(f"verifying {output} (opset {opset})")
        worst = verify(tmp, net, tolerance, log)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    report = {"output": output, "max_abs_diff": worst, "size_kb": round(os.path.getsize(output) / 1024, 1)}
    log(f"wrote {output} ({report['size_kb']} KB), max |ORT - PyTorch| = {worst:.2e} <= {tolerance}")
    for kind, enabled in (("fp16", fp16), ("int8", int8)):
        if not enabled:
            continue
        path = f"{stem}.{kind}.onnx"
        partial = f"{path}.part"  # renamed into place only once complete
        try:
            if kind == "fp16":
                write_fp16(output, partial)
            else:
                write_int8(output, partial, photos)
            os.chmod(partial, default_file_mode())
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        check_photos = photos or [(np.random.default_rng(1).random((1, 3, 256, 256)) * 255).astype(np.float32)]
        report[kind] = compare_variant(output, path, check_photos)
        r = report[kind]
        log(f"wrote {path}: {r['size_kb']} KB (fp32 {r['fp32_size_kb']} KB), {r['seconds_512'] * 1000:.0f} ms at 512² "
            f"(fp32 {r['fp32_seconds_512'] * 1000:.0f} ms), PSNR vs fp32 {r['psnr_db']:.1f} dB")
    return report


def run(args) -> int:
    report = export(args.model, args.output, args.opset, args.tolerance, args.overwrite, args.fp16, args.int8, args.calibration)
    print(json.dumps(report))
    return 0
