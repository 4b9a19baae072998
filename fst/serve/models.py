"""The models a server runs: one ONNX Runtime session per fp32 `*.onnx` in --models, loaded once.

A model's name is its file name without `.onnx`; the reduced-precision variants `fst export`
writes beside a model (`NAME.fp16.onnx`, `NAME.int8.onnx`) are skipped. What the API publishes
of a model is what a client needs to pick one: not its training settings (data paths, held-out
files).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fst import FstError
from fst.styles import SHIPPED, shipped_files

log = logging.getLogger("fst.server")

VARIANT_SUFFIXES = (".fp16.onnx", ".int8.onnx")
PAINTING_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
THUMBNAIL_SIDE = 384
PUBLIC_METADATA = ("fst.style", "fst.styles", "fst.architecture", "fst.convention", "fst.version")


@dataclass
class Model:
    name: str
    path: Path
    stylizer: Any  # fst.stylize.OnnxStylizer
    thumbnail: bytes | None = None  # JPEG of the painting, for the web page
    info: dict = field(default_factory=dict)  # SHIPPED entry: painting, artist, year, scan

    @property
    def style(self) -> str:
        return self.stylizer.metadata.get("fst.style", "")

    def describe(self, default: str) -> dict:
        meta = self.stylizer.metadata
        return {
            "name": self.name,
            "default": self.name == default,
            "style": self.style,
            "painting": self.info.get("painting"),
            "artist": self.info.get("artist"),
            "year": self.info.get("year"),
            "painting_url": f"/v1/models/{quote(self.name, safe='')}/painting" if self.thumbnail else None,
            "architecture": _json_or_none(meta.get("fst.architecture")),
            "metadata": {k: meta[k] for k in PUBLIC_METADATA if k in meta},
        }

    def content_disposition(self, ext: str) -> str:
        """`inline` with an ASCII filename and the exact UTF-8 one (RFC 6266): any model name fits."""
        fallback = re.sub(r"[^A-Za-z0-9._-]", "_", self.name) or "stylized"
        return f"inline; filename=\"{fallback}.{ext}\"; filename*=UTF-8''{quote(f'{self.name}.{ext}', safe='')}"


def _json_or_none(text: str | None):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _painting_path(name: str, folder: Path) -> Path | None:
    candidates = [shipped_files(name)["painting"]] + [folder / f"{name}{ext}" for ext in PAINTING_EXTENSIONS]
    return next((p for p in candidates if p.is_file()), None)


def _thumbnail(path: Path) -> bytes | None:
    from PIL import Image, ImageOps

    from fst.images import open_image

    try:
        with open_image(path) as img:
            if img.width * img.height > 100_000_000:
                return None
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=85)
            return buf.getvalue()
    except Exception as e:  # a broken painting only loses its thumbnail
        log.warning("%s: no thumbnail (%s)", path, e)
        return None


def load_models(folder: str | os.PathLike, threads: int) -> dict[str, Model]:
    """Every fp32 .onnx in `folder` -> {name: Model}, each session warmed up once."""
    import numpy as np

    from fst.stylize import OnnxStylizer

    folder = Path(folder)
    if not folder.is_dir():
        raise FstError(f"{folder}: no such models folder")
    paths = sorted(p for p in folder.glob("*.onnx") if p.is_file() and not p.name.endswith(VARIANT_SUFFIXES))
    if not paths:
        raise FstError(f"{folder}: no .onnx models in this folder (write one with `fst export`)")
    models: dict[str, Model] = {}
    warm = np.full((3, 32, 32), 0.5, np.float32)
    for path in paths:
        name = path.name[: -len(".onnx")]
        # release_memory: each run gives its arena back (else every model keeps its largest run)
        stylizer = OnnxStylizer(str(path), threads=threads, release_memory=True)
        stylizer(warm)  # first run allocates; do it before the first user waits
        painting = _painting_path(name, folder)
        models[name] = Model(name, path, stylizer, _thumbnail(painting) if painting else None, dict(SHIPPED.get(name, {})))
    return models
