"""`fst gallery`: one photo through every shipped style, beside the paintings, for README."""

from __future__ import annotations

from pathlib import Path

from fst import FstError
from fst.images import load_image, save_image
from fst.styles import available_styles, shipped_files
from fst.stylize import OnnxStylizer, stylize_array


def run(args) -> int:
    """One photo through every shipped style, plus the paintings, as JPEGs and a Markdown table."""
    names = available_styles()
    if not names:
        raise FstError("no shipped styles found (export/*.onnx)")
    out = Path(args.output)
    photo = load_image(args.photo, long_side=args.image_size)
    save_image(out / "photo.jpg", photo.rgb, overwrite=args.overwrite)
    header, images = ["photo"], [f"![photo]({out.as_posix()}/photo.jpg)"]
    for name in names:
        files = shipped_files(name)
        result = stylize_array(OnnxStylizer(str(files["onnx"])), photo.rgb)
        save_image(out / f"{name}.jpg", result, overwrite=args.overwrite)
        painting = load_image(files["painting"], long_side=args.image_size // 2)
        save_image(out / f"painting_{name}.jpg", painting.rgb, overwrite=args.overwrite)
        header.append(name)
        images.append(f"![{name}]({out.as_posix()}/{name}.jpg)<br>![painting]({out.as_posix()}/painting_{name}.jpg)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    print("| " + " | ".join(images) + " |")
    return 0
