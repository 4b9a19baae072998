"""What fst bench runs on: test photos (or noise, said so in the report), the style image, and
the model to time, with the network weights the PyTorch rows use."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fst import FstError

REPO = Path(__file__).resolve().parent.parent.parent
FIXTURES = REPO / "tests" / "fixtures"
SHARED_PHOTOS = REPO.parent / "shared" / "data" / "photos"  # the build machines' photos: the shipped models' training data
PHOTO_NAMES = ("chenonceau_castle.jpg", "kitten.jpg", "butterfly.jpg")
STYLE_NAME = "starry_night.jpg"


@dataclass
class Inputs:
    """Records which inputs fell back to noise, for the report."""

    fallbacks: set[str] = field(default_factory=set)

    def photos(self, count: int, size: int) -> list[np.ndarray]:
        """`count` (3, size, size) RGB [0, 1] images: the test photos (squashed to a square), else noise."""
        from fst.images import load_image

        paths = [FIXTURES / name for name in PHOTO_NAMES if (FIXTURES / name).is_file()]
        if paths:
            return [load_image(paths[i % len(paths)], size=(size, size)).rgb for i in range(count)]
        self.fallbacks.add(f"photos: uniform noise images (no {', '.join(PHOTO_NAMES)} in {FIXTURES.name}/)")
        rng = np.random.default_rng(0)
        return [rng.random((3, size, size), dtype=np.float32) for _ in range(count)]

    def style(self, long_side: int) -> np.ndarray:
        """The style image (3, H, W) [0, 1], longer side long_side, as fst's loss loads it."""
        from fst.losses import LossConfig, load_style_image

        path = FIXTURES / STYLE_NAME
        if path.is_file():
            return load_style_image(str(path), long_side, LossConfig())
        self.fallbacks.add(f"style: a uniform noise image (no {STYLE_NAME} in {FIXTURES.name}/)")
        rng = np.random.default_rng(1)
        return rng.random((3, long_side * 3 // 4, long_side), dtype=np.float32)

    def notes(self) -> list[str]:
        return [f"WARNING: inputs fell back to noise: {f}" for f in sorted(self.fallbacks)]


@dataclass
class Model:
    spec: str
    onnx_path: str | None  # None: exported into the work folder from the .pth
    pth_path: str | None
    name: str
    architecture: dict
    shipped: bool

    @property
    def label(self) -> str:
        """How the report names it: never a path of this machine."""
        kind = "shipped style" if self.shipped else Path(self.onnx_path or self.pth_path).name
        return f"{self.name} ({kind})"


def _onnx_architecture(path: str) -> tuple[dict, str]:
    import onnx

    from fst.transformer import DEFAULT_CHANNELS, DEFAULT_RES_BLOCKS

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise FstError(f"{path}: not a loadable ONNX model ({type(e).__name__})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    try:
        arch = json.loads(meta.get("fst.architecture", "{}"))
        arch = {"channels": int(arch["channels"]), "res_blocks": int(arch["res_blocks"])}
    except (ValueError, KeyError, TypeError):
        arch = {"channels": DEFAULT_CHANNELS, "res_blocks": DEFAULT_RES_BLOCKS}
    return arch, meta.get("fst.style", "")


def resolve(spec: str | None) -> Model:
    from fst.styles import DEFAULT_STYLE, SHIPPED, resolve_model, shipped_files

    name = spec or DEFAULT_STYLE
    path = resolve_model(name, "onnx")
    shipped = name in SHIPPED
    if path.endswith(".onnx"):
        arch, style = _onnx_architecture(path)
        pth = None
        if shipped or not os.path.splitext(name)[1]:
            candidate = shipped_files(name)["pth"]
            pth = str(candidate) if candidate.exists() else None
        return Model(name, path, pth, style or Path(path).stem, arch, shipped)
    from fst.transformer import load_model

    net, _ = load_model(path)
    return Model(name, None, path, Path(path).stem, net.architecture(), shipped)


def torch_net(model: Model, device):
    """The model as a TransformerNet (eval) on `device`, and where its weights came from.

    The ONNX graph holds the inference form (fst.subpixel), whose tail weights cannot be mapped
    back one to one; without a .pth the PyTorch rows time the same architecture with random
    weights (timing does not depend on weight values), and the report says so."""
    from fst.transformer import TransformerNet, load_model

    if model.pth_path:
        net, _ = load_model(model.pth_path, device)
        return net, "the model's .pth"
    import torch

    torch.manual_seed(0)
    net = TransformerNet(model.architecture["channels"], model.architecture["res_blocks"])
    return net.to(device).eval(), "random weights of the model's architecture (no .pth beside the ONNX file)"


def fp32_onnx(model: Model, workdir: str) -> str:
    """The model's ONNX file: the shipped one, else exported from the .pth into workdir (once)."""
    if model.onnx_path:
        return model.onnx_path
    path = os.path.join(workdir, "model.onnx")
    if not os.path.isfile(path):
        from fst.export import to_onnx_bytes
        from fst.transformer import load_model

        net, _ = load_model(model.pth_path)
        with open(path, "wb") as f:
            f.write(to_onnx_bytes(net))
    return path


def onnx_variants(model: Model, workdir: str, inputs: Inputs, calibration_size: int) -> tuple[dict[str, str], list[str]]:
    """{'fp32': path, 'fp16': path, 'int8': path}: shipped files beside the model, else made here."""
    from fst.export import write_fp16, write_int8

    fp32 = fp32_onnx(model, workdir)
    notes = [] if model.onnx_path else ["ONNX Runtime rows: the .pth exported to ONNX here"]
    stem = fp32[: -len(".onnx")] if model.onnx_path else None
    variants = {"fp32": fp32}
    for kind in ("fp16", "int8"):
        shipped = f"{stem}.{kind}.onnx" if stem else None
        if shipped and os.path.isfile(shipped):
            variants[kind] = shipped
            notes.append(f"{kind}: the shipped {Path(shipped).name}")
            continue
        path = os.path.join(workdir, f"model.{kind}.onnx")
        try:
            if kind == "fp16":
                write_fp16(fp32, path)
                notes.append("fp16: made here with fst.export.write_fp16")
            else:
                photos = inputs.photos(3, calibration_size)
                write_int8(fp32, path, [p[None] * 255.0 for p in photos])
                notes.append(f"int8: made here with fst.export.write_int8, calibrated on 3 test photos at {calibration_size}²")
            variants[kind] = path
        except Exception as e:  # a variant that cannot be made is a missing row, not a failed bench
            notes.append(f"{kind}: could not be made here ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
    return variants, notes
