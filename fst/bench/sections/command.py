"""command: whole commands as a user times them, each run in a fresh process from start to the
saved file (interpreter start-up, imports, model load, JPEG decode, network, encode), with each
process's own peak memory: `fst stylize` (ONNX Runtime, the default; and --backend torch) against
PE's `neural_style.py eval` (fst.bench.baselines.pe_eval_command) on fst's network and on its own."""

from __future__ import annotations

import os
import sys

from fst.bench.harness import log, make_row, run_command
from fst.bench.inputs import fp32_onnx
from fst.bench.plan import Context

PE_EVAL = "from fst.bench.baselines import pe_eval_command; pe_eval_command()"


def _commands(ctx: Context, photo: str) -> tuple[dict[str, tuple[str, list[str], str]], list[str]]:
    """{row name: (role, argv, how the report shows it)}, notes."""
    import torch

    from fst.bench.baselines import TransformerNet as PENet

    out = os.path.join(ctx.workdir, "styled.jpg")
    fst = [sys.executable, "-m", "fst", "stylize", photo, "-o", out, "--overwrite", "--device", str(ctx.device)]
    commands = {"fst stylize (ONNX Runtime, default)": ("fst", fst + ["-m", fp32_onnx(ctx.model, ctx.workdir)],
                                                        "fst stylize PHOTO -o OUT -m MODEL.onnx")}
    notes = []
    if ctx.model.pth_path:
        commands["fst stylize --backend torch"] = ("fst", fst + ["-m", ctx.model.pth_path, "--backend", "torch"],
                                                   "fst stylize PHOTO -o OUT -m MODEL.pth --backend torch")
        commands["PE eval, fst's network (.pth)"] = (
            "baseline", [sys.executable, "-c", PE_EVAL, photo, ctx.model.pth_path, out, "fst"],
            "pe_eval_command PHOTO MODEL.pth OUT fst")
    else:
        notes.append("command: --backend torch and PE eval on fst's network not timed: no .pth for this model")
    torch.manual_seed(0)
    pe_weights = os.path.join(ctx.workdir, "pe_width32.pth")
    torch.save(PENet().state_dict(), pe_weights)
    commands["PE eval, its network (width 32)"] = (
        "baseline", [sys.executable, "-c", PE_EVAL, photo, pe_weights, out, "pe"], "pe_eval_command PHOTO PE.pth OUT pe")
    return commands, notes


def run(ctx: Context) -> dict:
    from fst.images import save_image

    plan, size = ctx.plan, ctx.plan.command_size
    (rgb,) = ctx.inputs.photos(1, size)
    photo = os.path.join(ctx.workdir, f"photo{size}.jpg")
    save_image(photo, rgb, overwrite=True)
    commands, notes = _commands(ctx, photo)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}

    def job(name):
        return lambda: runs[name].append(run_command(commands[name][1], os.path.join(ctx.workdir, "command.log")))

    warmup, repeats = plan.warmup["command"], plan.repeats["command"]
    log(f"command {size}²: {len(commands)} whole commands, {warmup} warm-up + {repeats} interleaved rounds, "
        "each in a fresh process")
    ctx.timer.run_interleaved({name: job(name) for name in commands}, warmup, repeats)  # the order; times from inside
    rows = []
    for name, (role, argv, shown) in commands.items():
        times, peaks = zip(*runs[name][warmup:])
        memory = {"peak_rss_mb": round(max(peaks), 1), "peak_rss_scope": "child process"}
        rows.append(make_row("command", size, name, role, list(times), memory, command=shown, precision="float32"))
        log(f"command {size}²: {name}: median {rows[-1]['seconds']:.2f} s (min {min(times):.2f}, max {max(times):.2f})")
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        if row["role"] == "fst":
            same = by_name.get("PE eval, fst's network (.pth)")
            row["speedup_vs_same_network"] = same["seconds"] / row["seconds"] if same else None
            row["speedup_vs_pe"] = by_name["PE eval, its network (width 32)"]["seconds"] / row["seconds"]
    return {"sizes": [size], "rows": rows, "notes": notes}
