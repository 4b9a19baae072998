"""`fst gallery`: one photo through every shipped style (single networks and every style of each
collection), beside the paintings, for README."""

from __future__ import annotations

from pathlib import Path

from fst import FstError
from fst.images import load_image, save_image
from fst.styles import available_collections, available_styles, shipped_files
from fst.stylize import OnnxStylizer, stylize_array

COLUMNS = 4  # pictures per table row in the printed Markdown


def _stylizers():
    """(label, painting name, stylizer) for every shipped single-style network and collection style."""
    for name in available_styles():
        yield name, name, OnnxStylizer(str(shipped_files(name)["onnx"]))
    for collection, styles in available_collections().items():
        stylizer = OnnxStylizer(str(shipped_files(collection)["onnx"]))
        for style in styles:
            stylizer.choose(style)
            yield f"{collection}_{style}", style, stylizer


def run(args) -> int:
    """One photo through every shipped style, plus the paintings, as JPEGs and a Markdown table."""
    out = Path(args.output)
    photo = load_image(args.photo, long_side=args.image_size)
    cells, paintings = [], set()
    for label, painting_name, stylizer in _stylizers():
        if not cells:
            save_image(out / "photo.jpg", photo.rgb, overwrite=args.overwrite)
        save_image(out / f"{label}.jpg", stylize_array(stylizer, photo.rgb), overwrite=args.overwrite)
        painting = shipped_files(painting_name)["painting"]
        if painting.is_file() and painting_name not in paintings:  # a single network and a collection share some
            paintings.add(painting_name)
            small = load_image(painting, long_side=args.image_size // 2)
            save_image(out / f"painting_{painting_name}.jpg", small.rgb, overwrite=args.overwrite)
        cells.append((label, f"![{label}]({out.as_posix()}/{label}.jpg)<br>![painting]({out.as_posix()}/painting_{painting_name}.jpg)"))
    if not cells:
        raise FstError("no shipped styles found (export/*.onnx)")
    cells.insert(0, ("photo", f"![photo]({out.as_posix()}/photo.jpg)"))
    for start in range(0, len(cells), COLUMNS):
        row = cells[start : start + COLUMNS]
        print("| " + " | ".join(label for label, _ in row) + " |")
        print("|" + "---|" * len(row))
        print("| " + " | ".join(image for _, image in row) + " |")
        print()
    return 0
