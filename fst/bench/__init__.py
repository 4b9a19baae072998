"""`fst bench`: fst's speed on this machine, beside the baselines a user would otherwise run,
measured in one run and printed as README shows it.

    harness.py    timing (warm-up, interleaved rounds), memory, fresh processes, the machine
    inputs.py     photos, style image, the model and its weights
    baselines.py  pytorch/examples' fast_neural_style and the PyTorch tutorial's Gatys, as written
    check.py      do a baseline and fst compute the same loss? (bound from float rounding)
    work.py       arithmetic counts for GFLOP/s
    sections/     peak, stylize, command, train, optimize, quality: one module each; video: fst/video/bench.py
    report.py     text, Markdown (--markdown), JSON

Nothing here imports torch at module level: `fst.bench.baselines.pe_eval_command` runs in fresh
processes that time their own imports.
"""

from __future__ import annotations

import os
import tempfile
import time

from fst import FstError, __version__
from fst.bench.harness import log

FIXED_NOTES = [
    "every fst figure is set beside its baselines measured in the same run, in interleaved rounds (one call of "
    "each per round, rotating order), so a busy spell hits them alike; ratios hold better across machines than times",
    "PE = pytorch/examples' fast_neural_style (fst/bench/baselines.py, held line by line beside its "
    "neural_style.py): its TransformerNet, its Vgg16, its training step with the style Grams computed once, its "
    "eval path; on fst's loss (same VGG weights, normalisations, TV term and border margin), so that its loss "
    "equals fst's: each baseline's loss is checked against fst's on the same inputs before it is timed "
    "(relative difference ≤ a bound from float rounding, fst/bench/check.py). \"same network\": PE's code on "
    "fst's network and weights; \"its network\": PE's own width-32 TransformerNet (random weights: timing only)",
    "tutorial = the PyTorch tutorial's Gatys optimisation (every target computed once, loss modules in a copy of "
    "VGG, pixels clamped), on fst's loss; both with fst's L-BFGS settings",
    "precision: float32 unless the row says otherwise; bfloat16 = autocast of the transformer's and VGG's passes "
    "on both sides (fst's --amp bf16 on the CPU, whose VGG pass runs in channels-last memory; PE's code keeps its "
    "NCHW tensors, as written); ONNX Runtime fp16 and int8 are fst's other model files; no ratio across precisions",
    "GFLOP/s: 2 × the convolutions' multiply-accumulates (margins included; instance norms, Grams and "
    "element-wise work left out) / seconds; each row counts its own work (fst's step takes the content through "
    "VGG only to relu2_2, PE's to relu4_3); % of peak against the same precision's peak above",
    "peak RSS MB: the process's resident memory at its highest during that job's calls (sessions and models "
    "loaded before stay resident); (+N): the most above its level when a call started",
]


def _sections(only: str | None) -> list[str]:
    from fst.bench.sections import OPT_IN, SECTIONS

    if not only:
        return [s for s in SECTIONS if s not in OPT_IN]
    wanted = [s.strip() for s in only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown or not wanted:
        raise FstError(f"--only {only}: use a comma list of {', '.join(SECTIONS)}")
    if {"stylize", "train"} & set(wanted) and "peak" not in wanted:
        wanted.append("peak")  # their % of peak needs it
    return [s for s in SECTIONS if s in wanted]


def bench(quick: bool = False, device_name: str = "cpu", model_spec: str | None = None, vgg_weights: str | None = None,
          repeats: int | None = None, only: str | None = None, command: str = "fst bench",
          video: str | None = None, photos: str | None = None, minutes: float | None = None,
          init: str | None = None, style_weight: float | None = None, add_style: bool = False,
          lr: float | None = None) -> dict:
    if repeats is not None and repeats < 1:
        raise FstError("--repeats must be at least 1")
    if minutes is not None and not minutes > 0:
        raise FstError("--minutes must be positive")
    names = _sections(only)
    from fst.bench.harness import Timer, machine_info
    from fst.bench.inputs import Inputs, resolve
    from fst.bench.plan import Context, Plan
    from fst.bench.sections import section
    from fst.bench.work import pe_net_macs
    from fst.runtime import pick_device
    from fst.transformer import macs_per_pixel

    device = pick_device(device_name)
    if device.type not in ("cpu", "cuda"):
        raise FstError(f"--device {device_name}: fst bench runs on cpu or cuda")
    if names == ["quality"]:  # the report's model line names the quality section's model
        from fst.bench.sections.quality import QUALITY_MODEL

        model_spec = model_spec or QUALITY_MODEL
    model = resolve(model_spec)
    if "video" in names:  # a missing clip or extra is a one-line error before any timing
        from fst.video import require_video_libs
        from fst.video.bench import DEFAULT_CLIP

        require_video_libs()
        if not os.path.isfile(video or DEFAULT_CLIP):
            raise FstError(f"{video or DEFAULT_CLIP}: no such clip (the video section needs one: --video CLIP)")
    if {"train", "optimize", "video", "quality"} & set(names):
        from fst.vgg import load_loss_network

        load_loss_network(vgg_weights, "cpu")  # a missing file is a one-line error before any timing
    if "quality" in names:  # a model without its training record is a one-line error too
        from fst.bench.sections.quality import init_model, model_meta

        init_model(init, model_meta(model_spec)[0], add_style)
    plan = Plan.make(quick, repeats, minutes)
    arch = model.architecture
    report = {
        "fst_version": __version__, "command": command, "quick": quick, "device": str(device),
        "machine": machine_info(device),
        "settings": {"warmup": {k: plan.warmup[k] for k in names if k in plan.warmup},
                     "repeats": {k: plan.repeats[k] for k in names if k in plan.repeats},
                     "stylize_sizes": plan.stylize_sizes, "train_sizes": plan.train_sizes,
                     "optimize_sizes": plan.optimize_sizes, "batch": plan.batch},
        "model": {"label": model.label, "name": model.name, "architecture": arch, "has_pth": bool(model.pth_path),
                  "macs_per_megapixel": macs_per_pixel(arch["channels"], arch["res_blocks"]) * 1_000_000,
                  "pe_macs_per_megapixel": pe_net_macs(1000)},
        "sections": {}, "notes": [],
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fst-bench-") as workdir:
        ctx = Context(plan, device, Timer(device), model, Inputs(), workdir, vgg_weights, video, model_spec, photos, init,
                      quality_style_weight=style_weight, quality_add_style=add_style, quality_lr=lr)
        for name in names:
            result = section(name)(ctx)
            report["notes"] += result.pop("notes", [])
            report["sections"][name] = result
    report["seconds_total"] = round(time.perf_counter() - started, 1)
    _finish_notes(report, ctx)
    return report


def _finish_notes(report: dict, ctx) -> None:
    notes = report["notes"]
    load, cores = report["machine"]["load_average_start"], report["machine"]["usable_cores"] or 1
    if load is not None and load > 0.5 * cores:
        notes.insert(0, f"WARNING: the machine was busy when the run started (load average {load} on {cores} cores): "
                        "other work competes for the cores; rerun on an idle machine")
    notes[:0] = ctx.inputs.notes()
    rows = [r for s in report["sections"].values() for r in s.get("rows", [])]
    over = [r["name"] for r in rows if (r.get("percent_of_peak") or 0) > 100]
    if over:
        notes.insert(0, f"WARNING: above the measured peak ({', '.join(sorted(set(over)))}): the peak probes "
                        "underestimate this machine; read % of peak as a lower bound of their share")
    failed = [f"{r['section']} {r['size']}² {r['name']}" for r in rows if r.get("check") and not r["check"]["ok"]]
    failed += [f"{r['section']} {r['size']}² {r['name']}" for r in rows if r.get("same_output") is False]
    if failed:
        notes.insert(0, f"WARNING: a baseline does not compute what fst computes: {'; '.join(failed)}")
    report["checks_failed"] = failed
    notes += FIXED_NOTES
    if ctx._loss_net is not None:
        notes.append(f"VGG16 loss network: {ctx._loss_net.identity}")
    if "train" in report["sections"]:
        notes.append(f"training: fst's `--amp auto` picks {report['sections']['train']['amp_auto']} on this machine")


def run(args) -> int:
    from fst.bench import report as output
    from fst.cpuinfo import emulated_isa

    if args.isa != emulated_isa():  # the whole bench again, in a process that sees that CPU
        from fst.bench.isa import reexec

        if args.isa == "native":
            raise FstError("--isa native: this process runs under --isa's CPUID mask (FST_ISA is set): "
                           "start it from a shell without it")
        reexec(args.isa, args.raw_argv)

    shown = " ".join(["fst bench"] + [flag for flag, on in (("--quick", args.quick), ("--markdown", args.markdown),
                                                            ("--add-style", args.add_style)) if on]
                     + ([f"--isa {args.isa}"] if args.isa != "native" else [])
                     + [f"{flag} {value}" for flag, value in (("--only", args.only), ("--repeats", args.repeats),
                                                              ("--device", args.device if args.device != "cpu" else None),
                                                              ("--model", args.model and os.path.basename(args.model)),
                                                              ("--video", args.video and os.path.basename(args.video)),
                                                              ("--minutes", args.minutes),
                                                              ("--init", args.init and os.path.basename(args.init)),
                                                              ("--style-weight", args.style_weight),
                                                              ("--lr", args.lr))
                        if value])
    report = bench(quick=args.quick, device_name=args.device, model_spec=args.model, vgg_weights=args.vgg_weights,
                   repeats=args.repeats, only=args.only, command=shown, video=args.video, photos=args.photos,
                   minutes=args.minutes, init=args.init, style_weight=args.style_weight, add_style=args.add_style,
                   lr=args.lr)
    if args.json and args.json != "-":
        with open(args.json, "w") as f:
            f.write(output.as_json(report))
    print(output.as_json(report) if args.json == "-" else output.markdown(report) if args.markdown else output.text(report))
    log(f"done in {report['seconds_total']:.0f} s")
    if report["checks_failed"]:
        raise FstError(f"a baseline's check failed: {'; '.join(report['checks_failed'])}")
    return 0
