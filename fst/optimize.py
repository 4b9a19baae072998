"""`fst optimize`: Gatys-style per-image optimization of the output pixels.

It minimizes exactly the loss that training uses (fst.losses.PerceptualLoss), so it is the
reference the fast networks are measured against.

The pixels are parametrized as image = sigmoid(z): always a valid image in (0, 1), with smooth
gradients, so L-BFGS's line search never sees a clamp (clamping inside the closure, as the PyTorch
tutorial does, breaks its curvature pairs and can make the loss explode or turn NaN).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

from fst import FstError
from fst.images import DEFAULT_MAX_PIXELS, check_min_side, check_writable, load_image, preserve_color, save_image
from fst.config import LossConfig, OptimizeConfig
from fst.losses import PerceptualLoss, load_style_image
from fst.runtime import CtrlC, pick_device
from fst.vgg import load_loss_network


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) -> (3, H, W) grey: Y (Rec. 601) replicated, for luminance-only transfer."""
    y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return np.repeat(y[None], 3, axis=0).astype(np.float32)


def optimize(
    content_path: str,
    style_paths: list[str],
    loss_config: LossConfig,
    style_blend: list[float] | None = None,
    image_size: int = OptimizeConfig.image_size,
    style_size: int | None = None,
    optimizer: str = OptimizeConfig.optimizer,
    iterations: int = OptimizeConfig.iterations,
    lr: float | None = None,
    init: str = OptimizeConfig.init,
    preserve_colors: bool = False,
    seed: int = OptimizeConfig.seed,
    device: str = OptimizeConfig.device,
    amp_dtype: torch.dtype | None = None,
    vgg_weights: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_snapshot=None,
    save_every: int = OptimizeConfig.save_every,
    progress: bool = True,
) -> tuple[np.ndarray, dict]:
    """Returns (image (3, H, W) in [0, 1], report with the initial and final loss terms)."""
    torch.manual_seed(seed)
    dev = pick_device(device)
    content_rgb = load_image(content_path, long_side=image_size, max_pixels=max_pixels).rgb
    check_min_side(content_rgb, content_path)
    styles = [load_style_image(p, style_size or image_size, loss_config, max_pixels) for p in style_paths]
    if preserve_colors:  # transfer luminance only; colours come back from the content at the end
        content_for_loss, styles = luminance(content_rgb), [luminance(s) for s in styles]
    else:
        content_for_loss = content_rgb
    net = load_loss_network(vgg_weights, dev)
    criterion = PerceptualLoss(net, [torch.from_numpy(s)[None].to(dev) for s in styles], loss_config, style_blend, amp_dtype)
    content = torch.from_numpy(content_for_loss)[None].to(dev)
    content_features = criterion.content_target(content)

    # Start: the content, noise, or a given image, mapped through the inverse sigmoid.
    if init == "content":
        start = content.clone()
    elif init == "noise":
        start = torch.rand(content.shape, generator=torch.Generator().manual_seed(seed)).to(dev)
    else:
        h, w = content.shape[-2:]
        start = torch.from_numpy(load_image(init, size=(w, h), max_pixels=max_pixels).rgb)[None].to(dev)
    z = torch.logit(start.clamp(1e-3, 1 - 1e-3)).requires_grad_(True)

    def evaluate() -> dict[str, torch.Tensor]:
        return criterion(torch.sigmoid(z), content_features=content_features)

    with torch.no_grad():
        initial = {k: float(v) for k, v in evaluate().items()}
    from tqdm import tqdm

    bar = tqdm(total=iterations, unit="eval", disable=not progress, dynamic_ncols=True, desc="optimize")
    evaluations = 0
    last: dict[str, float] = dict(initial)
    best = {"total": float("inf"), "terms": dict(initial), "z": z.detach().clone()}

    class BudgetSpent(Exception):
        """Raised by the closure once --iterations loss evaluations are done (L-BFGS's line search
        would otherwise evaluate past the budget), or after Ctrl-C."""

    ctrl_c = CtrlC()

    def closure():
        nonlocal evaluations, last
        if evaluations >= iterations or ctrl_c.pressed:
            raise BudgetSpent
        opt.zero_grad(set_to_none=True)
        terms = evaluate()
        terms["total"].backward()
        evaluations += 1
        last = {k: float(v.detach()) for k, v in terms.items()}
        if last["total"] < best["total"]:  # line-search trial points can be worse: keep the best
            best.update(total=last["total"], terms=dict(last), z=z.detach().clone())
        bar.update(1)
        bar.set_postfix(content=f"{last['content']:.3f}", style=f"{last['style']:.3f}", tv=f"{last['tv']:.4f}")
        if save_every and on_snapshot and evaluations % save_every == 0:
            on_snapshot(evaluations, torch.sigmoid(z.detach())[0].float().cpu().numpy())
        return terms["total"]

    start_time = time.perf_counter()
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([z], lr=lr or 1.0, max_iter=iterations, max_eval=iterations * 2,
                                history_size=50, tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    elif optimizer == "adam":
        opt = torch.optim.Adam([z], lr=lr or 0.05)
    else:
        raise FstError(f"--optimizer {optimizer}: use lbfgs or adam")
    try:
        ctrl_c.listen()
        while evaluations < iterations and not ctrl_c.pressed:
            before = evaluations
            opt.step(closure)
            if evaluations == before:  # converged: L-BFGS made no further evaluation
                break
    except BudgetSpent:
        pass
    finally:
        ctrl_c.release()
        bar.close()
    interrupted = ctrl_c.pressed  # the best image so far is the result (the caller saves it)
    if interrupted and not evaluations:
        raise KeyboardInterrupt
    seconds = time.perf_counter() - start_time
    last = best["terms"]
    if not np.isfinite(best["total"]):  # no evaluation was finite (NaN never compares lower)
        raise FstError(f"the loss became non-finite ({last}); lower --lr or the weights")
    result = torch.sigmoid(best["z"])[0].float().cpu().numpy()
    if preserve_colors:
        result = preserve_color(content_rgb, result)
    report = {
        "initial": initial,
        "final": last,
        "evaluations": evaluations,
        "interrupted": interrupted,
        "seconds": round(seconds, 2),
        "optimizer": optimizer,
        "image_size": [int(result.shape[2]), int(result.shape[1])],
        "vgg": net.identity,
        "loss": loss_config.as_dict(),
    }
    return result, report


def run(args) -> int:
    output = check_writable(args.output, args.overwrite)
    stem, ext = os.path.splitext(output)
    save_every = args.save_every or 0

    def snapshot_path(n: int) -> str:
        return f"{stem}_iter{n:05d}{ext}"

    for n in range(save_every, args.iterations + 1, save_every) if save_every else []:  # refuse before the work
        check_writable(snapshot_path(n), args.overwrite)
    if args.style_weights and len(args.style_weights) != len(args.style):
        raise FstError(f"--style-weights has {len(args.style_weights)} values for {len(args.style)} --style images")
    from fst.runtime import pick_amp

    device = pick_device(args.device)
    # L-BFGS wants exact gradients: 'auto' means fp32 here; bf16 only when asked for.
    amp = None if args.amp == "auto" else pick_amp(args.amp, device)
    image, report = optimize(
        args.content,
        args.style,
        LossConfig.from_args(args),
        style_blend=args.style_weights,
        image_size=args.image_size,
        style_size=args.style_size,
        optimizer=args.optimizer,
        iterations=args.iterations,
        lr=args.lr,
        init=args.init,
        preserve_colors=args.preserve_color,
        seed=args.seed,
        device=args.device,
        amp_dtype=amp,
        vgg_weights=args.vgg_weights,
        max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
        save_every=save_every,
        on_snapshot=lambda n, img: save_image(snapshot_path(n), img, overwrite=args.overwrite),
    )
    # The file records how it was made, but not the wall time: same inputs and seed, same bytes.
    recorded = {k: v for k, v in report.items() if k != "seconds"}
    save_image(output, image, overwrite=args.overwrite, metadata={"fst": json.dumps(recorded)})
    if report["interrupted"]:
        print(f"interrupted after {report['evaluations']} evaluations: saved the best image so far "
              f"(total {report['final']['total']:.4f}) to {output}", file=sys.stderr)
        raise KeyboardInterrupt
    if args.json:
        print(json.dumps(report))
    else:
        f, i = report["final"], report["initial"]
        print(f"saved {output}: content {f['content']:.4f}  style {f['style']:.4f} (from {i['style']:.4f})  "
              f"tv {f['tv']:.4f}  total {f['total']:.4f}  [{report['evaluations']} evaluations, "
              f"{report['seconds']:.1f} s, VGG {report['vgg']}]")
    return 0
