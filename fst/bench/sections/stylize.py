"""stylize: one image at each size, in this process (the network alone: no decode, no encode).

fst: ONNX Runtime (fp32, and its fp16 and int8 files) and --backend torch (eager, fst's inference
form). Baselines, eager fp32 PyTorch: PE's eval path on fst's network with the same weights (the
implementation alone) and on PE's own network (width 32, random weights: timing only). Ratios only
between float32 rows. Each fst row's output is compared with PE's on the same network."""

from __future__ import annotations

import numpy as np

from fst import FstError
from fst.bench.harness import log, make_row
from fst.bench.inputs import onnx_variants, torch_net
from fst.bench.plan import Context
from fst.bench.work import fst_net_macs, pe_net_macs

SAME = "PE eval, fst's network (same weights)"
OWN = "PE eval, its network (width 32)"
SINGLE = "fst ONNX Runtime fp32"
COLLECTION = "fst ONNX Runtime fp32, collection {name} ({count} styles)"  # its first style; another output
# fst's export check allows 0.05 on the 0..255 scale between ONNX Runtime and PyTorch (fst export --tolerance)
OUTPUT_TOLERANCE = 0.05


def _jobs(ctx: Context, net, pe_net) -> tuple[dict, list[str]]:
    """{row name: (role, precision, call (3, H, W) [0, 1] -> (3, H, W))}, notes."""
    import torch

    from fst.bench.baselines import pe_stylize
    from fst.stylize import OnnxStylizer, TorchStylizer
    from fst.subpixel import for_inference

    variants, notes = onnx_variants(ctx.model, ctx.workdir, ctx.inputs, ctx.plan.calibration_size)
    jobs = {}
    for kind, path in variants.items():
        try:
            jobs[f"fst ONNX Runtime {kind}"] = ("fst", kind if kind != "fp32" else "float32", OnnxStylizer(path, ctx.device.type))
        except FstError as e:
            notes.append(f"ONNX Runtime {kind}: not timed ({e})")
    if ctx.model.pth_path:
        eager = TorchStylizer(ctx.model.pth_path, str(ctx.device))
    else:  # TorchStylizer's call on the same network, without a .pth file to load it from
        eager = TorchStylizer.__new__(TorchStylizer)
        eager.torch, eager.device, eager.net = torch, ctx.device, for_inference(net)
    jobs["fst PyTorch eager (--backend torch)"] = ("fst", "float32", eager)

    def pe(network):
        return lambda rgb: pe_stylize(network, torch.from_numpy(rgb)[None].to(ctx.device))[0].numpy()

    jobs[SAME] = ("baseline", "float32", pe(net))
    jobs[OWN] = ("baseline", "float32", pe(pe_net))
    jobs.update(_collection_jobs(ctx))
    return jobs, notes


def _collection_jobs(ctx: Context) -> dict:
    """The shipped style collections, timed beside the single-style network (same width): a
    collection's norm layers take their scale and shift from a (S,) x (S, C) product per call."""
    from fst.stylize import OnnxStylizer
    from fst.styles import available_collections, shipped_files

    return {COLLECTION.format(name=name, count=len(styles)):
            ("collection", "float32", OnnxStylizer(str(shipped_files(name)["onnx"]), ctx.device.type))
            for name, styles in available_collections().items()}


def run(ctx: Context) -> dict:
    import torch

    from fst.bench.baselines import TransformerNet as PENet

    plan = ctx.plan
    net, weights = torch_net(ctx.model, ctx.device)
    torch.manual_seed(0)
    pe_net = PENet().to(ctx.device).eval()
    jobs, notes = _jobs(ctx, net, pe_net)
    notes.append(f"fst's network: {weights}; PE's own network: random weights (timing does not depend on them)")
    arch = net.architecture()
    peak = ctx.peak.get("float32")
    rows = []
    for size in plan.stylize_sizes:
        (rgb,) = ctx.inputs.photos(1, size)
        reference = jobs[SAME][2](rgb)
        log(f"stylize {size}²: {len(jobs)} implementations, {plan.warmup['stylize']} warm-up + "
            f"{plan.repeats['stylize']} interleaved rounds")
        measured = ctx.timer.run_interleaved({name: (lambda fn=fn: fn(rgb)) for name, (_, _, fn) in jobs.items()},
                                             plan.warmup["stylize"], plan.repeats["stylize"])
        for name, (role, precision, fn) in jobs.items():
            times, memory = measured[name]
            macs = pe_net_macs(size) if name == OWN else fst_net_macs(arch["channels"], arch["res_blocks"], size)
            row = make_row("stylize", size, name, role, times, memory, precision=precision, macs=macs)
            row["gflops"] = 2 * macs / row["seconds"] / 1e9
            if precision == "float32" and peak:
                row["percent_of_peak"] = 100 * row["gflops"] / peak
            if role != "collection" and name != OWN:
                row["max_difference_255"] = float(np.abs(fn(rgb) - reference).max() * 255)
                row["same_output"] = precision != "float32" or row["max_difference_255"] <= OUTPUT_TOLERANCE
            rows.append(row)
            log(f"stylize {size}²: {name}: {row['seconds'] * 1000:.1f} ms, {row['gflops']:.1f} GFLOP/s")
        by_name = {r["name"]: r for r in rows[-len(jobs):]}
        for row in by_name.values():
            if row["role"] == "fst" and row["precision"] == "float32":
                row["speedup_vs_same_network"] = by_name[SAME]["seconds"] / row["seconds"]
                row["speedup_vs_pe"] = by_name[OWN]["seconds"] / row["seconds"]
        for row in by_name.values():
            if row["role"] == "collection" and SINGLE in by_name:
                row["time_vs_single_style"] = row["seconds"] / by_name[SINGLE]["seconds"]
                notes.append(f"{size}²: {row['name']}: {row['seconds'] * 1000:.1f} ms, "
                             f"{row['time_vs_single_style']:.2f}x the single-style network's "
                             f"{by_name[SINGLE]['seconds'] * 1000:.1f} ms ({ctx.model.name}, interleaved)")
    return {"sizes": plan.stylize_sizes, "architecture": arch, "output_tolerance_255": OUTPUT_TOLERANCE,
            "rows": rows, "notes": notes}
