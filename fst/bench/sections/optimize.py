"""optimize: seconds per loss evaluation of `fst optimize` (L-BFGS; fst.optimize.optimize itself,
stamped at the end of every evaluation) against the PyTorch tutorial's Gatys loop
(fst.bench.baselines.GatysTutorial: every target once, pixels optimised directly with a clamp),
both float32 with fst's L-BFGS settings, each run twice in the order fst, tutorial, tutorial, fst.
The tutorial's loss is checked against fst's first."""

from __future__ import annotations

import dataclasses
import gc
import os
import time

from fst.bench.check import agreement, loss_bound
from fst.bench.harness import Memory, log, make_row, malloc_trim, merge_memory
from fst.bench.plan import Context

FST = "fst optimize (float32)"
TUTORIAL = "PyTorch tutorial (float32)"
ORDER = (FST, TUTORIAL, TUTORIAL, FST)


def _evaluation_times(stamps: list[float], warmup: int) -> list[float]:
    """Seconds between the ends of successive loss evaluations, the first `warmup` (>= 1) left out."""
    return [b - a for a, b in zip(stamps[warmup - 1 :], stamps[warmup:])]


def _time_fst(ctx: Context, content_path: str, style_path: str, config, size: int, warmup: int, evaluations: int):
    """fst.optimize.optimize; memory from the end of the warm-up (VGG loading left out)."""
    from fst.optimize import optimize

    stamps: list[float] = []
    gc.collect()
    malloc_trim()
    mem = Memory(ctx.device, tidy=False)

    def stamp(_n, _image):
        ctx.timer.sync()
        stamps.append(time.perf_counter())
        if len(stamps) == warmup:
            mem.__enter__()

    optimize(content_path, [style_path], config, image_size=size, iterations=evaluations, device=str(ctx.device),
             amp_dtype=None, vgg_weights=ctx.vgg_weights, progress=False, save_every=1, on_snapshot=stamp)
    mem.__exit__(None, None, None)
    return _evaluation_times(stamps, warmup), mem.result


def _time_tutorial(ctx: Context, tutorial, content, warmup: int, evaluations: int):
    """run_style_transfer(): input_img = the content, L-BFGS over it (fst's settings), the
    tutorial's closure stamped after each evaluation."""
    import torch

    input_img = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([input_img], lr=1.0, max_iter=evaluations, max_eval=evaluations, history_size=50,
                                  tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    closure, marks = tutorial.closure_for(input_img, optimizer), []
    gc.collect()
    malloc_trim()
    mem = Memory(ctx.device, tidy=False)

    def stamped():
        loss = closure()
        float(loss.detach())  # what L-BFGS reads; also syncs the device
        ctx.timer.sync()
        marks.append(time.perf_counter())
        if len(marks) == warmup:
            mem.__enter__()
        return loss

    while len(marks) < evaluations:
        before = len(marks)
        optimizer.param_groups[0]["max_eval"] = evaluations - len(marks)
        optimizer.step(stamped)
        if len(marks) == before:
            break
    mem.__exit__(None, None, None)
    return _evaluation_times(marks, warmup), mem.result


def _check(ctx: Context, tutorial, content, style, config, size: int) -> dict:
    """Both losses on one image between the content and noise (at the content itself the content term is 0)."""
    import torch

    from fst.losses import PerceptualLoss

    criterion = PerceptualLoss(ctx.loss_net, [style], config)
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(0)).to(ctx.device)
    image = 0.5 * content + 0.5 * noise
    with torch.no_grad():
        fst_value = float(criterion(image, content_features=criterion.content_target(content))["total"])
        tutorial_value = float(tutorial.loss(image))
    return agreement(fst_value, tutorial_value, loss_bound("relu4_3", 128 * (size // 2) ** 2, "float32"))


def run(ctx: Context) -> dict:
    import torch

    from fst.bench.baselines import GatysTutorial
    from fst.images import save_image
    from fst.losses import LossConfig, load_style_image

    plan = ctx.plan
    warmup, repeats = max(1, plan.warmup["optimize"]), plan.repeats["optimize"]
    config = dataclasses.replace(LossConfig(), style_margin=0.0)  # the style file below has had its margin cut
    rows = []
    for size in plan.optimize_sizes:
        (content_rgb,) = ctx.inputs.photos(1, size)
        content_path, style_path = (os.path.join(ctx.workdir, f"{kind}_{size}.png") for kind in ("content", "style"))
        save_image(content_path, content_rgb, overwrite=True)
        save_image(style_path, ctx.inputs.style(size), overwrite=True)  # fst optimize's default: the image's size
        content = torch.from_numpy(content_rgb)[None].to(ctx.device)
        style = torch.from_numpy(load_style_image(style_path, size, config))[None].to(ctx.device)
        tutorial = GatysTutorial(ctx.loss_net, style, content, config)
        check = _check(ctx, tutorial, content, style, config, size)
        log(f"optimize {size}²: tutorial loss {check['baseline_loss']:.6g} vs fst {check['fst_loss']:.6g}, "
            f"relative difference {check['relative_difference']:.1e} (bound {check['bound']:.1e})")
        runs = {FST: lambda: _time_fst(ctx, content_path, style_path, config, size, warmup, warmup + repeats),
                TUTORIAL: lambda: _time_tutorial(ctx, tutorial, content, warmup, warmup + repeats)}
        measured = {name: ([], []) for name in runs}
        for name in ORDER:  # each twice, A B B A: a busy spell on a shared machine hits both alike
            times, memory = runs[name]()
            measured[name][0].extend(times)
            measured[name][1].append(memory)
        fst_row = make_row("optimize", size, FST, "fst", measured[FST][0], merge_memory(measured[FST][1]), precision="float32")
        tutorial_row = make_row("optimize", size, TUTORIAL, "baseline", measured[TUTORIAL][0],
                                merge_memory(measured[TUTORIAL][1]), precision="float32", check=check)
        fst_row["speedup_vs_pe"] = tutorial_row["seconds"] / fst_row["seconds"]
        for row in (fst_row, tutorial_row):
            log(f"optimize {size}²: {row['name']}: {row['seconds']:.3f} s/evaluation")
        rows += [fst_row, tutorial_row]
    return {"sizes": plan.optimize_sizes, "evaluations_timed": 2 * repeats, "rows": rows}  # two runs each
