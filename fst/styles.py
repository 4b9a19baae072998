"""The shipped styles: where their files are, where their paintings come from, and the gallery.

No torch here: resolving a model is part of `fst stylize`'s start-up.
Shipped files: export/<style>.onnx, checkpoints/<style>.pth and a copy of each painting at
checkpoints/styles/<style>.jpg, at the top of a checkout; an installed wheel carries the same
folders inside the package, as fst/shipped/ (see setup.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fst import FstError

DEFAULT_STYLE = "starry_night"

# Paintings are public domain; the scans' origins (see also checkpoints/styles/CREDITS.md).
SHIPPED = {
    "starry_night": {
        "painting": "The Starry Night", "artist": "Vincent van Gogh", "year": "1889",
        "scan": "Debian opencv-doc 4.6.0, examples/data/starry_night.jpg, border cropped",
    },
    "great_wave": {
        "painting": "The Great Wave off Kanagawa", "artist": "Katsushika Hokusai", "year": "c. 1831",
        "scan": "GCompris (Debian gcompris-qt-data 3.1-2), GPLv3+",
    },
    "composition_viii": {
        "painting": "Composition VIII", "artist": "Wassily Kandinsky", "year": "1923",
        "scan": "GCompris (Debian gcompris-qt-data 3.1-2), GPLv3+",
    },
    "the_night_cafe": {
        "painting": "The Night Café", "artist": "Vincent van Gogh", "year": "1888",
        "scan": "GCompris (Debian gcompris-qt-data 3.1-2), GPLv3+",
    },
}


PACKAGE = Path(__file__).resolve().parent


def home() -> Path:
    """The folder holding export/ and checkpoints/: fst/shipped in an installed wheel, else the
    checkout (a clone, or an editable install of one)."""
    installed = PACKAGE / "shipped"
    return installed if installed.is_dir() else PACKAGE.parent


def shipped_files(name: str) -> dict[str, Path]:
    root = home()
    return {
        "onnx": root / "export" / f"{name}.onnx",
        "pth": root / "checkpoints" / f"{name}.pth",
        "painting": root / "checkpoints" / "styles" / f"{name}.jpg",
    }


def available_styles() -> list[str]:
    return [name for name in SHIPPED if shipped_files(name)["onnx"].exists()]


def resolve_model(spec: str | None, backend: str = "onnx") -> str:
    """A path to a .onnx/.pth, or a shipped style name (None: the default style) -> a file path."""
    spec = spec or DEFAULT_STYLE
    if os.path.isdir(spec):
        raise FstError(f"{spec}: is a folder; a model is a shipped style name, a .onnx or a .pth file")
    if os.path.isfile(spec):
        if not spec.endswith((".onnx", ".pth", ".pt")):
            raise FstError(f"{spec}: a model must be a .onnx or .pth file")
        return spec
    if spec in SHIPPED or not os.path.splitext(spec)[1]:
        files = shipped_files(spec)
        path = files["pth"] if backend == "torch" else files["onnx"]
        if path.exists():
            return str(path)
    known = ", ".join(available_styles()) or "none installed"
    raise FstError(f"{spec}: no such model file or shipped style (shipped: {known})")


def run_styles(args) -> int:
    rows = []
    for name, info in SHIPPED.items():
        files = shipped_files(name)
        row = {"name": name, **info, "default": name == DEFAULT_STYLE,
               **{f"{k}_file" if k == "painting" else k: str(v) for k, v in files.items() if v.exists()}}
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        mark = "*" if row["default"] else " "
        status = "" if "onnx" in row else "  (not installed)"
        print(f"{mark} {row['name']:<18} {row['painting']}, {row['artist']} ({row['year']}); scan: {row['scan']}{status}")
    print("* default style")
    return 0

