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

DEFAULT_STYLE = "starry_night"  # what `fst stylize PHOTO` paints: the single network of that name

# Paintings are public domain; the scans' origins (see also checkpoints/styles/CREDITS.md).
GCOMPRIS_SCAN = "GCompris (Debian gcompris-qt-data 3.1-2), GPLv3+"
EXAMPLES_SCAN = "the example scan of the well-known fast style transfer projects, resized to 1024 px"
PAINTINGS = {
    "starry_night": {"painting": "The Starry Night", "artist": "Vincent van Gogh", "year": "1889",
                     "scan": "Debian opencv-doc 4.6.0, examples/data/starry_night.jpg, border cropped"},
    "the_night_cafe": {"painting": "The Night Café", "artist": "Vincent van Gogh", "year": "1888", "scan": GCOMPRIS_SCAN},
    "great_wave": {"painting": "The Great Wave off Kanagawa", "artist": "Katsushika Hokusai", "year": "c. 1831",
                   "scan": GCOMPRIS_SCAN},
    "composition_viii": {"painting": "Composition VIII", "artist": "Wassily Kandinsky", "year": "1923", "scan": GCOMPRIS_SCAN},
    "cafe_terrace_at_night": {"painting": "Café Terrace at Night", "artist": "Vincent van Gogh", "year": "1888",
                              "scan": GCOMPRIS_SCAN},
    "bal_du_moulin_de_la_galette": {"painting": "Bal du moulin de la Galette", "artist": "Pierre-Auguste Renoir",
                                    "year": "1876", "scan": GCOMPRIS_SCAN},
    "composition_vii": {"painting": "Composition VII", "artist": "Wassily Kandinsky", "year": "1913", "scan": EXAMPLES_SCAN},
    "the_scream": {"painting": "The Scream", "artist": "Edvard Munch", "year": "1893", "scan": EXAMPLES_SCAN},
    "udnie": {"painting": "Udnie", "artist": "Francis Picabia", "year": "1913", "scan": EXAMPLES_SCAN},
    "shipwreck_of_the_minotaur": {"painting": "The Wreck of a Transport Ship (The Shipwreck of the Minotaur)",
                                  "artist": "J. M. W. Turner", "year": "c. 1810", "scan": EXAMPLES_SCAN},
    "woman_with_a_hat": {"painting": "Woman with a Hat", "artist": "Henri Matisse", "year": "1905", "scan": EXAMPLES_SCAN},
}
# The single-style networks shipped beside the collection, each measurably better than its
# collection counterpart in one respect (README: Shipped styles): great_wave and composition_viii
# bring the photos' style term lower; starry_night's strokes grow with --stroke-scale as the
# collection's do not. The collection's the_night_cafe matched or beat its single network, which
# is no longer shipped. Every other style is the classics collection's.
SHIPPED = {name: PAINTINGS[name] for name in ("starry_night", "great_wave", "composition_viii")}
# Shipped style collections (one network, many styles): name -> its styles, in weight order (the
# order of the file's fst.style_names; tests/test_shipped.py checks it).
COLLECTIONS = {"classics": ["bal_du_moulin_de_la_galette", "cafe_terrace_at_night", "composition_viii", "composition_vii",
                            "great_wave", "shipwreck_of_the_minotaur", "starry_night", "the_night_cafe", "the_scream",
                            "udnie", "woman_with_a_hat"]}


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


def available_collections() -> dict[str, list[str]]:
    return {name: styles for name, styles in COLLECTIONS.items() if shipped_files(name)["onnx"].exists()}


def holding_collection(style: str) -> str | None:
    """The first installed shipped collection holding a style of that name, or None."""
    return next((name for name, styles in available_collections().items() if style in styles), None)


def resolve_style(spec: str | None, backend: str = "onnx") -> tuple[str, str | None]:
    """What -m names -> (model file, style of a collection or None). spec: a file or a shipped
    network's name, FILE_OR_NAME:STYLE for a style of a collection, or the bare name of a style
    that only a shipped collection holds (None: the default style)."""
    spec = spec or DEFAULT_STYLE
    if os.path.isfile(spec) or spec in SHIPPED and shipped_files(spec)["onnx"].exists():
        return resolve_model(spec, backend), None
    model, colon, style = spec.rpartition(":")
    if colon and model and style:
        return resolve_model(model, backend), style
    holder = holding_collection(spec)
    if holder:
        return resolve_model(holder, backend), spec
    return resolve_model(spec, backend), None


def resolve_model(spec: str, backend: str = "onnx") -> str:
    """A path to a .onnx/.pth, or a shipped network's or collection's name -> a file path."""
    if os.path.isdir(spec):
        raise FstError(f"{spec}: is a folder; a model is a shipped style name, a .onnx or a .pth file")
    if os.path.isfile(spec):
        if not spec.endswith((".onnx", ".pth", ".pt")):
            raise FstError(f"{spec}: a model must be a .onnx or .pth file")
        return spec
    if spec in SHIPPED or spec in COLLECTIONS or not os.path.splitext(spec)[1]:
        files = shipped_files(spec)
        path = files["pth"] if backend == "torch" else files["onnx"]
        if path.exists():
            return str(path)
    holder = holding_collection(spec)
    if holder:
        raise FstError(f"{spec}: a style of the {holder} collection, not a network of its own: "
                       f"name the collection ({holder}) or stylize with -m {holder}:{spec}")
    known = ", ".join(available_styles() + list(available_collections())) or "none installed"
    raise FstError(f"{spec}: no such model file or shipped style (shipped: {known}; `fst styles` lists them)")


def model_styles(path: str) -> list[str]:
    """A collection file's style names, in weight order ([] for a single-style network)."""
    if path.endswith(".onnx"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            meta = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).get_modelmeta()
        except Exception:
            raise FstError(f"{path}: not a loadable ONNX model") from None
        return json.loads(meta.custom_metadata_map.get("fst.style_names", "[]"))
    from fst.transformer import load_model  # a .pth: torch

    return load_model(path)[1].get("style_names", [])


def _list_models(specs: list[str], as_json: bool) -> int:
    """`fst styles MODEL...`: each model's styles."""
    rows = [{"model": spec, "file": (path := resolve_model(spec)), "styles": model_styles(path)} for spec in specs]
    if as_json:
        print(json.dumps(rows, indent=2))
    for row in [] if as_json else rows:
        styles = ", ".join(row["styles"]) or "one style (not a collection)"
        print(f"{row['model']}: {styles}")
    return 0


def run_styles(args) -> int:
    if getattr(args, "models", None):
        return _list_models(args.models, args.json)
    in_collection = DEFAULT_STYLE not in available_styles()  # no network of its own: a collection's style
    collections = [{"collection": name, "file": str(shipped_files(name)["onnx"]),
                    "styles": [{"name": style, **PAINTINGS.get(style, {}), "default": in_collection and style == DEFAULT_STYLE}
                               for style in styles]}
                   for name, styles in available_collections().items()]
    rows = []
    for name, info in SHIPPED.items():
        files = shipped_files(name)
        row = {"name": name, **info, "default": name == DEFAULT_STYLE,
               **{f"{k}_file" if k == "painting" else k: str(v) for k, v in files.items() if v.exists()}}
        rows.append(row)
    if args.json:
        print(json.dumps(rows + collections, indent=2))
        return 0
    for row in rows:
        mark = "*" if row["default"] else " "
        status = "" if "onnx" in row else "  (not installed)"
        print(f"{mark} {row['name']:<18} {row['painting']}, {row['artist']} ({row['year']}); scan: {row['scan']}{status}")
    for c in collections:
        print(f"\ncollection {c['collection']} ({len(c['styles'])} styles; -m {c['collection']}:STYLE, --mix A=0.5,B=0.5):")
        for st in c["styles"]:
            mark = "*" if st["default"] else " "
            print(f"{mark} {st['name']:<28} {st.get('painting', '')}, {st.get('artist', '')} ({st.get('year', '')})")
    print("* the default style (`fst stylize PHOTO` without -m)")
    return 0
