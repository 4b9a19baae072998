"""The models a server runs: one ONNX Runtime session per fp32 `*.onnx` in --models, loaded once.

A model's name is its file name without `.onnx`; the reduced-precision variants `fst export`
writes beside a model (`NAME.fp16.onnx`, `NAME.int8.onnx`) are skipped. A collection (one network,
several styles: metadata fst.style_names) publishes its styles, each with its painting where one is
known. What the API publishes of a model is what a client needs to pick one: not its training
settings (data paths, held-out files).
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
from fst.styles import DEFAULT_STYLE, PAINTINGS, SHIPPED, shipped_files

log = logging.getLogger("fst.server")

VARIANT_SUFFIXES = (".fp16.onnx", ".int8.onnx")
PAINTING_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
THUMBNAIL_SIDE = 384
PUBLIC_METADATA = ("fst.style", "fst.styles", "fst.style_names", "fst.architecture", "fst.convention", "fst.version")


@dataclass
class Model:
    name: str
    path: Path
    stylizer: Any  # fst.stylize.OnnxStylizer
    thumbnail: bytes | None = None  # JPEG of the painting, for the web page
    info: dict = field(default_factory=dict)  # SHIPPED entry: painting, artist, year, scan
    style_thumbnails: dict[str, bytes] = field(default_factory=dict)  # a collection's, by style name

    @property
    def style(self) -> str:
        return self.stylizer.metadata.get("fst.style", "")

    @property
    def styles(self) -> list[str]:
        """A collection's style names, in weight order; [] for a single-style network."""
        return self.stylizer.styles

    def describe(self, default: str) -> dict:
        meta = self.stylizer.metadata
        return {
            "name": self.name,
            "default": self.name == default,
            "style": self.style,
            "painting": self.info.get("painting"),
            "artist": self.info.get("artist"),
            "year": self.info.get("year"),
            "painting_url": f"{self.url}/painting" if self.thumbnail else None,
            "architecture": _json_or_none(meta.get("fst.architecture")),
            "metadata": {k: meta[k] for k in PUBLIC_METADATA if k in meta},
            "styles": [self._describe_style(name) for name in self.styles],
        }

    @property
    def url(self) -> str:
        return f"/v1/models/{quote(self.name, safe='')}"

    def _describe_style(self, name: str) -> dict:
        info = PAINTINGS.get(name, {})
        return {"name": name, "painting": info.get("painting"), "artist": info.get("artist"), "year": info.get("year"),
                "painting_url": f"{self.url}/styles/{quote(name, safe='')}/painting"
                if name in self.style_thumbnails else None}

    def content_disposition(self, ext: str, label: str = "") -> str:
        """`inline` with an ASCII filename and the exact UTF-8 one (RFC 6266): any model name fits.
        The file is named after the style or mix (`label`) of a collection, else the model."""
        stem = label or self.name
        fallback = re.sub(r"[^A-Za-z0-9._-]", "_", stem) or "stylized"
        return f"inline; filename=\"{fallback}.{ext}\"; filename*=UTF-8''{quote(f'{stem}.{ext}', safe='')}"


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
        models[name] = Model(name, path, stylizer, _painting_thumbnail(name, folder), dict(SHIPPED.get(name, {})),
                             {style: thumb for style in stylizer.styles if (thumb := _painting_thumbnail(style, folder))})
    return models


def default_choice(models: dict[str, Model]) -> tuple[str, str | None]:
    """(model, style or None) a request naming neither gets: fst's default style where the folder
    has it, as a network of its own or as a style of a collection (the shipped classics), else the
    first model (a collection's first style)."""
    if DEFAULT_STYLE in models:
        return DEFAULT_STYLE, None
    holder = next((name for name, m in models.items() if DEFAULT_STYLE in m.styles), None)
    return (holder, DEFAULT_STYLE) if holder else (next(iter(models)), None)


def _painting_thumbnail(name: str, folder: Path) -> bytes | None:
    """The thumbnail of a model's or a style's painting; None where there is no painting (yet)."""
    painting = _painting_path(name, folder)
    return _thumbnail(painting) if painting else None
