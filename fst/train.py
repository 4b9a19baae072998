"""`fst train`: fit a TransformerNet to one style (or a blend) on a folder of photos or COCO.

`train()` reads top to bottom: resume (or start) -> the loss -> the data -> the network -> the
loop -> save; each step is a function below it. One process, or one per rank under torchrun
(DistributedDataParallel; gloo on CPU, NCCL on GPU; rank 0 alone writes files).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import signal
import time
import uuid
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Subset

from fst import FstError, __version__
from fst.config import LossConfig, TrainConfig
from fst.data import PhotoFolder, coco_subset, split_validation
from fst.heldout import HeldOut, Stopwatch, torch_stylize
from fst.images import load_image, save_image
from fst.losses import PerceptualLoss, load_style_image
from fst.runtime import CtrlC, pick_amp, pick_device
from fst.stability import stability_term, step_generator
from fst.transformer import TRAINING_MARGIN, TransformerNet, add_style_row, load_model, one_hot, one_style
from fst.vgg import file_sha256, load_loss_network

# What a resume may change (e.g. train longer, elsewhere); everything else is the checkpoint's, so
# the resumed run continues exactly: style, data, sizes, network, loss, lr, seed.
RESUMABLE_OVERRIDES = ("steps", "epochs", "checkpoint_every", "output", "workers", "device", "overwrite", "vgg_weights",
                       "eval_every", "eval_size", "time_limit")


@dataclass
class Position:
    """Where a run stands: optimizer steps done, the batch within the epoch, and the training time
    so far (fst.heldout.Stopwatch: the loop's wall time, held-out evaluations excluded)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    seconds: float = 0.0


@dataclass
class Photos:
    dataset: PhotoFolder  # the training photos
    preview: list[np.ndarray]  # (3, H, W) [0, 1] photos for the preview grids
    held_out: list[str]  # photos kept out of training (their paths)
    data_dir: str
    batches_per_epoch: int  # per process


def train(cfg: TrainConfig, resume: str | None = None, log=print, overrides: dict | None = None,
          pause_at: float = 0.0) -> str:
    """Run the training described by cfg; returns the path of the final model.

    resume: a checkpoint to continue exactly; its configuration is used, with `overrides` (by
    default cfg's RESUMABLE_OVERRIDES fields) replacing those few fields.
    pause_at: also stop (checkpoint and model saved) at this much training time, the run's own
    --time-limit and so its --lr-decay schedule unchanged (fst bench trains in rounds); 0: no pause.
    """
    chosen = default_init(cfg) if not resume else ""
    cfg, state = resume_or_start(cfg, resume, overrides)
    collection = collection_of(cfg, state)
    rank, world, local_rank = _distributed()
    is_main = rank == 0
    log = log if is_main else (lambda *a, **k: None)
    device = pick_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
    torch.manual_seed(cfg.seed)
    run_id = state["meta"].get("run_id") if state else uuid.uuid4().hex
    run_dir, output = _places(cfg, state, run_id)

    criterion, loss_net, style_hashes = build_loss(cfg, device)
    if state is not None:
        _check_same_targets(state, style_hashes, loss_net.identity)
    photos = load_photos(cfg, rank, world, log)
    if chosen:
        log(chosen)
    total_steps = cfg.steps or cfg.epochs * photos.batches_per_epoch
    start = starting_network(cfg, collection, criterion, photos, device, log) if state is None else None
    net, optimizer, at = build_network(cfg, state, device, log, len(collection.names), start)
    averaged = weight_average(net, cfg.ema, state)
    shown = averaged.module if averaged is not None else net  # the network evaluated, previewed and saved
    if at.step >= total_steps:
        raise FstError(f"--resume: the checkpoint is at step {at.step} and this run ends at step {total_steps}: "
                       "nothing to train (ask for more --steps or --epochs)")
    if cfg.time_limit and at.seconds >= cfg.time_limit:
        raise FstError(f"--resume: the checkpoint has trained {at.seconds:.0f} s and --time-limit is {cfg.time_limit:g} s: "
                       "nothing to train (ask for a longer --time-limit)")
    held_out = held_out_figures(cfg, photos, loss_net, device, at, is_main)
    meta = {
        "fst_version": __version__, "run_id": run_id, "name": cfg.name,
        "styles": [os.path.basename(p) for p in cfg.style], "style_paths": collection.paths or [os.path.abspath(p) for p in cfg.style],
        "style_sha256": collection.hashes or style_hashes, "style_blend": cfg.style_blend, "architecture": net.architecture(),
        **({"style_names": collection.names} if collection.names else {}),
        "vgg": loss_net.identity, "data": photos.data_dir, "training_images": len(photos.dataset),
        "held_out": [os.path.basename(p) for p in photos.held_out], "init": cfg.init, "init_style": cfg.init_style,
    }

    def checkpoint() -> None:
        if is_main:
            average = {"averaged": shown.state_dict(), "averaged_count": int(averaged.n_averaged)} if averaged is not None else {}
            _atomic_torch_save({"model": net.state_dict(), **average, "optimizer": optimizer.state_dict(), **asdict(at),
                                "rng": {"torch": torch.get_rng_state()}, "config": asdict(cfg),
                                "style_sha256": style_hashes, "vgg": loss_net.identity, "meta": meta},
                               os.path.join(run_dir, "checkpoint.pth"))

    if is_main:
        os.makedirs(run_dir, exist_ok=True)
        limit = f" or {cfg.time_limit:g} s of training, whichever comes first" if cfg.time_limit else ""
        log(f"training {cfg.name}: {len(photos.dataset)} photos, {total_steps} steps{limit} of {cfg.batch_size}x{world} at "
            f"{cfg.image_size}px on {device} (VGG autocast: {criterion.amp_dtype or 'fp32'}); run folder {run_dir}; "
            f"final model {output}")
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    stop_seconds = min(t for t in (cfg.time_limit, pause_at, math.inf) if t)
    terms, interrupted = train_loop(cfg, model, criterion, optimizer, photos, at, total_steps, stop_seconds, device, rank,
                                    world, run_dir, checkpoint, resumed=state is not None, trained=collection.trained,
                                    held_out=held_out, averaged=averaged)
    checkpoint()
    if interrupted:
        log(f"interrupted at step {at.step}: checkpoint saved; continue with --resume {os.path.join(run_dir, 'checkpoint.pth')}")
        raise KeyboardInterrupt

    if world > 1:
        _check_ranks_in_sync(net, world, log)
    if is_main:
        _preview(shown, photos.preview, device, os.path.join(run_dir, "preview_final.png"), collection.trained)
        meta.update({"steps": at.step, "train_seconds": round(at.seconds, 1), "config": asdict(cfg),
                     "final_loss": {k: float(v.detach()) for k, v in terms.items()},
                     "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
        state_dict = {k: v.detach().float().cpu().contiguous() for k, v in shown.state_dict().items()}
        _atomic_torch_save({"model": state_dict, "meta": meta}, output)
        log(f"saved {output}" + (f" (the weights' moving average, --ema {cfg.ema:g})" if averaged is not None else ""))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return output


def default_init(cfg: TrainConfig) -> str:
    """Resolve --init auto (the default) in cfg: a one-style run whose network has the shipped
    collection's width starts from it (starting_network: its convolutions and its style nearest the
    painting: much nearer a finished style than fresh weights); other runs, and a checkout without
    the collection's .pth, start from fresh weights. Returns what was chosen, for the log."""
    if cfg.init == "none":
        cfg.init = None
    if cfg.init != "auto":
        return ""
    cfg.init = None
    if cfg.collection or cfg.add_style:
        return ""
    from fst.config import DEFAULT_INIT_COLLECTION
    from fst.styles import shipped_files

    path = shipped_files(DEFAULT_INIT_COLLECTION)["pth"]
    if not path.is_file():
        return f"--init auto: no {path} here: fresh weights"
    arch = torch.load(path, map_location="cpu", weights_only=True)["meta"]["architecture"]
    if (arch["channels"], arch["res_blocks"]) != (cfg.channels, cfg.res_blocks):
        return (f"--init auto: fresh weights (the {DEFAULT_INIT_COLLECTION} collection is {arch['channels']} wide with "
                f"{arch['res_blocks']} blocks, this network {cfg.channels} with {cfg.res_blocks})")
    cfg.init = str(path)
    return f"--init auto: the {DEFAULT_INIT_COLLECTION} collection (--init none: fresh weights)"


def resume_or_start(cfg: TrainConfig, resume: str | None, overrides: dict | None) -> tuple[TrainConfig, dict | None]:
    """The configuration to run, and the checkpoint's state when resuming (else None)."""
    if not resume:
        _check_config(cfg)
        return cfg, None
    if not os.path.isfile(resume):
        raise FstError(f"--resume {resume}: no such checkpoint")
    try:
        state = torch.load(resume, map_location="cpu", weights_only=True)
        saved = TrainConfig.from_dict(state["config"])
    except Exception:
        raise FstError(f"--resume {resume}: not an fst training checkpoint (runs/NAME/checkpoint.pth)") from None
    if overrides is None:
        overrides = {key: getattr(cfg, key) for key in RESUMABLE_OVERRIDES}
    for key, value in overrides.items():
        setattr(saved, key, value)
    if saved.steps is not None and saved.steps <= state["step"]:
        raise FstError(f"--resume: the checkpoint is at step {state['step']}; --steps {saved.steps} is not beyond it "
                       "(--steps counts from the start of the run)")
    _check_config(saved)
    return saved, state


@dataclass
class Collection:
    """The styles of a collection run (all empty for a single-style network).
    names: every style of the network, in weight order; trained: the indices this run trains
    (all of them, or the one --add-style adds); paths, hashes: each style's painting."""

    names: list[str]
    trained: list[int]
    paths: list[str]
    hashes: list[str]


def collection_of(cfg: TrainConfig, state: dict | None) -> Collection:
    """The collection this run trains: its --style images, or --init's styles plus --add-style."""
    if state is not None and "style_names" in state["meta"]:
        m = state["meta"]
        names = m["style_names"]
        trained = [names.index(style_names(cfg.style)[0])] if cfg.add_style else list(range(len(names)))
        return Collection(names, trained, m["style_paths"], m["style_sha256"])
    new_names = style_names(cfg.style)
    new_paths, new_hashes = [os.path.abspath(p) for p in cfg.style], [file_sha256(p) for p in cfg.style]
    if cfg.collection:
        shared = sorted({n for n in new_names if new_names.count(n) > 1})
        if shared:
            files = [p for p, n in zip(cfg.style, new_names) if n in shared]
            raise FstError(f"--collection: --style images share a name ({', '.join(shared)}: {', '.join(files)}); "
                           "rename one")
        return Collection(new_names, list(range(len(new_names))), new_paths, new_hashes)
    if not cfg.add_style:
        return Collection([], [], [], [])
    init = torch.load(cfg.init, map_location="cpu", weights_only=True)["meta"]
    names, paths, hashes = init["style_names"], init["style_paths"], init["style_sha256"]
    if new_names[0] in names:  # a style of the collection trained further (its painting may be a new scan)
        i = names.index(new_names[0])
        return Collection(names, [i], paths[:i] + new_paths + paths[i + 1 :], hashes[:i] + new_hashes + hashes[i + 1 :])
    return Collection(names + new_names, [len(names)], paths + new_paths, hashes + new_hashes)


def style_names(paths: list[str]) -> list[str]:
    """A collection's style names: its --style files' stems."""
    return [os.path.splitext(os.path.basename(p))[0] for p in paths]


def _check_config(cfg: TrainConfig) -> None:
    if cfg.add_style:
        _check_add_style(cfg)
    elif not cfg.style_maps:
        raise FstError("--no-style-maps goes with --add-style (channel maps are an added style's)")
    if cfg.collection and cfg.style_blend:
        raise FstError("--collection trains each --style as a style of its own: --style-weights blends one style, drop it")
    if not cfg.style:
        raise FstError("give --style IMAGE (or --resume CHECKPOINT to continue a run)")
    unknown = sorted(set(cfg.loss.style_weight_of) - set(style_names(cfg.style) if cfg.collection else []))
    if unknown:
        raise FstError(f"--style-weight-of {unknown[0]}: " + (f"no such style in the collection ({', '.join(style_names(cfg.style))})"
                       if cfg.collection else "a collection's styles only (--collection); one style takes --style-weight"))
    if cfg.image_size < 32:
        raise FstError("--image-size must be at least 32")
    if cfg.output and not cfg.output.endswith(".pth"):
        raise FstError(f"--output {cfg.output}: fst train writes a PyTorch .pth model; "
                       "make an .onnx from it with fst export MODEL.pth -o MODEL.onnx")
    if cfg.style_blend and len(cfg.style_blend) != len(cfg.style):
        raise FstError(f"--style-weights has {len(cfg.style_blend)} values for {len(cfg.style)} --style images")
    if not (cfg.dataset or cfg.data):
        raise FstError("give --data DIR (a folder of photos) or --dataset coco")
    cfg.name = cfg.name or "+".join(os.path.splitext(os.path.basename(p))[0] for p in cfg.style)


def _check_add_style(cfg: TrainConfig) -> None:
    """--add-style needs --init naming a collection; the run takes that collection's network."""
    if not cfg.init:
        raise FstError("--add-style IMAGE needs --init COLLECTION.pth (the collection to add the style to)")
    if cfg.collection:
        raise FstError("--add-style adds one style to the collection --init names: drop --collection")
    if len(cfg.style) != 1:
        raise FstError("--add-style adds one style image; give no --style with it")
    start, meta = load_model(cfg.init)
    if not start.styles:
        raise FstError(f"--init {cfg.init}: a single-style network; --add-style needs a style collection "
                       "(fst train --collection NAME --style ... makes one)")
    cfg.channels, cfg.res_blocks = start.channels, start.res_blocks
    cfg.name = cfg.name or meta.get("name")


def _places(cfg: TrainConfig, state: dict | None, run_id: str | None) -> tuple[str, str]:
    """(run folder, final model path), refusing to replace what is not this run's own."""
    run_dir = cfg.run_dir or os.path.join("runs", cfg.name)
    output = cfg.output or os.path.join(run_dir, f"{cfg.name}.pth")
    if os.path.exists(output) and not cfg.overwrite and (run_id is None or _recorded_run_id(output) != run_id):
        raise FstError(f"{output}: already exists (pass --overwrite, or --output another path)")
    if state is None and os.path.exists(os.path.join(run_dir, "checkpoint.pth")) and not cfg.overwrite:
        raise FstError(f"{run_dir} holds an earlier run: continue it with --resume {os.path.join(run_dir, 'checkpoint.pth')}, "
                       "or pass --overwrite (or --run-dir) to start afresh")
    return run_dir, output


def _recorded_run_id(path: str) -> str | None:
    """The run that wrote a final model (a resumed run replaces its own earlier final model)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["meta"].get("run_id")
    except Exception:
        return None


def build_loss(cfg: TrainConfig, device: torch.device) -> tuple[PerceptualLoss, object, list[str]]:
    """The perceptual loss with the style's Gram targets computed once; the style files' hashes."""
    style_tensors = [torch.from_numpy(load_style_image(p, cfg.style_size, cfg.loss))[None].to(device) for p in cfg.style]
    loss_net = load_loss_network(cfg.vgg_weights, device)
    betas = cfg.loss.style_weights_of(style_names(cfg.style)) if cfg.collection else None
    criterion = PerceptualLoss(loss_net, style_tensors, cfg.loss, cfg.style_blend, pick_amp(cfg.amp, device),
                               separate=cfg.collection, style_betas=betas)
    if cfg.channels_last:
        criterion = criterion.to(memory_format=torch.channels_last)
    return criterion, loss_net, [file_sha256(p) for p in cfg.style]


def _check_same_targets(state: dict, style_hashes: list[str], vgg_identity: str) -> None:
    if state["style_sha256"] != style_hashes:
        raise FstError("--resume: the style image(s) changed since this checkpoint was written")
    if state.get("vgg", vgg_identity) != vgg_identity:
        raise FstError(f"--resume: the checkpoint was trained with VGG {state['vgg']}, these are {vgg_identity} "
                       "(pass --vgg-weights with the run's file)")


def nearest_style(net: TransformerNet, criterion: PerceptualLoss, photos: Photos, device) -> tuple[int, list[float]]:
    """The collection style whose outputs are nearest to this run's painting by the run's own style
    term, on the first 8 training photos (fewer steps from there than from the mean of all styles,
    or from an unrelated one); also every style's term."""
    batch = torch.stack([photos.dataset[i] for i in range(min(8, len(photos.dataset)))]).to(device)
    net = net.to(device)
    with torch.no_grad():
        terms = [float(criterion.style_loss_per_image(net(batch, one_hot(i, net.styles).to(device))).mean())
                 for i in range(net.styles)]
    return min(range(net.styles), key=terms.__getitem__), terms


def starting_network(cfg: TrainConfig, collection: Collection, criterion: PerceptualLoss, photos: Photos, device,
                     log) -> TransformerNet | None:
    """What a new run starts from (None: fresh weights): --init's network, or from a collection:
    with --add-style, the collection with one more style (a new painting's row starts as a copy of
    a style's row); for a single-style run, the collection's convolutions with one style's norm
    parameters. That style is --init COLLECTION:STYLE's, else the nearest (nearest_style)."""
    if not cfg.init:
        return None
    start, meta = load_model(cfg.init)
    names = meta.get("style_names", [])
    log(f"starting from {cfg.init} ({meta.get('steps', '?')} steps{f', {len(names)} styles' if names else ''})")
    if cfg.init_style and cfg.init_style not in names:
        raise FstError(f"--init {cfg.init}:{cfg.init_style}: no such style in it "
                       f"({'its styles: ' + ', '.join(names) if names else 'a single-style network'})")
    if cfg.add_style and len(collection.names) == len(names):  # collection_of: a style it holds, no new row
        log(f"{names[collection.trained[0]]} is a style of it already: its own parameters alone are trained further")
        return start
    if cfg.collection and names and names != collection.names:  # its rows are styles by position
        raise FstError(f"--init {cfg.init}: its styles are {', '.join(names)}; a collection trained further needs the "
                       f"same --style images in that order (this run: {', '.join(collection.names)})")
    if not names or cfg.collection:
        return start
    if cfg.init_style:
        row = names.index(cfg.init_style)
    else:
        row, terms = nearest_style(start, criterion, photos, device)
        log(f"nearest to the new painting: {names[row]} (style term {terms[row]:.3f} on 8 photos; "
            f"the collection's styles: {min(terms):.3f}..{max(terms):.3f})")
    if not cfg.add_style:
        log(f"the run starts from {names[row]}'s norm parameters and the collection's convolutions")
        return one_style(start, row)
    grown = add_style_row(start, like=row, maps=cfg.style_maps)
    log(f"the new style starts from {names[row]}'s parameters; its own norm parameters"
        f"{' and channel maps' if grown.style_maps else ''} alone are trained")
    return grown


def load_photos(cfg: TrainConfig, rank: int, world: int, log) -> Photos:
    """A folder or a cached COCO subset, minus a few photos held out for the previews."""
    if cfg.dataset == "coco":
        data_dir = coco_subset(cfg.limit) if rank == 0 else None
        if world > 1:
            box = [data_dir]
            dist.broadcast_object_list(box, src=0)
            data_dir = box[0]
    else:
        data_dir = cfg.data
    full = PhotoFolder.from_folder(data_dir, cfg.image_size, cfg.flip, cfg.seed, log=log)
    train_paths, held_out = split_validation(full.paths, cfg.val_count if len(full.paths) > 2 * cfg.val_count else 0)
    if not held_out:
        log(f"only {len(full.paths)} photos: none held out; the previews show {min(cfg.val_count, len(train_paths))} "
            f"training photos (more than {2 * cfg.val_count} photos hold {cfg.val_count} out)")
    dataset = PhotoFolder(train_paths, cfg.image_size, cfg.flip, cfg.seed)
    preview_paths = held_out or train_paths[: cfg.val_count]
    batches_per_epoch = len(dataset) // world // cfg.batch_size
    if batches_per_epoch == 0:
        raise FstError(f"{len(dataset)} training images are fewer than one batch of {cfg.batch_size} per process")
    return Photos(dataset, [load_image(p, long_side=cfg.image_size).rgb for p in preview_paths], held_out, data_dir,
                  batches_per_epoch)


def held_out_figures(cfg: TrainConfig, photos: Photos, loss_net, device, at: Position, is_main: bool) -> HeldOut | None:
    """--eval-every: `fst evaluate`'s figures of the held-out photos, with the run's own loss in
    float32 (its Gram targets computed again without autocast: the figures of fst evaluate); the
    main rank evaluates, every rank refuses what cannot be evaluated (all stop alike)."""
    if not cfg.eval_every:
        return None
    if cfg.collection:
        raise FstError("--eval-every evaluates one style (a single-style or --add-style run); evaluate a collection's "
                       "styles with fst evaluate CHECKPOINT:STYLE --held-out")
    if not photos.held_out:
        raise FstError(f"--eval-every: no photos are held out to evaluate on (more than {2 * cfg.val_count} photos "
                       f"hold {cfg.val_count} out)")
    if not is_main:
        return None
    styles = [torch.from_numpy(load_style_image(p, cfg.style_size, cfg.loss))[None].to(device) for p in cfg.style]
    criterion = PerceptualLoss(loss_net, styles, cfg.loss, cfg.style_blend)
    return HeldOut(criterion, photos.held_out, cfg.eval_every, cfg.eval_size, at.seconds)


def build_network(cfg: TrainConfig, state: dict | None, device: torch.device, log, styles: int = 0,
                  start: TransformerNet | None = None):
    """The network and its optimizer: fresh, from `start`'s weights (starting_network), or as the
    checkpoint left them. styles: the collection's size (0: a single-style network). --add-style
    trains the new style's own parameters alone: the shared weights get no gradient and are not in the optimizer."""
    maps = start.style_maps if start is not None else bool(state and state["meta"]["architecture"].get("style_maps"))
    net = TransformerNet(cfg.channels, cfg.res_blocks, styles, maps).to(device)
    if start is not None:
        if start.architecture() != net.architecture():
            raise FstError(f"--init {cfg.init}: its network is {start.architecture()}, this run's is {net.architecture()}")
        net.load_state_dict(start.state_dict())
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    trained = net.parameters()
    if cfg.add_style:
        shared = net.shared_parameters()
        for p in shared:
            p.requires_grad_(False)
        trained = [p for p in net.parameters() if all(p is not q for q in shared)]
    optimizer = torch.optim.Adam(trained, lr=cfg.lr)
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        at = Position(state["step"], state["epoch"], state["batch_in_epoch"], state.get("seconds", 0.0))
        log(f"resumed at step {at.step} (epoch {at.epoch}, batch {at.batch_in_epoch}) with the checkpoint's settings")
        return net, optimizer, at
    return net, optimizer, Position()


def weight_average(net: TransformerNet, decay: float, state: dict | None) -> AveragedModel | None:
    """--ema: a moving average of the network's weights (torch's AveragedModel), or None for 0.
    Its n-th update moves it by 1 - min(decay, (1 + n) / (10 + n)) towards the trained weights:
    early on it averages only the steps taken (TensorFlow's num_updates rule), so an evaluation
    after a few steps is not held back at the starting weights. Resumed from the checkpoint's."""
    if not decay:
        return None

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        weight = 1 - min(decay, (1 + float(n)) / (10 + float(n)))
        for a, c in zip(averaged, current):
            a.lerp_(c, weight)  # frozen weights (--add-style's shared ones) equal theirs: stay bit-identical

    averaged = AveragedModel(net, multi_avg_fn=update)
    if state is not None:
        averaged.module.load_state_dict(state["averaged"])
        averaged.n_averaged.fill_(state["averaged_count"])
    return averaged


def train_loop(cfg, model, criterion, optimizer, photos: Photos, at: Position, total_steps: int, stop_seconds: float,
               device, rank: int, world: int, run_dir: str, checkpoint, resumed: bool, trained: list[int] = (),
               held_out: HeldOut | None = None, averaged: AveragedModel | None = None):
    """Steps from `at` (updated in place) to total_steps, or until at.seconds reaches
    stop_seconds (inf: no limit); returns (last loss terms, interrupted). trained: a collection's styles this run
    trains (empty: a single-style network). held_out (main rank): its figures go into the log. averaged
    (weight_average): updated after each step; it, not the trained network, is evaluated and previewed."""
    is_main = rank == 0
    net = model.module if world > 1 else model
    shown = averaged.module if averaged is not None else net
    log_file = open(os.path.join(run_dir, "log.jsonl"), "a" if resumed else "w") if is_main else None
    from tqdm import tqdm

    bar = tqdm(total=total_steps, initial=at.step, unit="step", disable=not is_main, dynamic_ncols=True)
    terms, interrupted, ctrl_c, clock = {}, False, CtrlC(world, device), Stopwatch(at.seconds)

    evaluated = one_hot(trained[0], net.styles).to(device) if trained else None  # --add-style: the new style
    # a time-decayed lr must be the same on every rank: the main rank's clock decides
    timed_lr = bool(cfg.time_limit) and cfg.lr_decay != "none"

    def evaluate() -> None:  # not training time: the clock skips it
        log_file.write(json.dumps(held_out.record(torch_stylize(shown, device, evaluated), at.step, at.seconds)) + "\n")
        log_file.flush()
        clock.skip()

    try:
        ctrl_c.listen()
        if held_out and held_out.due(at.seconds):  # step 0: the untrained network
            evaluate()
        done = False
        while not done and not interrupted:
            t0 = time.perf_counter()
            for batch in _epoch_loader(cfg, photos, at, rank, world, device):
                batch = batch.to(device, non_blocking=True)
                if cfg.channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                lr = set_lr(optimizer, cfg, at.step, _from_main_rank(at.seconds, world, device) if timed_lr else at.seconds,
                            total_steps)
                style, style_index = batch_styles(trained, net.styles, at.step, len(batch), rank, world, device)
                terms = train_step(model, criterion, optimizer, batch, style, style_index if cfg.collection else None,
                                   cfg.stability_weight,
                                   step_generator(cfg.seed, at.step, rank) if cfg.stability_weight else None)
                if averaged is not None:
                    averaged.update_parameters(net)
                at.step += 1
                at.batch_in_epoch += 1
                at.seconds = clock.lap()
                now = time.perf_counter()
                images_per_s, t0 = cfg.batch_size * world / max(now - t0, 1e-9), now
                values = {k: float(v.detach()) for k, v in terms.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    raise FstError(f"loss became {values} at step {at.step}: lower --lr or the loss weights")
                if is_main:
                    _log_step(bar, log_file, at.step, values, images_per_s, lr)
                if held_out and held_out.due(at.seconds):
                    evaluate()
                    t0 = time.perf_counter()  # nor are they in images/s
                if cfg.checkpoint_every and at.step % cfg.checkpoint_every == 0:
                    checkpoint()
                    if is_main:
                        _preview(shown, photos.preview, device, os.path.join(run_dir, f"preview_{at.step:06d}.png"), trained)
                done = at.step >= total_steps or math.isfinite(stop_seconds) and _main_rank_says(
                    at.seconds >= stop_seconds, world, device)
                if done:
                    break
                if ctrl_c.stop():
                    interrupted = True
                    break
            else:
                at.epoch += 1
                at.batch_in_epoch = 0
        if held_out and not interrupted and held_out.last_step != at.step:  # the run's end
            evaluate()
    except KeyboardInterrupt:  # a second Ctrl-C
        interrupted = True
    finally:
        ctrl_c.release()
        bar.close()
        if log_file:
            log_file.close()
    return terms, interrupted


def set_lr(optimizer, cfg: TrainConfig, step: int, seconds: float, total_steps: int) -> float:
    """The learning rate of the step about to run: cfg.lr, or with --lr-decay cosine cfg.lr times
    (1 + cos(pi * progress)) / 2, progress in [0, 1] being how far the run is through its steps or
    its time limit, whichever is further (both are in the checkpoint: a resume continues the curve)."""
    lr = cfg.lr
    if cfg.lr_decay == "cosine":
        progress = step / total_steps
        if cfg.time_limit:
            progress = max(progress, seconds / cfg.time_limit)
        lr = cfg.lr * (1 + math.cos(math.pi * min(progress, 1.0))) / 2
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def _log_step(bar, log_file, step: int, values: dict[str, float], images_per_s: float, lr: float) -> None:
    """The progress bar and the log's record of one step's loss terms."""
    bar.update(1)
    stability = {"stability": f"{values['stability']:.4f}"} if "stability" in values else {}  # --stability-weight
    bar.set_postfix(content=f"{values['content']:.3f}", style=f"{values['style']:.3f}",
                    tv=f"{values['tv']:.4f}", **stability, img_s=f"{images_per_s:.1f}")
    log_file.write(json.dumps({"step": step, **values, "images_per_s": images_per_s, "lr": lr}) + "\n")
    log_file.flush()


def _main_rank_says(flag: bool, world: int, device) -> bool:
    """The main rank's flag on every rank (one decision: the ranks stop at the same step)."""
    return bool(_from_main_rank(float(flag), world, device))


def _from_main_rank(value: float, world: int, device) -> float:
    """The main rank's value on every rank."""
    if world == 1:
        return value
    box = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(box, src=0)
    return float(box.item())


def _epoch_loader(cfg: TrainConfig, photos: Photos, at: Position, rank: int, world: int, device) -> DataLoader:
    """The rest of the current epoch for this rank: batches (N, 3, S, S) in [0, 1]."""
    dataset = photos.dataset
    order = _epoch_order(len(dataset), cfg.seed, at.epoch, rank, world)[: photos.batches_per_epoch * cfg.batch_size]
    dataset.epoch = at.epoch
    return DataLoader(Subset(dataset, order[at.batch_in_epoch * cfg.batch_size :]), batch_size=cfg.batch_size,
                      drop_last=True, num_workers=cfg.workers, pin_memory=device.type == "cuda",
                      persistent_workers=False, worker_init_fn=_ignore_ctrl_c)


def _check_ranks_in_sync(net, world: int, log) -> None:
    """Prove the ranks stayed in lock-step: the same weights everywhere."""
    digest = torch.tensor([float(sum(p.detach().double().sum() for p in net.parameters()))], dtype=torch.float64)
    gathered = [torch.zeros_like(digest) for _ in range(world)]
    dist.all_gather(gathered, digest)
    log(f"ranks in sync: {'yes' if all(torch.equal(g, gathered[0]) for g in gathered) else 'NO'} "
        f"({[float(g) for g in gathered]})")


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank), initialising the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    else:  # share the cores between the processes of this node
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    return dist.get_rank(), world, local_rank


def _atomic_torch_save(obj, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _ignore_ctrl_c(worker_id: int) -> None:
    """DataLoader workers share the terminal's Ctrl-C; the main process decides when to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _epoch_order(n: int, seed: int, epoch: int, rank: int, world: int) -> list[int]:
    """This rank's share of the epoch's shuffled order (same on every rank before sharding)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()
    return order[rank::world]


def batch_styles(trained: list[int], styles: int, step: int, n: int, rank: int, world: int, device):
    """Each image's style at this step: (style weights (n, S), style index (n,)), or (None, None)
    for a single-style network. The trained styles take turns image by image across steps and
    ranks, so every style gets the same share and a resumed run picks the same ones."""
    if not trained:
        return None, None
    first = (step * world + rank) * n
    index = torch.tensor([trained[(first + i) % len(trained)] for i in range(n)], device=device)
    return one_hot(index, styles).to(device), index


def _preview(net, val_images: list[np.ndarray], device, path: str, trained: list[int] = ()) -> None:
    """Rows of photo | stylized (one column per trained style of a collection) for the held-out
    photos, saved as one PNG."""
    if not val_images:
        return
    styles = [one_hot(i, net.styles).to(device) for i in trained] or [None]
    stylizers = [torch_stylize(net, device, style) for style in styles]
    rows = [np.concatenate([rgb, *(stylize(rgb) for stylize in stylizers)], axis=2) for rgb in val_images]
    width = max(r.shape[2] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, 4), (0, width - r.shape[2])), constant_values=1.0) for r in rows]
    save_image(path, np.concatenate(rows, axis=1), overwrite=True)


def network_forward(model, criterion: PerceptualLoss):
    """The network's pass in training: (N, 3, S, S) [0, 1] photos, (N, styles) weights or None ->
    float32 (N, 3, S, S) [0, 1], at the training margin. Where the loss autocasts VGG to bf16 on
    the CPU (PerceptualLoss.cpu_bf16), the network runs under the same autocast: in float32 it had
    become half of a step (forward + backward 0.62 s of ~1.3 s at batch 4, 256 px, on an AVX-512
    bf16 CPU; 0.35 s in bf16, whose convolutions beat float32's there as VGG's do). Its weights,
    their gradients and Adam stay float32; its norms run in float32 (autocast's rule); its tensors
    stay NCHW (channels-last input measured slower: the norms hand back NCHW anyway)."""
    def forward(batch: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        if not criterion.cpu_bf16(batch):
            return model(batch, style, margin=TRAINING_MARGIN)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = model(batch, style, margin=TRAINING_MARGIN)
        return output.float()

    return forward


def train_step(model, criterion: PerceptualLoss, optimizer, batch: torch.Tensor, style: torch.Tensor | None = None,
               style_index: torch.Tensor | None = None, stability_weight: float = 0.0,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One optimizer step on a batch of photos (N, 3, S, S) in [0, 1]; returns the loss terms.
    A collection's: style (N, S) weights for the network, style_index (N,) for separate targets.
    stability_weight > 0: plus that times J_stability (fst.stability, its motions drawn from generator),
    a term of its own in the log."""
    forward = network_forward(model, criterion)
    output = forward(batch, style)
    terms = criterion(output, batch, style_index=style_index)
    if stability_weight:
        terms["stability"] = stability_term(forward, batch, output, style, generator)
        terms["total"] = terms["total"] + stability_weight * terms["stability"]
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    optimizer.step()
    return terms


def run(args) -> int:
    """`fst train` from parsed arguments: only the options given (argparse leaves the others out)
    replace TrainConfig's defaults, or, with --resume, the checkpoint's resumable settings."""
    given = {k: v for k, v in vars(args).items() if k != "command"}
    if given.get("eval_size") == "own":
        given["eval_size"] = None  # TrainConfig's own-size value
    if given.get("init") not in (None, "auto", "none") and not os.path.isfile(given["init"]):  # a shipped name, or NAME:STYLE
        from fst.styles import resolve_style

        given["init"], given["init_style"] = resolve_style(given["init"], "torch")
    resume = given.pop("resume", None)
    if resume:
        fixed = sorted(k for k in given if k not in RESUMABLE_OVERRIDES)
        if fixed:
            names = ", ".join("--" + k.replace("_", "-") for k in fixed)
            raise FstError(f"--resume continues a run with the checkpoint's own settings (style, data, sizes, network, "
                           f"loss, lr, seed); it can change only {', '.join('--' + k.replace('_', '-') for k in RESUMABLE_OVERRIDES)}. "
                           f"Drop {names}, or start a new run from its weights with --init")
        train(TrainConfig(style=[]), resume=resume, overrides=given)
        return 0
    loss = LossConfig.from_args(args)
    renamed = {"style": given.pop("style", []), "style_blend": given.pop("style_weights", None),
               "flip": not given.pop("no_flip", False)}
    if "collection" in given:
        renamed["collection"] = True
        given.setdefault("name", given.pop("collection"))  # --name, where given, names the file
    if "add_style" in given:
        if renamed["style"]:
            raise FstError("--add-style IMAGE is the one style of the run: drop --style")
        renamed.update(add_style=True, style=[given.pop("add_style")])
        given.setdefault("lr", TrainConfig.add_style_lr)
    fields = TrainConfig.__dataclass_fields__
    train(TrainConfig(**{k: v for k, v in given.items() if k in fields}, **renamed, loss=loss))
    return 0
