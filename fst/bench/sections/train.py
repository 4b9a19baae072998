"""train: one training step (batch 4, a fixed batch of photos, no data loading) at 128² and 256²:
fst's (fst.train.train_step on fst.losses.PerceptualLoss) against PE's (fst.bench.baselines.
PETraining: style Grams once, two full VGG passes), PE on fst's network (the implementation
alone) and on its own (width 32: what a PE user runs). float32, and bfloat16 autocast of the
transformer's and VGG's passes on both sides where the CPU has bf16 units; ratios only within one precision.
Before timing, each baseline's loss is checked against fst's on the same output and batch."""

from __future__ import annotations

import numpy as np

from fst.bench.check import agreement, loss_bound
from fst.bench.harness import log, make_row
from fst.bench.plan import Context
from fst.bench.work import fst_net_macs, pe_net_macs, train_step_macs

AMP = {"float32": None, "bfloat16": "bfloat16"}


def _jobs(ctx: Context, precision: str, style, batch, config, arch) -> dict:
    """{row name: (role, step, transformer MACs per image, content layer, check or None)}."""
    import torch

    from fst.bench.baselines import PETraining, TransformerNet as PENet
    from fst.losses import PerceptualLoss
    from fst.train import train_step
    from fst.transformer import TRAINING_MARGIN, TransformerNet

    class AsTrained(TransformerNet):  # fst's network at fst train's margin, for PE's loop
        def forward(self, x, style=None):
            return super().forward(x, style, TRAINING_MARGIN)

    amp = getattr(torch, precision) if AMP[precision] else None
    size = batch.shape[-1]
    criterion = PerceptualLoss(ctx.loss_net, [style], config, None, amp)
    torch.manual_seed(0)
    net = TransformerNet(arch["channels"], arch["res_blocks"]).to(ctx.device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def fst_step():
        terms = train_step(net, criterion, opt, batch)
        return {k: float(v.detach()) for k, v in terms.items()}  # fst.train logs every term

    fst_macs = fst_net_macs(arch["channels"], arch["res_blocks"], size, TRAINING_MARGIN)
    jobs = {f"fst ({precision})": ("fst", fst_step, fst_macs, config.content_layer, None)}
    content_mean = batch.shape[0] * 128 * (size // 2) ** 2  # relu2_2's N C H W: the loss's longest mean
    bound = loss_bound("relu4_3", content_mean, precision)
    for name, make_net, macs in ((f"PE, fst's network ({precision})", lambda: AsTrained(arch["channels"], arch["res_blocks"]), fst_macs),
                                 (f"PE, its network ({precision})", PENet, pe_net_macs(size))):
        torch.manual_seed(0)
        pe = PETraining(make_net().to(ctx.device), ctx.loss_net, style, config, batch.shape[0], amp_dtype=amp)
        with torch.no_grad():  # the check: the same output y and batch through both losses
            y = pe.transformer(batch)
            check = agreement(float(criterion(y, batch)["total"]), float(pe.loss(y, batch)), bound)
        log(f"train {size}²: {name}: loss {check['baseline_loss']:.6g} vs fst {check['fst_loss']:.6g}, "
            f"relative difference {check['relative_difference']:.1e} (bound {bound:.1e})")
        jobs[name] = ("baseline", lambda pe=pe: pe.step(batch), macs, "relu4_3", check)
    return jobs


def run(ctx: Context) -> dict:
    import torch

    from fst.losses import LossConfig
    from fst.runtime import pick_amp

    plan = ctx.plan
    arch, config = ctx.model.architecture, LossConfig()
    style = torch.from_numpy(ctx.inputs.style(plan.train_style_size))[None].to(ctx.device)
    precisions = ["float32"] + (["bfloat16"] if ctx.bf16 else [])
    rows = []
    for size in plan.train_sizes:
        batch = torch.from_numpy(np.stack(ctx.inputs.photos(plan.batch, size))).to(ctx.device)
        for precision in precisions:
            jobs = _jobs(ctx, precision, style, batch, config, arch)
            log(f"train {size}² x{plan.batch} {precision}: {len(jobs)} implementations, "
                f"{plan.warmup['train']} warm-up + {plan.repeats['train']} interleaved rounds")
            measured = ctx.timer.run_interleaved({name: job[1] for name, job in jobs.items()},
                                                 plan.warmup["train"], plan.repeats["train"])
            group = []
            for name, (role, _, net_macs, content_layer, check) in jobs.items():
                times, memory = measured[name]
                macs = train_step_macs(net_macs, size + 2 * config.border_pad, content_layer, plan.batch)
                row = make_row("train", size, name, role, times, memory, precision=precision, macs=macs)
                row["images_per_s"] = plan.batch / row["seconds"]
                row["gflops"] = 2 * macs / row["seconds"] / 1e9
                if ctx.peak.get(precision):
                    row["percent_of_peak"] = 100 * row["gflops"] / ctx.peak[precision]
                if check:
                    row["check"] = check
                group.append(row)
                log(f"train {size}² {name}: {row['seconds']:.3f} s/step, {row['gflops']:.0f} GFLOP/s")
            fst_row, same, own = group
            fst_row["speedup_vs_same_network"] = same["seconds"] / fst_row["seconds"]
            fst_row["speedup_vs_pe"] = own["seconds"] / fst_row["seconds"]
            rows += group
    auto = pick_amp("auto", ctx.device)
    return {"sizes": plan.train_sizes, "batch": plan.batch, "style_size": plan.train_style_size,
            "amp_auto": str(auto).replace("torch.", "") if auto else "float32", "rows": rows}
