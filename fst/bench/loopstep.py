"""The quality section's yardstick: how long the target's own full training takes on this machine.

Issue 14 asks for a new style added to a collection in a quarter of a full single-style
training's wall time. That time is the target's recorded steps times a step of the full training
here; it is measured in the same process as the fst side's own step, interleaved on the same
photos (a ratio from one run, not from two benches on a machine whose times scatter):

    full  the target's network (its width and blocks) from fresh weights, every weight trained,
          Adam at its recorded lr: what `fst train --style PAINTING --init none` runs
    side  the network the fst side trains (fst.train.build_network): with --add-style the
          collection grown by one style, the shared weights frozen; with --init, its weights
Each step is the real loop's work: its batch loaded from the photos (random crops, as
fst.data.PhotoFolder gives them) and fst.train.train_step, with the side's loss (fst.train.build_loss).
"""

from __future__ import annotations

import statistics
from dataclasses import replace

from fst.bench.harness import log


def _side_network(cfg, device):
    """What fst train builds for cfg (its start: fst.train.starting_network), and the style weights
    of a step; which collection row an added style copies does not change a step's work."""
    from fst.train import build_network
    from fst.transformer import add_style_row, load_model, one_style

    start, styles = None, 0
    if cfg.init:
        start, _ = load_model(cfg.init)
        if cfg.add_style:
            start = add_style_row(start, like=0, maps=cfg.style_maps)
            styles = start.styles
        elif start.styles:
            start = one_style(start, 0)
    net, optimizer, _ = build_network(cfg, None, device, lambda *a: None, styles, start)
    return net.train(), optimizer, styles


def loop_steps(ctx, cfg, full_lr: float, paths: list[str]) -> dict:
    """Seconds of one real-loop step of the full training and of the fst side (cfg: its TrainConfig),
    medians of interleaved rounds after a warm-up: {"full": s, "side": s, "rounds": n}."""
    import torch

    from fst.data import PhotoFolder
    from fst.train import batch_styles, build_loss, build_network, train_step

    device, plan = ctx.device, ctx.plan
    criterion, _, _ = build_loss(cfg, device)
    photos = PhotoFolder(paths, cfg.image_size, cfg.flip, cfg.seed)
    torch.manual_seed(cfg.seed)
    full_cfg = replace(cfg, init=None, add_style=False, lr=full_lr)
    full_net, full_optimizer, _ = build_network(full_cfg, None, device, lambda *a: None)
    side_net, side_optimizer, styles = _side_network(cfg, device)
    trained = [styles - 1] if styles else []
    drawn = iter(range(10**9))

    def step(net, optimizer, trained_styles) -> None:
        first = next(drawn) * cfg.batch_size
        batch = torch.stack([photos[(first + i) % len(photos)] for i in range(cfg.batch_size)]).to(device)
        style, _ = batch_styles(trained_styles, styles, 0, len(batch), 0, 1, device)
        train_step(net, criterion, optimizer, batch, style)

    warmup, rounds = plan.warmup["train"] + 1, 3 if plan.quick else 8  # a loop's first steps are slower
    log(f"quality: a step of the full training and of the fst side, {warmup} warm-up + {rounds} interleaved rounds")
    measured = ctx.timer.run_interleaved({"full": lambda: step(full_net, full_optimizer, []),
                                          "side": lambda: step(side_net, side_optimizer, trained)}, warmup, rounds)
    return {name: statistics.median(times) for name, (times, _) in measured.items()} | {"rounds": rounds}
