"""`fst evaluate`: how far a model moves photos toward its style, measured with the training loss.

For each photo P and its stylization G = model(P), at --size px (or the photo's own size):
    style ratio   = J_style(G) / J_style(P)     against the painting (lower: more of the style)
    content       = J_content(G, P)              (higher: less of the photo's subject left)
    layer shares  = each style layer's part of J_style(G)   (which texture scale is left to match)
with the loss weights and style size the model was trained with. With --held-out, the photos are
the ones the training run held out (never trained on), found under --photos. A collection is
evaluated style by style (each against its own painting), or the one style MODEL:STYLE names.
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
from fst.styles import PAINTINGS, model_styles, resolve_model, resolve_style, shipped_files
from fst.vgg import file_sha256, load_loss_network


def _training_meta(path: str) -> dict:
    if path.endswith(".pth"):
        return torch.load(path, map_location="cpu", weights_only=True)["meta"]
    import onnx

    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    meta = json.loads(props.get("fst.training", "{}"))
    return {"name": props.get("fst.style", ""), "style_names": json.loads(props.get("fst.style_names", "[]")),
            **{k: meta.get(k) for k in ("config", "held_out", "style_sha256", "style_paths")}}


def recorded_painting(model: str, meta: dict, style: str | None = None) -> str:
    """The painting a model (or style of a collection) was trained on: the file its training
    recorded, where it was and still the same file; else a shipped copy of that painting."""
    paths = meta.get("style_paths") or (meta.get("config") or {}).get("style") or []
    hashes = meta.get("style_sha256") or []
    name = meta.get("name")
    if style is not None:
        i = meta["style_names"].index(style)
        paths, hashes, name = paths[i : i + 1], hashes[i : i + 1], style
    if len(paths) == 1 and os.path.isfile(paths[0]) and (not hashes or file_sha256(paths[0]) == hashes[0]):
        return paths[0]
    if name in PAINTINGS and shipped_files(name)["painting"].is_file():
        return str(shipped_files(name)["painting"])
    if len(paths) != 1:
        raise FstError(f"{model}: pass --style PAINTING (the model records {len(paths)} style images)")
    raise FstError(f"{model}: its painting {paths[0]} is not here or has changed; pass --style PAINTING")


def load_criterion(model: str, painting: str | None = None, vgg_weights: str | None = None,
                   style: str | None = None, loss_net=None) -> tuple[PerceptualLoss, str]:
    """The loss a model (or a style of a collection) was trained with (its weights, style size and
    painting), in float32, and that painting; loss_net: a loaded loss network to use (its device)."""
    path, named = resolve_style(model)
    style = style or named
    try:
        meta = _training_meta(path)
    except Exception:
        raise FstError(f"{path}: not an fst model") from None
    painting = painting or recorded_painting(model, meta, style)
    config = meta.get("config") or {}
    loss_config = LossConfig.from_dict(config.get("loss", {}))
    loss_net = loss_net or load_loss_network(vgg_weights)
    style = torch.from_numpy(load_style_image(painting, config.get("style_size", 256), loss_config))[None]
    return PerceptualLoss(loss_net, [style.to(next(loss_net.parameters()).device)], loss_config), painting


def evaluate(model: str, photos: list[str], painting: str | None = None, size: int | None = 256,
             vgg_weights: str | None = None, style: str | None = None) -> dict:
    """The figures of one model (or one style of a collection) on photos; size None: their own."""
    if not photos:
        raise FstError("no photos to evaluate on")
    path = resolve_model(model.rpartition(":")[0] if style is None and ":" in model and not os.path.isfile(model) else model)
    criterion, painting = load_criterion(model, painting, vgg_weights, style)
    stylizer = load_stylizer(model if style is None else path, style=style)
    figures = network_figures(criterion, stylizer, photo_arrays(photos, size))
    return {"model": path, "style": stylizer.name, "painting": painting, "size": size or "own", **figures}


def photo_arrays(paths: list[str], size: int | None):
    """Each photo's file name and its (3, H, W) RGB in [0, 1], longest side `size` (None: as it is),
    one at a time."""
    for path in paths:
        yield os.path.basename(path), load_image(path, long_side=size).rgb


def network_figures(criterion: PerceptualLoss, stylize, photos) -> dict:
    """The figures of a network on photos ((name, (3, H, W) RGB [0, 1]) pairs), each photo's and
    their means. stylize: (3, H, W) [0, 1] -> (3, H, W) [0, 1], a stylizer or a network in training;
    the figures need no more than that, so every caller gets them from here."""
    rows = [photo_figures(criterion, name, rgb, stylize(rgb)) for name, rgb in photos]
    if not rows:
        raise FstError("no photos to evaluate on")
    layers = list(rows[0]["style_layers"])
    return {
        "photos": rows,
        "mean_style_ratio": float(np.mean([r["style_ratio"] for r in rows])),
        "max_style_ratio": float(np.max([r["style_ratio"] for r in rows])),
        "mean_content": float(np.mean([r["content"] for r in rows])),
        "mean_style_layers": {k: float(np.mean([r["style_layers"][k] for r in rows])) for k in layers},
    }


def photo_figures(criterion: PerceptualLoss, name: str, photo: np.ndarray, styled: np.ndarray) -> dict:
    """One photo P and its stylization G, both (3, H, W) RGB [0, 1]: the style terms of both, their
    ratio, the content term, and each layer's share of G's style term."""
    device = next(criterion.buffers()).device  # the style targets': where training runs, in its figures
    p, g = (torch.from_numpy(np.ascontiguousarray(a))[None].to(device) for a in (photo, styled))
    with torch.no_grad():
        before = float(criterion.style_loss_per_image(p))
        per_layer = {k: float(v) for k, v in criterion.style_loss_per_layer(g).items()}
        content = float(criterion(g, p)["content"])
    after = sum(per_layer.values())
    return {"photo": name, "width": photo.shape[2], "height": photo.shape[1],
            "style_photo": before, "style_output": after, "style_ratio": after / before, "content": content,
            "style_layers": {k: v / after for k, v in per_layer.items()}}


def run(args) -> int:
    if args.video:
        from fst.video import evaluate_video

        return evaluate_video(args)
    if not args.models or not args.photos:
        raise FstError("evaluate needs MODEL... --photos PATH... (or --video SRC OUT)")
    reports = []
    size = None if args.image_size == "own" else args.image_size
    for model in args.models:
        path, named = resolve_style(model)
        if not args.held_out:
            photos = find_images(args.photos)
        else:
            held = set(_training_meta(path).get("held_out") or [])
            photos = [p for p in find_images(args.photos) if os.path.basename(p) in held]
            if not photos:
                raise FstError(f"{model}: none of its held-out photos found under {' '.join(args.photos)}")
        for style in [named] if named else model_styles(path) or [None]:
            if style and args.style and not named:
                raise FstError(f"{model} is a collection: with --style PAINTING, name one of its styles (MODEL:STYLE)")
            report = evaluate(path if style else model, photos, args.style, size, args.vgg_weights, style)
            reports.append(report)
            if not args.json:
                _print_report(model, report)
    if args.json:
        print(json.dumps(reports, indent=2))
    return 0


def _size_label(size) -> str:
    return "their own size" if size == "own" else f"{size}px"


def _print_report(model: str, report: dict) -> None:
    shares = "  ".join(f"{k} {v:.0%}" for k, v in report["mean_style_layers"].items())
    label = f"{model} ({report['style']})" if report["style"] and report["style"] not in model else model
    print(f"{label} against {report['painting']}: {len(report['photos'])} photos at {_size_label(report['size'])}  style ratio mean "
          f"{report['mean_style_ratio']:.3f} (max {report['max_style_ratio']:.3f})  content mean {report['mean_content']:.3f}  "
          f"style term by layer: {shares}")
    for r in report["photos"]:
        print(f"    {r['photo']:<40} {r['width']}x{r['height']}  style {r['style_photo']:.3f} -> {r['style_output']:.3f} "
              f"(x{r['style_ratio']:.3f})  content {r['content']:.3f}")
