"""quality: time to quality. Minutes of training until a shipped model's held-out figures are
reached (`fst evaluate MODEL --held-out`: the mean style ratio and content term on the photos its
training held out, at their own size), for `fst train` and for PE's training loop, on the same
photos, painting, sizes and loss weights as that model's training (its meta records them).

    target  the model's own figures, computed here (fst.evaluate.evaluate, as `fst evaluate` does)
    fst     fst.train.train with the model's recorded settings and fst's defaults otherwise, with
            --eval-every (its curve is read back from the run's log.jsonl) and --time-limit
    PE      fst.bench.baselines: PE's data pipeline, its width-32 network, PETraining's step
            (float32, as written), evaluated with the same schedule (fst.heldout)
Training time is each loop's wall time without its evaluations (fst.heldout.Stopwatch). The sides
take turns in rounds of `every` seconds of training each, the first to go alternating (a busy
spell of the machine hits both); fst's run continues across rounds by --resume (exact), PE's in
this process. A side that has reached the target trains no further.
"""

from __future__ import annotations

import json
import math
import os
import shutil

from fst import FstError
from fst.bench.harness import log
from fst.bench.inputs import FIXTURES, PHOTO_NAMES, SHARED_PHOTOS
from fst.bench.plan import Context

QUALITY_MODEL = "great_wave"  # a shipped single-style network trained from scratch (README: shipped styles)
PE_SEED = 42  # neural_style.py's --seed default
PE_NAME = "PE, its network (float32)"


def model_meta(spec: str | None) -> tuple[str, dict]:
    """The model's .pth and its meta; one line if it cannot serve (no .pth, no training record)."""
    import torch

    from fst.styles import resolve_model

    spec = spec or QUALITY_MODEL
    path = resolve_model(spec, "torch")
    if not path.endswith((".pth", ".pt")):
        raise FstError(f"--only quality: {spec}: needs the model's .pth (its training settings are in its meta)")
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
    except Exception:
        raise FstError(f"--only quality: {spec}: not an fst model") from None
    if not meta.get("config") or not meta.get("held_out") or meta.get("style_names"):
        raise FstError(f"--only quality: {spec}: not a single-style fst train model with held-out photos in its meta")
    return path, meta


def is_shipped(path: str) -> bool:
    """Whether the target is one of fst's shipped single-style networks (else a file of the user's)."""
    from fst.styles import SHIPPED, shipped_files

    return any(os.path.abspath(path) == os.path.abspath(shipped_files(name)["pth"]) for name in SHIPPED)


def init_model(spec: str | None, target_path: str, add_style: bool = False) -> str | None:
    """The .pth the fst side starts from (--init: a single-style network or a collection, whose
    nearest style fst train picks), or None; one line if it cannot serve: not a .pth, or a network
    that was trained on the target's painting already (the new style would not be new to it), or
    with add_style anything but a collection."""
    if spec is None:
        if add_style:
            raise FstError("--add-style: name the collection to add the painting to with --init COLLECTION")
        return None
    import torch

    from fst.styles import resolve_model

    path = resolve_model(spec, "torch")
    if not path.endswith((".pth", ".pt")):
        raise FstError(f"--init {spec}: needs a .pth (fst train --init takes PyTorch weights)")
    if os.path.abspath(path) == os.path.abspath(target_path):
        raise FstError(f"--init {spec}: that is the target model itself: start from another style's network")
    init_meta, target_meta = (torch.load(p, map_location="cpu", weights_only=True)["meta"] for p in (path, target_path))
    if set(init_meta.get("style_sha256") or []) & set(target_meta.get("style_sha256") or []):
        raise FstError(f"--init {spec}: it was trained on the target's painting already; start from a network "
                       "that has not seen it (the time to a new style is measured)")
    if add_style and not init_meta.get("style_names"):
        raise FstError(f"--init {spec}: a single-style network; --add-style adds the painting to a collection")
    return path


def photo_folder(ctx: Context, meta: dict) -> tuple[str, list[str]]:
    """The training photos and the model's held-out ones among them: --photos, else (--quick) the
    test fixtures copied into the work folder, else the folder the shipped models were trained on.
    fst train must hold out the same photos as the model's run did (fst.data.split_validation)."""
    from fst.data import split_validation
    from fst.images import find_images

    folder = ctx.photos
    if folder is None and ctx.plan.quick:
        if not (FIXTURES / "held_out").is_dir():
            raise FstError(f"--quick --only quality: no test photos in {FIXTURES}: pass --photos DIR")
        folder = os.path.join(ctx.workdir, "quality_photos")
        os.makedirs(folder, exist_ok=True)  # 4 held-out photos + 7 others: fst train holds out those 4
        for path in [*(FIXTURES / "held_out").glob("*.jpg"), *(FIXTURES / "unseen").glob("*.jpg"),
                     *(FIXTURES / name for name in PHOTO_NAMES)]:
            shutil.copy(path, folder)
    folder = folder or str(SHARED_PHOTOS)
    if not os.path.isdir(folder):
        raise FstError(f"{folder}: no such folder of photos (the quality section needs the model's: --photos DIR)")
    paths = find_images([folder])
    count = meta["config"].get("val_count", 4)
    _, held = split_validation(paths, count if len(paths) > 2 * count else 0)
    if sorted(os.path.basename(p) for p in held) != sorted(meta["held_out"]):
        raise FstError(f"{folder}: fst train would not hold out the model's held-out photos ({', '.join(meta['held_out'])}) "
                       "here: pass --photos DIR, the folder the model was trained on")
    return folder, held


def reached(p: dict, target: dict) -> bool:
    """Both figures at or below the target's: as much style, and as much of the photo kept."""
    return p["style_ratio"] <= target["style_ratio"] and p["content"] <= target["content"]


def point(record: dict) -> dict:
    """A curve point from a held-out record of fst.heldout (fst's log or PE's loop)."""
    figures = record["held_out"]
    return {"minutes": record["train_seconds"] / 60, "step": record["step"], "style_ratio": figures["mean_style_ratio"],
            "max_style_ratio": figures["max_style_ratio"], "content": figures["mean_content"]}


class FstSide:
    """fst train as the model's run was set up (its crops unless the plan says otherwise, batch,
    lr, style size, loss, network, seed, held-out count), fst's defaults otherwise (--lr-decay);
    one run with --time-limit the section's minutes, paused at each round's end and resumed."""

    role = "fst"

    def __init__(self, ctx: Context, recorded: dict, folder: str, painting: str, init: str | None = None):
        from fst.config import LossConfig, TrainConfig

        plan, run_dir = ctx.plan, os.path.join(ctx.workdir, "quality_fst")
        add = " --add-style" if ctx.quality_add_style else ""
        self.name = f"fst train{add} --init {os.path.basename(init)}" if init else "fst train"
        self.cfg = TrainConfig(
            style=[painting], data=folder, name="quality", run_dir=run_dir, output=os.path.join(run_dir, "quality.pth"),
            image_size=plan.quality_crop or recorded["image_size"], style_size=recorded["style_size"],
            batch_size=recorded["batch_size"], steps=10**9, channels=recorded["channels"],
            lr=ctx.quality_lr or (TrainConfig.add_style_lr if ctx.quality_add_style else recorded["lr"]),
            res_blocks=recorded["res_blocks"], loss=LossConfig.from_dict(recorded["loss"]), seed=recorded["seed"],
            flip=recorded.get("flip", True), val_count=recorded.get("val_count", 4), device=str(ctx.device),
            vgg_weights=ctx.vgg_weights, overwrite=True, eval_every=plan.quality_every, eval_size=plan.quality_eval_size,
            time_limit=plan.quality_seconds, init=init, add_style=ctx.quality_add_style,
            **({"workers": 0} if plan.quick else {}))
        self.points: list[dict] = []

    def train_until(self, seconds: float) -> None:
        from fst.config import TrainConfig
        from fst.train import train

        checkpoint = os.path.join(self.cfg.run_dir, "checkpoint.pth")
        say = lambda message: log(f"quality: fst train: {message}")  # noqa: E731
        if os.path.isfile(checkpoint):
            train(TrainConfig(style=[]), resume=checkpoint, overrides={}, log=say, pause_at=seconds)
        else:
            train(self.cfg, log=say, pause_at=seconds)
        with open(os.path.join(self.cfg.run_dir, "log.jsonl")) as f:  # the curve from the run's own log
            self.points = [point(r) for r in map(json.loads, f) if "held_out" in r]

    def settings(self) -> str:
        from fst.runtime import pick_amp, pick_device

        amp = pick_amp(self.cfg.amp, pick_device(self.cfg.device))
        return (f"fst train --image-size {self.cfg.image_size} --batch-size {self.cfg.batch_size} --lr {self.cfg.lr:g} "
                f"--lr-decay {self.cfg.lr_decay} --ema {self.cfg.ema:g} --time-limit {self.cfg.time_limit:g} "
                f"--style-size {self.cfg.style_size} --style-weight {self.cfg.loss.style_weight:g} (the model's other "
                "loss weights and margin)"
                + (f", --add-style --init {os.path.basename(self.cfg.init)} (a collection not trained on this painting: "
                   "the new style's norm parameters and channel maps alone are trained, starting from its nearest style's)"
                   if self.cfg.add_style else
                   f", --init {os.path.basename(self.cfg.init)} (a network not trained on this painting; of a "
                   "collection, the style nearest the painting)" if self.cfg.init else ", --init none (fresh weights)")
                + f", --amp {self.cfg.amp} "
                f"({str(amp).replace('torch.', '') if amp else 'float32'} here), --workers {self.cfg.workers}")


class PESide:
    """PE's train() on the same training photos: its data pipeline, its width-32 network, its seed,
    PETraining's step on fst's loss with the model's weights, float32 as written; its clock
    (fst.heldout.Stopwatch) and held-out records as fst train's, kept in this process."""

    name, role = PE_NAME, "baseline"

    def __init__(self, ctx: Context, recorded: dict, train_paths: list[str], held: list[str], criterion, painting: str):
        import numpy as np
        import torch

        from fst.bench.baselines import PETraining, TransformerNet as PENet, pe_train_loader
        from fst.config import LossConfig
        from fst.heldout import HeldOut, Stopwatch
        from fst.losses import load_style_image

        np.random.seed(PE_SEED)
        torch.manual_seed(PE_SEED)
        config, self.device = LossConfig.from_dict(recorded["loss"]), ctx.device
        style = torch.from_numpy(load_style_image(painting, recorded["style_size"], config))[None].to(ctx.device)
        try:
            self.pe = PETraining(PENet().to(ctx.device), ctx.loss_net, style, config, recorded["batch_size"], recorded["lr"])
        except ValueError as e:  # PE's loss has fixed layers
            raise FstError(f"--only quality: {e}") from None
        self.loader = pe_train_loader(train_paths, ctx.plan.quality_crop or recorded["image_size"], recorded["batch_size"])
        self.batches = iter(self.loader)
        self.held_out = HeldOut(criterion, held, ctx.plan.quality_every, ctx.plan.quality_eval_size)
        self.clock, self.step, self.points = Stopwatch(), 0, []
        self.style, self.loss_net = style, ctx.loss_net

    def _batch(self):
        """The next batch of PE's DataLoader, a new epoch when one ends (PE: for e in range(epochs))."""
        try:
            return next(self.batches)[0]
        except StopIteration:
            self.batches = iter(self.loader)
            return next(self.batches)[0]

    def train_until(self, seconds: float) -> None:
        self.clock.skip()  # since its last round, the other side trained
        if not self.points:
            self._record()
        while self.clock.seconds < seconds:
            self.pe.step(self._batch().to(self.device))
            self.step += 1
            if self.held_out.due(self.clock.lap()):
                self._record()
        if self.held_out.last_step != self.step:
            self._record()

    def _record(self) -> None:
        self.points.append(point(self.held_out.record(pe_stylizer(self.pe.transformer), self.step, self.clock.seconds)))
        self.clock.skip()

    def check(self, fst_config) -> dict:
        """Does PE's loss equal fst train's (fst_config: the fst side's LossConfig; float32) on a batch
        of its photos?"""
        import torch

        from fst.bench.check import agreement, loss_bound
        from fst.losses import PerceptualLoss

        fst_loss = PerceptualLoss(self.loss_net, [self.style], fst_config)

        x = next(iter(self.loader))[0].to(self.device)
        with torch.no_grad():
            y = self.pe.transformer(x)
            fst_value, pe_value = float(fst_loss(y, x)["total"]), float(self.pe.loss(y, x))
        longest = x.shape[0] * 128 * (x.shape[-2] // 2) * (x.shape[-1] // 2)  # relu2_2's N C H W
        return agreement(fst_value, pe_value, loss_bound("relu4_3", longest, "float32"))

    @staticmethod
    def settings() -> str:
        return ("PE's train(): Resize + CenterCrop, no shuffle, no workers, its width-32 network, Adam, seed 42, "
                "float32; its outputs clamped to [0, 1] as its eval saves them")


def pe_stylizer(net):
    """PE's eval path as a stylizer for the figures: its output clamped as it saves it, cropped to
    the photo: (3, H, W) [0, 1] -> (3, H, W) [0, 1]. Its network gives H and W rounded up to a
    multiple of 4 (two stride-2 convolutions, then two 2x upsamplings), the photo at the top left."""
    import torch

    from fst.bench.baselines import pe_stylize

    def stylize(rgb):
        out = pe_stylize(net, torch.from_numpy(rgb)[None].to(next(net.parameters()).device))[0].clamp(0, 1)
        return out[:, : rgb.shape[1], : rgb.shape[2]].numpy()

    return stylize


def summary(side, target: dict, minutes: float, full: dict | None = None) -> dict:
    """A side's row: its curve, the minutes of its first point at or below both target figures
    (None: not reached in `minutes`), and that point, or else its lowest style ratio's; with the
    full training's time here (full_training), the share of it those minutes (or the budget) are."""
    hit = next((p for p in side.points if reached(p, target)), None)
    shown = hit or min(side.points, key=lambda p: p["style_ratio"])
    row = {"section": "quality", "size": None, "name": side.name, "role": side.role, "curve": side.points,
           "minutes_to_target": hit["minutes"] if hit else None, "budget_minutes": minutes, "shown": shown}
    if full:
        row["share_of_full_training"] = (hit["minutes"] if hit else minutes) / full["minutes"]
    return row


def full_training(ctx: Context, side_cfg, lr: float, train_paths: list[str], steps: int | None) -> dict | None:
    """The target's full training time on this machine: its recorded steps times a step of that
    training here (fst.bench.loopstep, beside the fst side's own step); None without recorded steps."""
    if not steps:
        return None
    from fst.bench.loopstep import loop_steps

    step = loop_steps(ctx, side_cfg, lr, train_paths)
    full = {"steps": steps, "step_seconds": step["full"], "side_step_seconds": step["side"], "rounds": step["rounds"],
            "minutes": steps * step["full"] / 60}
    log(f"quality: the full training here: {steps} steps x {step['full']:.3f} s = {full['minutes']:.1f} min; "
        f"a step of the fst side {step['side']:.3f} s ({step['side'] / step['full']:.2f}x)")
    return full


def run(ctx: Context) -> dict:
    from fst.evaluate import evaluate, load_criterion, recorded_painting
    from fst.images import find_images

    plan = ctx.plan
    path, meta = model_meta(ctx.quality_model)
    folder, held = photo_folder(ctx, meta)
    painting = recorded_painting(path, meta)
    log(f"quality: the target, {os.path.basename(path)}'s figures on its {len(held)} held-out photos")
    report = evaluate(path, held, painting, plan.quality_eval_size, ctx.vgg_weights)
    target = {"style_ratio": report["mean_style_ratio"], "max_style_ratio": report["max_style_ratio"],
              "content": report["mean_content"], "step": meta.get("steps")}
    criterion, _ = load_criterion(path, painting, ctx.vgg_weights, loss_net=ctx.loss_net)
    train_paths = [p for p in find_images([folder]) if p not in held]
    recorded = meta["config"]
    if ctx.quality_style_weight:  # both sides at another style weight; the target's figures stay its own
        recorded = {**recorded, "loss": {**recorded["loss"], "style_weight": ctx.quality_style_weight}}
    sides = [FstSide(ctx, recorded, folder, painting, init_model(ctx.quality_init, path, ctx.quality_add_style)),
             PESide(ctx, recorded, train_paths, held, criterion, painting)]
    check = sides[1].check(sides[0].cfg.loss)
    full = full_training(ctx, sides[0].cfg, recorded["lr"], train_paths, target["step"])
    rounds = train_in_rounds(sides, target, plan.quality_seconds, plan.quality_every)
    rows = [summary(side, target, plan.quality_seconds / 60, full) for side in sides]
    rows[1]["check"] = check
    return {"model": meta.get("name") or os.path.basename(path), "shipped": is_shipped(path),
            "photos": len(train_paths), "held_out": len(held),
            "eval_size": plan.quality_eval_size or "own", "every_seconds": plan.quality_every, "rounds": rounds,
            "minutes": plan.quality_seconds / 60, "crop": sides[0].cfg.image_size, "batch": sides[0].cfg.batch_size,
            "style_weight": recorded["loss"]["style_weight"], "target_style_weight": meta["config"]["loss"]["style_weight"],
            "target": target, "full_training": full, "rows": rows, "notes": _notes(ctx, sides, os.path.basename(ctx.quality_model or QUALITY_MODEL))}


def train_in_rounds(sides: list, target: dict, seconds: float, every: float) -> int:
    """Round k: each side trains until its clock reaches k x every (at most `seconds`; who goes first
    alternates), unless it has reached the target or is already past that time (its last step ran
    over); returns the number of rounds."""
    rounds = math.ceil(seconds / every - 1e-9)
    for k in range(1, rounds + 1):
        limit = min(k * every, seconds)
        for side in sides if k % 2 else sides[::-1]:
            last = side.points[-1] if side.points else None
            if last and (reached(last, target) or last["minutes"] * 60 >= limit):
                continue
            side.train_until(limit)
            p = side.points[-1]
            log(f"quality: round {k}/{rounds}: {side.name}: {p['minutes']:.2f} min, step {p['step']}, style ratio "
                f"{p['style_ratio']:.3f}, content {p['content']:.3f} (target {target['style_ratio']:.3f}, {target['content']:.3f})")
    return rounds


def _notes(ctx: Context, sides: list, model: str) -> list[str]:
    plan = ctx.plan
    size = f"--image-size {plan.quality_eval_size}" if plan.quality_eval_size else "--image-size own"
    notes = [f"quality: the target is `fst evaluate {model} --photos PHOTOS --held-out {size}`; a side reaches it at "
             "its first evaluation with both the mean style ratio and the mean content at or below the target's; "
             "training time: the loop's wall time (data loading, steps, checkpoints), start-up and the evaluations "
             f"left out; rounds of {plan.quality_every:g} s of training per side, who goes first alternating",
             f"quality: fst: {sides[0].settings()}; PE: {sides[1].settings()}; the same photos, painting, style size "
             "and loss weights",
             "quality: of the full training: the minutes to the target (or, not reached, the budget) over the target's "
             "own training time here, its recorded steps times the median step of that training (its network from "
             "fresh weights, every weight trained, Adam at its lr, its batch loaded from these photos), timed in "
             "interleaved rounds beside the fst side's own step before the sides train (fst.bench.loopstep)"]
    if plan.quick:
        notes.append(f"quality --quick: {plan.quality_crop}² crops, the photos evaluated at {plan.quality_eval_size} px, "
                     f"{plan.quality_seconds:g} s per side: a run of the machinery, not a measurement")
    return notes
