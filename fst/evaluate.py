"""`fst evaluate`: how far a model moves photos toward its style, measured with the training loss.

For each photo P and its stylization G = model(P), at --size px:
    style ratio   = J_style(G) / J_style(P)     against the painting (lower: more of the style)
    content       = J_content(G, P)              (higher: less of the photo's subject left)
with the loss weights and style size the model was trained with. By default the photos are the
ones the training run held out (never trained on) with --held-out, found under --photos.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from fst import FstError
from fst.images import find_images, load_image
from fst.losses import LossConfig, PerceptualLoss, load_style_image
from fst.stylize import load_stylizer
from fst.styles import SHIPPED, resolve_model, shipped_files
from fst.vgg import file_sha256, load_loss_network


def _training_meta(path: str) -> dict:
    if path.endswith(".pth"):
        return torch.load(path, map_location="cpu", weights_only=True)["meta"]
    import onnx

    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    meta = json.loads(props.get("fst.training", "{}"))
    return {"name": props.get("fst.style", ""), **{k: meta.get(k) for k in ("config", "held_out", "style_sha256", "style_paths")}}


def recorded_painting(model: str, meta: dict) -> str:
    """The painting a model was trained on: the file its training recorded, where it was and still
    the same file; else a shipped style's copy of its painting."""
    paths = meta.get("style_paths") or (meta.get("config") or {}).get("style") or []
    hashes = meta.get("style_sha256") or []
    if len(paths) == 1 and os.path.isfile(paths[0]) and (not hashes or file_sha256(paths[0]) == hashes[0]):
        return paths[0]
    if meta.get("name") in SHIPPED:
        return str(shipped_files(meta["name"])["painting"])
    if len(paths) != 1:
        raise FstError(f"{model}: pass --style PAINTING (the model records {len(paths)} style images)")
    raise FstError(f"{model}: its painting {paths[0]} is not here or has changed; pass --style PAINTING")


def load_criterion(model: str, painting: str | None = None, vgg_weights: str | None = None) -> tuple[PerceptualLoss, str]:
    """The loss a model was trained with (its weights, style size and painting), and that painting."""
    path = resolve_model(model)
    try:
        meta = _training_meta(path)
    except Exception:
        raise FstError(f"{path}: not an fst model") from None
    painting = painting or recorded_painting(model, meta)
    config = meta.get("config") or {}
    loss_config = LossConfig.from_dict(config.get("loss", {}))
    style = torch.from_numpy(load_style_image(painting, config.get("style_size", 256), loss_config))[None]
    return PerceptualLoss(load_loss_network(vgg_weights), [style], loss_config), painting


def evaluate(model: str, photos: list[str], painting: str | None = None, size: int = 256, vgg_weights: str | None = None) -> dict:
    if not photos:
        raise FstError("no photos to evaluate on")
    path = resolve_model(model)
    criterion, painting = load_criterion(model, painting, vgg_weights)
    stylizer = load_stylizer(path)
    rows = []
    for photo_path in photos:
        photo = load_image(photo_path, long_side=size).rgb
        styled = stylizer(photo)
        p, g = torch.from_numpy(photo)[None], torch.from_numpy(np.ascontiguousarray(styled))[None]
        with torch.no_grad():
            before = float(criterion.style_loss_per_image(p))
            after = float(criterion.style_loss_per_image(g))
            content = float(criterion(g, p)["content"])
        rows.append({"photo": os.path.basename(photo_path), "style_photo": before, "style_output": after,
                     "style_ratio": after / before, "content": content})
    return {
        "model": path,
        "painting": painting,
        "photos": rows,
        "mean_style_ratio": float(np.mean([r["style_ratio"] for r in rows])),
        "max_style_ratio": float(np.max([r["style_ratio"] for r in rows])),
        "mean_content": float(np.mean([r["content"] for r in rows])),
    }


def run(args) -> int:
    if args.video:
        from fst.video import evaluate_video

        return evaluate_video(args)
    if not args.models or not args.photos:
        raise FstError("evaluate needs MODEL... --photos PATH... (or --video SRC OUT)")
    reports = []
    for model in args.models:
        path = resolve_model(model)
        if not args.held_out:
            photos = find_images(args.photos)
        else:
            held = set(_training_meta(path).get("held_out") or [])
            photos = [p for p in find_images(args.photos) if os.path.basename(p) in held]
            if not photos:
                raise FstError(f"{model}: none of its held-out photos found under {' '.join(args.photos)}")
        report = evaluate(model, photos, args.style, args.image_size, args.vgg_weights)
        reports.append(report)
        if not args.json:
            print(f"{model} against {report['painting']}: {len(photos)} photos at {args.image_size}px  style ratio mean {report['mean_style_ratio']:.3f} "
                  f"(max {report['max_style_ratio']:.3f})  content mean {report['mean_content']:.3f}")
            for r in report["photos"]:
                print(f"    {r['photo']:<40} style {r['style_photo']:.3f} -> {r['style_output']:.3f} "
                      f"(x{r['style_ratio']:.3f})  content {r['content']:.3f}")
    if args.json:
        print(json.dumps(reports, indent=2))
    return 0
