"""`fst train`: fit a TransformerNet to one style (or a blend) on a folder of photos or COCO.

Read top to bottom: set-up, resume, the loop, checkpoints. One process, or one per rank under
torchrun (DistributedDataParallel; gloo on CPU, NCCL on GPU; rank 0 alone writes files).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset

from fst import FstError, __version__
from fst.data import PhotoFolder, coco_subset, split_validation
from fst.images import load_image, save_image
from fst.losses import LossConfig, PerceptualLoss, load_style_image
from fst.runtime import pick_amp, pick_device
from fst.transformer import DEFAULT_CHANNELS, DEFAULT_RES_BLOCKS, TransformerNet, load_model
from fst.vgg import file_sha256, load_loss_network


@dataclass
class TrainConfig:
    style: list[str]
    style_blend: list[float] | None = None
    data: str | None = None
    dataset: str | None = None  # "coco": stream a subset through `datasets`
    limit: int = 2000  # images fetched with --dataset coco
    name: str | None = None
    output: str | None = None  # final model; default checkpoints/<name>.pth
    run_dir: str | None = None  # checkpoints, previews, log; default runs/<name>
    image_size: int = 256
    style_size: int = 512
    batch_size: int = 4
    epochs: int = 2
    steps: int | None = None
    lr: float = 1e-3
    channels: int = DEFAULT_CHANNELS
    res_blocks: int = DEFAULT_RES_BLOCKS
    loss: LossConfig = field(default_factory=LossConfig)
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = False  # measured: no gain on CPU for these convs
    workers: int = 2
    flip: bool = True
    checkpoint_every: int = 200
    val_count: int = 4
    vgg_weights: str | None = None
    overwrite: bool = False
    init: str | None = None  # start from this trained model's weights (fine-tuning)


# Fields that --resume may change; everything else comes from the checkpoint.
RESUMABLE_OVERRIDES = ("steps", "epochs", "checkpoint_every", "output", "workers", "device", "overwrite")


def _config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    d["loss"] = LossConfig.from_dict(d["loss"])
    return TrainConfig(**d)


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


class CtrlC:
    """Ctrl-C (SIGINT) while training: the step in flight finishes, then the loop stops, writes its
    checkpoint and exits 130 (an exception in the middle of a step could checkpoint a half-applied
    update). A second Ctrl-C interrupts at once. Under torchrun every rank stops at the same step."""

    def __init__(self, world: int, device: torch.device):
        self.pressed, self.world, self.device, self.previous = False, world, device, None

    def listen(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._press)

    def _press(self, signum, frame) -> None:
        self.pressed = True
        signal.signal(signal.SIGINT, self.previous)  # the next one raises KeyboardInterrupt

    def release(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def stop(self) -> bool:
        """Whether to stop after this step: on any rank, Ctrl-C was pressed."""
        if self.world == 1:
            return self.pressed
        flag = torch.tensor([float(self.pressed)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def _ignore_ctrl_c(worker_id: int) -> None:
    """DataLoader workers share the terminal's Ctrl-C; the main process decides when to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _epoch_order(n: int, seed: int, epoch: int, rank: int, world: int) -> list[int]:
    """This rank's share of the epoch's shuffled order (same on every rank before sharding)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()
    return order[rank::world]


def _preview(net, val_images: list[np.ndarray], device, path: str) -> None:
    """Rows of photo | stylized for the held-out photos, saved as one PNG."""
    if not val_images:
        return
    rows = []
    with torch.no_grad():
        for rgb in val_images:
            out = net(torch.from_numpy(rgb)[None].to(device))[0].float().cpu().numpy()
            rows.append(np.concatenate([rgb, out], axis=2))
    width = max(r.shape[2] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, 4), (0, width - r.shape[2])), constant_values=1.0) for r in rows]
    save_image(path, np.concatenate(rows, axis=1), overwrite=True)


def train_step(model, criterion: PerceptualLoss, optimizer, batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """One optimizer step on a batch of photos (N, 3, S, S) in [0, 1]; returns the loss terms."""
    terms = criterion(model(batch), batch)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    optimizer.step()
    return terms


def train(cfg: TrainConfig, resume: str | None = None, log=print, overrides: dict | None = None) -> str:
    """Run the training described by cfg; returns the path of the final model.

    resume: a checkpoint to continue exactly; its configuration is used, with `overrides` (by
    default cfg's RESUMABLE_OVERRIDES fields) replacing those few fields.
    """
    state = None
    if resume:
        if not os.path.isfile(resume):
            raise FstError(f"--resume {resume}: no such checkpoint")
        try:
            state = torch.load(resume, map_location="cpu", weights_only=True)
            saved = _config_from_dict(state["config"])
        except Exception:
            raise FstError(f"--resume {resume}: not an fst training checkpoint (runs/NAME/checkpoint.pth)") from None
        if overrides is None:
            overrides = {key: getattr(cfg, key) for key in RESUMABLE_OVERRIDES}
        for key, value in overrides.items():
            setattr(saved, key, value)
        cfg = saved
    rank, world, local_rank = _distributed()
    is_main = rank == 0
    log = log if is_main else (lambda *a, **k: None)
    device = pick_device(cfg.device if world == 1 or cfg.device != "auto" else "auto")
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
    torch.manual_seed(cfg.seed)
    for value, what in ((cfg.image_size, "--image-size"), (cfg.batch_size, "--batch-size"), (cfg.channels, "--channels")):
        if value < 1:
            raise FstError(f"{what} must be positive")
    if cfg.image_size < 32:
        raise FstError("--image-size must be at least 32")

    # The style: Gram targets from each style image, computed once.
    style_hashes = []
    style_tensors = []
    for path in cfg.style:
        rgb = load_style_image(path, cfg.style_size, cfg.loss)
        style_tensors.append(torch.from_numpy(rgb)[None].to(device))
        style_hashes.append(file_sha256(path))
    name = cfg.name or "+".join(os.path.splitext(os.path.basename(p))[0] for p in cfg.style)
    cfg.name = name
    run_dir = cfg.run_dir or os.path.join("runs", name)
    output = cfg.output or os.path.join("checkpoints", f"{name}.pth")
    if os.path.exists(output) and not cfg.overwrite:
        raise FstError(f"{output}: already exists (pass --overwrite, or --output another path)")
    if state is None and os.path.exists(os.path.join(run_dir, "checkpoint.pth")) and not cfg.overwrite:
        raise FstError(f"{run_dir} holds an earlier run: continue it with --resume {os.path.join(run_dir, 'checkpoint.pth')}, "
                       "or pass --overwrite (or --run-dir) to start afresh")
    loss_net = load_loss_network(cfg.vgg_weights, device)
    amp_dtype = pick_amp(cfg.amp, device)
    criterion = PerceptualLoss(loss_net, style_tensors, cfg.loss, cfg.style_blend, amp_dtype)
    if cfg.channels_last:
        criterion = criterion.to(memory_format=torch.channels_last)

    # The photos: a folder or a cached COCO subset, minus a few held out for previews.
    if cfg.dataset == "coco":
        data_dir = coco_subset(cfg.limit) if is_main else None
        if world > 1:
            box = [data_dir]
            dist.broadcast_object_list(box, src=0)
            data_dir = box[0]
    elif cfg.data:
        data_dir = cfg.data
    else:
        raise FstError("give --data DIR (a folder of photos) or --dataset coco")
    full = PhotoFolder.from_folder(data_dir, cfg.image_size, cfg.flip, cfg.seed, log=log)
    train_paths, val_paths = split_validation(full.paths, cfg.val_count if len(full.paths) > 2 * cfg.val_count else 0)
    dataset = PhotoFolder(train_paths, cfg.image_size, cfg.flip, cfg.seed)
    val_images = [load_image(p, long_side=cfg.image_size).rgb for p in val_paths]
    per_rank = len(dataset) // world
    batches_per_epoch = per_rank // cfg.batch_size
    if batches_per_epoch == 0:
        raise FstError(f"{len(dataset)} training images are fewer than one batch of {cfg.batch_size} per process")
    total_steps = cfg.steps or cfg.epochs * batches_per_epoch

    # The network and optimizer, fresh or resumed.
    net = TransformerNet(cfg.channels, cfg.res_blocks).to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    step, epoch, batch_in_epoch = 0, 0, 0
    if cfg.init and state is None:
        start, start_meta = load_model(cfg.init)
        if start.architecture() != net.architecture():
            raise FstError(f"--init {cfg.init}: its network is {start.architecture()}, this run's is {net.architecture()}")
        net.load_state_dict(start.state_dict())
        log(f"starting from {cfg.init} ({start_meta.get('steps', '?')} steps)")
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        torch.set_rng_state(state["rng"]["torch"])
        if state["style_sha256"] != style_hashes:
            raise FstError("--resume: the style image(s) changed since this checkpoint was written")
        log(f"resumed from {resume} at step {step} (epoch {epoch}, batch {batch_in_epoch})")
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    meta = {
        "fst_version": __version__,
        "name": name,
        "styles": [os.path.basename(p) for p in cfg.style],
        "style_sha256": style_hashes,
        "style_blend": cfg.style_blend,
        "architecture": net.architecture(),
        "vgg": loss_net.identity,
        "data": data_dir,
        "training_images": len(dataset),
        "held_out": [os.path.basename(p) for p in val_paths],
        "init": cfg.init,
    }

    def checkpoint(path: str) -> None:
        if not is_main:
            return
        _atomic_torch_save(
            {
                "model": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "rng": {"torch": torch.get_rng_state()},
                "config": asdict(cfg),
                "style_sha256": style_hashes,
                "vgg": loss_net.identity,
                "meta": meta,
            },
            path,
        )

    if is_main:
        os.makedirs(run_dir, exist_ok=True)
        log(f"training {name}: {len(dataset)} photos, {total_steps} steps of {cfg.batch_size}x{world} at "
            f"{cfg.image_size}px on {device} (VGG autocast: {amp_dtype or 'fp32'}); run folder {run_dir}")
    log_file = open(os.path.join(run_dir, "log.jsonl"), "a" if state else "w") if is_main else None
    from tqdm import tqdm

    bar = tqdm(total=total_steps, initial=step, unit="step", disable=not is_main, dynamic_ncols=True)
    terms = {}
    interrupted = False
    ctrl_c = CtrlC(world, device)
    try:
        ctrl_c.listen()
        while step < total_steps and not interrupted:
            order = _epoch_order(len(dataset), cfg.seed, epoch, rank, world)[: batches_per_epoch * cfg.batch_size]
            dataset.epoch = epoch
            loader = DataLoader(
                Subset(dataset, order[batch_in_epoch * cfg.batch_size :]),
                batch_size=cfg.batch_size,
                drop_last=True,
                num_workers=cfg.workers,
                pin_memory=device.type == "cuda",
                persistent_workers=False,
                worker_init_fn=_ignore_ctrl_c,
            )
            t0 = time.perf_counter()
            for batch in loader:
                batch = batch.to(device, non_blocking=True)
                if cfg.channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                terms = train_step(model, criterion, optimizer, batch)
                step += 1
                batch_in_epoch += 1
                now = time.perf_counter()
                images_per_s = cfg.batch_size * world / max(now - t0, 1e-9)
                t0 = now
                values = {k: float(v.detach()) for k, v in terms.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    raise FstError(f"loss became {values} at step {step}: lower --lr or the loss weights")
                if is_main:
                    bar.update(1)
                    bar.set_postfix(content=f"{values['content']:.3f}", style=f"{values['style']:.3f}",
                                    tv=f"{values['tv']:.4f}", img_s=f"{images_per_s:.1f}")
                    log_file.write(json.dumps({"step": step, **values, "images_per_s": images_per_s}) + "\n")
                    log_file.flush()
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    checkpoint(os.path.join(run_dir, "checkpoint.pth"))
                    if is_main:
                        _preview(net, val_images, device, os.path.join(run_dir, f"preview_{step:06d}.png"))
                if step >= total_steps:
                    break
                if ctrl_c.stop():
                    interrupted = True
                    break
            else:
                epoch += 1
                batch_in_epoch = 0
    except KeyboardInterrupt:  # a second Ctrl-C
        interrupted = True
    finally:
        ctrl_c.release()
        bar.close()
        if log_file:
            log_file.close()
    checkpoint(os.path.join(run_dir, "checkpoint.pth"))
    if interrupted:
        log(f"interrupted at step {step}: checkpoint saved; continue with --resume {os.path.join(run_dir, 'checkpoint.pth')}")
        raise KeyboardInterrupt

    if world > 1:  # prove the ranks stayed in lock-step
        digest = torch.tensor([float(sum(p.detach().double().sum() for p in net.parameters()))], dtype=torch.float64)
        gathered = [torch.zeros_like(digest) for _ in range(world)]
        dist.all_gather(gathered, digest)
        log(f"ranks in sync: {'yes' if all(torch.equal(g, gathered[0]) for g in gathered) else 'NO'} "
            f"({[float(g) for g in gathered]})")
    if is_main:
        _preview(net, val_images, device, os.path.join(run_dir, "preview_final.png"))
        meta.update({
            "steps": step,
            "config": asdict(cfg),
            "final_loss": {k: float(v.detach()) for k, v in terms.items()},
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        })
        state_dict = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
        _atomic_torch_save({"model": state_dict, "meta": meta}, output)
        log(f"saved {output}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return output


def run(args) -> int:
    """`fst train` from parsed arguments."""
    if args.style_weights and len(args.style_weights) != len(args.style):
        raise FstError(f"--style-weights has {len(args.style_weights)} values for {len(args.style)} --style images")
    if not args.resume and not args.style:
        raise FstError("give --style IMAGE (or --resume CHECKPOINT to continue a run)")
    # On --resume, only the options given here override the checkpoint's (see RESUMABLE_OVERRIDES).
    overrides = {k: getattr(args, k) for k in RESUMABLE_OVERRIDES if getattr(args, k, None) not in (None, False)}
    # Options left out on the command line take TrainConfig's defaults.
    optional = {k: getattr(args, k) for k in ("style_size", "epochs", "channels", "res_blocks", "workers", "checkpoint_every")}
    cfg = TrainConfig(
        **{k: v for k, v in optional.items() if v is not None},
        style=args.style or [],
        style_blend=args.style_weights,
        data=args.data,
        dataset=args.dataset,
        limit=args.limit,
        name=args.name,
        output=args.output,
        run_dir=args.run_dir,
        image_size=args.image_size,
        batch_size=args.batch_size,
        steps=args.steps,
        lr=args.lr,
        loss=LossConfig.from_args(args),
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        flip=not args.no_flip,
        vgg_weights=args.vgg_weights,
        overwrite=args.overwrite,
        init=args.init,
    )
    train(cfg, resume=args.resume, overrides=overrides)
    return 0
