"""`fst bench`: fst's speed on this machine, beside the same job done the plain way.

Every figure is a median over timed repeats after warm-up runs, in this one process, with the
peak memory of that measurement (resident set size, reset before each one where Linux allows;
torch.cuda.max_memory_allocated on CUDA). Sections:

* peak      a large float32 matrix product (torch.mm): this machine's practical peak GFLOP/s.
* stylize   one image at 256², 512², 1024²: ONNX Runtime fp32 / fp16 / int8 and PyTorch eager,
            each with its GFLOP/s (2 x the network's multiply-accumulates / seconds) as a share of
            that peak. Plain: eager fp32 PyTorch on the same network. Reference: eager PyTorch on
            Johnson et al.'s width (32), the well-known default.
* train     images/s at 128² and 256², batch 4: fst's step (one batched VGG pass for output and
            content that stops the content rows after the content layer, bf16 autocast where the
            hardware has it, style Grams computed once) against the plain step (fp32, separate
            full VGG passes for the output and the content, style Grams recomputed from the style
            image every step) and pytorch/examples' step (as plain, style Grams computed once).
* command   whole `fst stylize` commands of one 1024² JPEG in fresh processes, as a user times
            them (start-up, imports, model load, decode, network, encode): ONNX Runtime (the
            default) and --backend torch, against the plain command (pytorch/examples'
            `neural_style.py eval`: import torch, load the .pth, eager fp32, PIL in and out).
* optimize  seconds per loss evaluation of `fst optimize` (L-BFGS) at 256² and 512², against the
            plain evaluation (the content and the style image through VGG again at every
            evaluation, pixels optimised directly with a clamp) and the PyTorch tutorial's
            structure (as plain, targets computed once).

Timing does not depend on weight values: without a .pth beside the ONNX model, the PyTorch
rows use the ONNX model's weights (or random ones) in the same architecture.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fst import FstError, __version__

SECTIONS = ("peak", "stylize", "command", "train", "optimize")
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
PHOTO_NAMES = ("chenonceau_castle.jpg", "kitten.jpg", "butterfly.jpg")
STYLE_NAME = "starry_night.jpg"


@dataclass
class Plan:
    quick: bool
    stylize_sizes: list[int]
    train_sizes: list[int]
    optimize_sizes: list[int]
    command_size: int = 1024
    batch: int = 4
    train_style_size: int = 512
    peak_n: int = 2048
    warmup: dict[str, int] = field(default_factory=dict)
    repeats: dict[str, int] = field(default_factory=dict)
    calibration_size: int = 256

    @classmethod
    def make(cls, quick: bool, repeats: int | None) -> "Plan":
        if quick:
            plan = cls(True, [64, 128], [64], [64], command_size=128, train_style_size=128, calibration_size=64,
                       warmup={s: 1 for s in SECTIONS},
                       repeats={"peak": 3, "stylize": 3, "command": 2, "train": 2, "optimize": 2})
        else:
            plan = cls(False, [256, 512, 1024], [128, 256], [256, 512],
                       warmup={"peak": 1, "stylize": 2, "command": 1, "train": 1, "optimize": 1},
                       repeats={"peak": 5, "stylize": 5, "command": 5, "train": 3, "optimize": 3})
        if repeats is not None:
            plan.repeats = {s: repeats for s in SECTIONS}
        return plan


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- memory


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_mb(field_name: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_mb("VmHWM") is not None
    except OSError:
        return False


class Memory:
    """Peak memory of one measurement: RSS (per measurement where Linux lets us reset the peak,
    else the process's peak so far) and, on CUDA, the allocator's peak."""

    def __init__(self, device, tidy: bool = True):
        self.device = device
        self.tidy = tidy  # collect garbage and hand freed memory back first
        self.result: dict = {}

    def __enter__(self):
        if self.tidy:
            gc.collect()
            _malloc_trim()
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
            if self.tidy:
                torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.cuda_start = torch.cuda.memory_allocated()
        self.per_measurement = _reset_peak_rss()
        self.start = _status_mb("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.per_measurement:
            peak = _status_mb("VmHWM")
        else:  # ru_maxrss is KiB on Linux, bytes on macOS
            scale = 1024 * 1024 if sys.platform == "darwin" else 1024
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
        self.result = {"peak_rss_mb": round(peak, 1), "peak_rss_scope": "measurement" if self.per_measurement else "process"}
        if self.start is not None:
            self.result["rss_start_mb"] = round(self.start, 1)
            self.result["peak_rss_over_start_mb"] = round(max(0.0, peak - self.start), 1)
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
            self.result["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            self.result["cuda_peak_over_start_mb"] = round((torch.cuda.max_memory_allocated() - self.cuda_start) / 2**20, 1)
        return False


def merge_memory(results: list[dict]) -> dict:
    """The peaks of several calls of one job: the largest of each figure (start: the first call's)."""
    merged = dict(results[0])
    for key in ("peak_rss_mb", "peak_rss_over_start_mb", "cuda_peak_mb", "cuda_peak_over_start_mb"):
        values = [r[key] for r in results if key in r]
        if values:
            merged[key] = max(values)
    return merged


# ---------------------------------------------------------------- timing


class Timer:
    def __init__(self, device):
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()

    def run(self, fn, warmup: int, repeats: int) -> tuple[list[float], dict]:
        """Warm-up calls, then `repeats` timed calls: (seconds of each, memory of them all)."""
        return self.run_interleaved({"": fn}, warmup, repeats)[""]

    def run_interleaved(self, fns: dict, warmup: int, repeats: int) -> dict[str, tuple[list[float], dict]]:
        """Each job's warm-up calls, then `repeats` rounds of one timed call of every job, in a
        rotating order: a slow spell on a busy machine hits every job alike, not one of them.
        -> {name: (seconds of each timed call, peak memory over all its calls)}."""
        names = list(fns)
        memory: dict[str, list[dict]] = {name: [] for name in names}
        times: dict[str, list[float]] = {name: [] for name in names}
        for name in names:
            if warmup:
                with Memory(self.device) as mem:
                    for _ in range(warmup):
                        fns[name]()
                    self.sync()
                memory[name].append(mem.result)
        for round_ in range(repeats):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                with Memory(self.device, tidy=False) as mem:
                    t = time.perf_counter()
                    fns[name]()
                    self.sync()
                    times[name].append(time.perf_counter() - t)
                memory[name].append(mem.result)
        return {name: (times[name], merge_memory(memory[name])) for name in names}


def median(values: list[float]) -> float:
    return float(np.median(values))


def _row(section: str, size: int | None, name: str, role: str, times: list[float], memory: dict, **extra) -> dict:
    row = {"section": section, "size": size, "name": name, "role": role, "seconds": median(times),
           "times": [round(t, 6) for t in times], "memory": memory}
    row.update(extra)
    return row


# ---------------------------------------------------------------- machine and inputs


def machine_info(device) -> dict:
    import onnxruntime
    import torch

    from fst.runtime import cpu_supports_bf16

    cpu = platform.processor() or platform.machine()
    physical = set()
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        block_ids = {}
        for block in text.split("\n\n"):
            for line in block.splitlines():
                key, _, value = line.partition(":")
                block_ids[key.strip()] = value.strip()
            if "core id" in block_ids:
                physical.add((block_ids.get("physical id"), block_ids["core id"]))
            block_ids = {}
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "physical_cores": len(physical) or None,
        "torch_threads": torch.get_num_threads(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "ort_providers": onnxruntime.get_available_providers(),
        "cpu_bf16": cpu_supports_bf16(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "load_average_start": _load_average(),
    }
    return info


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _photos(count: int, size: int) -> tuple[list[np.ndarray], str]:
    """`count` (3, size, size) RGB [0, 1] images: the test photos (squashed to a square), else noise."""
    from fst.images import load_image

    paths = [FIXTURES / name for name in PHOTO_NAMES if (FIXTURES / name).is_file()]
    if paths:
        return [load_image(paths[i % len(paths)], size=(size, size)).rgb for i in range(count)], "test photos"
    rng = np.random.default_rng(0)
    return [rng.random((3, size, size), dtype=np.float32) for _ in range(count)], "random images"


def _style(long_side: int) -> np.ndarray:
    from fst.images import load_image

    path = FIXTURES / STYLE_NAME
    if path.is_file():
        return load_image(path, long_side=long_side).rgb
    rng = np.random.default_rng(1)
    return rng.random((3, long_side, long_side * 3 // 4), dtype=np.float32)


# ---------------------------------------------------------------- the model


@dataclass
class Model:
    spec: str
    onnx_path: str | None  # None: exported into the temp dir from the .pth
    pth_path: str | None
    name: str
    architecture: dict
    weights: str  # where the PyTorch rows' weights come from


def _onnx_architecture(path: str) -> tuple[dict, str]:
    import onnx

    from fst.transformer import DEFAULT_CHANNELS, DEFAULT_RES_BLOCKS

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise FstError(f"{path}: not a loadable ONNX model ({type(e).__name__})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    try:
        arch = json.loads(meta.get("fst.architecture", "{}"))
        arch = {"channels": int(arch["channels"]), "res_blocks": int(arch["res_blocks"])}
    except (ValueError, KeyError, TypeError):
        arch = {"channels": DEFAULT_CHANNELS, "res_blocks": DEFAULT_RES_BLOCKS}
    return arch, meta.get("fst.style", "")


def resolve(spec: str | None) -> Model:
    from fst.styles import DEFAULT_STYLE, SHIPPED, resolve_model, shipped_files

    path = resolve_model(spec, "onnx")
    name = spec or DEFAULT_STYLE
    if path.endswith(".onnx"):
        arch, style = _onnx_architecture(path)
        pth = None
        if name in SHIPPED or not os.path.splitext(name)[1]:
            candidate = shipped_files(name)["pth"]
            pth = str(candidate) if candidate.exists() else None
        return Model(spec or name, path, pth, style or Path(path).stem, arch, "pth" if pth else "onnx")
    return Model(spec, None, path, Path(path).stem, {}, "pth")


def torch_net(model: Model, device):
    """The model as a TransformerNet (eval) on `device`, and where its weights came from."""
    import torch

    from fst.transformer import TransformerNet

    if model.pth_path:
        from fst.transformer import load_model

        net, meta = load_model(model.pth_path, device)
        model.architecture = net.architecture()
        return net, f"{model.pth_path}"
    net = TransformerNet(model.architecture["channels"], model.architecture["res_blocks"])
    try:
        import onnx
        import onnx.numpy_helper

        inits = {i.name: i for i in onnx.load(model.onnx_path).graph.initializer}
        state = {}
        for key, value in net.state_dict().items():
            array = onnx.numpy_helper.to_array(inits["net." + key])
            if tuple(array.shape) != tuple(value.shape):
                raise KeyError(key)
            state[key] = torch.from_numpy(array.astype(np.float32))
        net.load_state_dict(state)
        source = f"the ONNX model's weights ({model.onnx_path}; no .pth)"
    except Exception:
        source = "random weights (no .pth, ONNX weights not loadable)"
        model.weights = "random"
    return net.to(device).eval(), source


# ---------------------------------------------------------------- sections


def bench_peak(plan: Plan, device, timer: Timer) -> dict:
    import torch

    n = plan.peak_n
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    times, memory = timer.run(lambda: torch.mm(a, b), plan.warmup["peak"], plan.repeats["peak"])
    seconds = median(times)
    result = {"n": n, "dtype": "float32", "seconds": seconds, "times": times, "gflops": 2 * n**3 / seconds / 1e9,
              "best_gflops": 2 * n**3 / min(times) / 1e9, "memory": memory}
    if device.type == "cuda":
        result["tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    log(f"peak: float32 torch.mm {n}x{n}: {result['gflops']:.1f} GFLOP/s")
    return result


def _fp32_onnx(model: Model, workdir: str) -> str:
    """The model's ONNX file: the shipped one, else exported from the .pth into workdir (once)."""
    if model.onnx_path:
        return model.onnx_path
    path = os.path.join(workdir, "model.onnx")
    if not os.path.isfile(path):
        from fst.export import to_onnx_bytes
        from fst.transformer import load_model

        net, _ = load_model(model.pth_path)
        with open(path, "wb") as f:
            f.write(to_onnx_bytes(net))
    return path


def _ort_variants(model: Model, workdir: str, plan: Plan) -> tuple[dict[str, str], list[str]]:
    """{'fp32': path, 'fp16': path, 'int8': path}: shipped files beside the model, else made here."""
    from fst.export import write_fp16, write_int8

    notes = []
    fp32 = _fp32_onnx(model, workdir)
    if model.onnx_path is None:
        notes.append(f"ONNX Runtime rows: {model.pth_path} exported to ONNX here")
        stem = None
    else:
        stem = fp32[: -len(".onnx")]
    variants = {"fp32": fp32}
    for kind in ("fp16", "int8"):
        shipped = f"{stem}.{kind}.onnx" if stem else None
        if shipped and os.path.isfile(shipped):
            variants[kind] = shipped
            notes.append(f"{kind}: shipped {shipped}")
            continue
        path = os.path.join(workdir, f"model.{kind}.onnx")
        try:
            if kind == "fp16":
                log("making the fp16 ONNX variant (fst.export.write_fp16)")
                write_fp16(fp32, path)
                notes.append("fp16: made here with fst.export.write_fp16 (not shipped)")
            else:
                photos, what = _photos(3, plan.calibration_size)
                log(f"making the int8 ONNX variant (fst.export.write_int8, calibrated on {len(photos)} {what})")
                write_int8(fp32, path, [p[None] * 255.0 for p in photos])
                notes.append(f"int8: made here with fst.export.write_int8, calibrated on {len(photos)} {what} "
                             f"at {plan.calibration_size}² (not shipped)")
            variants[kind] = path
        except Exception as e:  # a variant that cannot be made is a missing row, not a failed bench
            notes.append(f"{kind}: could not be made here ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
    return variants, notes


def bench_stylize(plan: Plan, device, timer: Timer, model: Model, peak_gflops: float | None, workdir: str) -> dict:
    import torch

    from fst.stylize import OnnxStylizer, TorchStylizer
    from fst.transformer import JOHNSON_CHANNELS, DEFAULT_RES_BLOCKS, TransformerNet, macs_per_pixel

    warmup, repeats = plan.warmup["stylize"], plan.repeats["stylize"]
    net, weights = torch_net(model, device)
    arch = net.architecture()
    macs = macs_per_pixel(arch["channels"], arch["res_blocks"])
    johnson = TransformerNet(JOHNSON_CHANNELS, DEFAULT_RES_BLOCKS).to(device).eval()
    johnson_macs = macs_per_pixel(JOHNSON_CHANNELS, DEFAULT_RES_BLOCKS)
    notes = [f"PyTorch rows use {weights}; timing does not depend on weight values"]
    skipped = []

    # fst's own code paths: OnnxStylizer for ONNX Runtime, TorchStylizer's call for PyTorch.
    stylizers = {}
    import onnxruntime

    if device.type == "cuda" and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        skipped.append("ONNX Runtime rows on cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    else:
        variants, variant_notes = _ort_variants(model, workdir, plan)
        notes += variant_notes
        for kind, path in variants.items():
            try:
                stylizers[f"ONNX Runtime {kind}"] = OnnxStylizer(path, device.type)
            except FstError as e:
                skipped.append(f"ONNX Runtime {kind} on {device.type}: {e}")
    if model.pth_path:
        torch_stylizer = TorchStylizer(model.pth_path, str(device))
    else:  # the same call on the same network, without a .pth file to load it from
        torch_stylizer = TorchStylizer.__new__(TorchStylizer)
        from fst.subpixel import for_inference

        torch_stylizer.torch, torch_stylizer.device, torch_stylizer.net = torch, device, for_inference(net)
    stylizers["PyTorch eager"] = torch_stylizer
    providers = {k: s.session.get_providers()[0] for k, s in stylizers.items() if hasattr(s, "session")}

    def plain(network):
        """pytorch/examples' stylize: no_grad, eager fp32, contiguous, tensor in and out."""

        def call(rgb):
            with torch.no_grad():
                x = torch.from_numpy(rgb).unsqueeze(0).to(device)
                return network(x).cpu()[0].numpy()

        return call

    plain_name = "plain: eager fp32 PyTorch, same network"
    johnson_name = f"eager fp32 PyTorch, Johnson width {JOHNSON_CHANNELS} (well-known default)"
    jobs = {plain_name: ("plain", plain(net), macs), johnson_name: ("reference", plain(johnson), johnson_macs)}
    jobs.update({f"fst {name}": ("fst", stylizer, macs) for name, stylizer in stylizers.items()})
    rows = []
    for size in plan.stylize_sizes:
        (rgb,), _ = _photos(1, size)
        log(f"stylize {size}²: {len(jobs)} implementations, {warmup} warm-up + {repeats} interleaved rounds")
        measured = timer.run_interleaved({name: (lambda fn=fn: fn(rgb)) for name, (_, fn, _) in jobs.items()},
                                         warmup, repeats)
        by_name = {}
        for name, (role, _, row_macs) in jobs.items():
            times, memory = measured[name]
            gflops = 2 * row_macs * size * size / median(times) / 1e9
            by_name[name] = _row("stylize", size, name, role, times, memory, gflops=gflops,
                                 percent_of_peak=100 * gflops / peak_gflops if peak_gflops else None,
                                 macs_per_megapixel=row_macs * 1_000_000)
            log(f"stylize {size}²: {name}: {median(times) * 1000:.1f} ms, {gflops:.1f} GFLOP/s")
        plain_row, johnson_row = by_name.pop(plain_name), by_name.pop(johnson_name)
        for name, row in by_name.items():
            row["speedup_vs_plain"] = plain_row["seconds"] / row["seconds"]
            row["speedup_vs_reference"] = johnson_row["seconds"] / row["seconds"]
            if name[len("fst "):] in providers:
                row["provider"] = providers[name[len("fst "):]]
        rows += list(by_name.values()) + [plain_row, johnson_row]
        del rgb
    return {
        "sizes": plan.stylize_sizes,
        "architecture": arch,
        "macs_per_pixel": macs,
        "macs_per_megapixel": macs * 1_000_000,
        "johnson_macs_per_megapixel": johnson_macs * 1_000_000,
        "weights": weights,
        "rows": rows,
        "skipped": skipped,
        "notes": notes,
    }


class PlainLoss:
    """The perceptual loss the way the well-known example implementations compute it.

    Eager fp32, contiguous tensors; the output and the content each go through every VGG layer
    up to the deepest loss layer in separate passes; with style_once=False the style image goes
    through VGG again at every call (the plain baseline), with True its Grams are computed once
    (pytorch/examples' training, the PyTorch tutorial's optimization). content_features=True
    keeps the content's features too (the tutorial), else they are recomputed at every call.
    Loss weights as fst's defaults; the values do not change the timing.
    """

    def __init__(self, loss_net, style, config, style_once: bool, content=None):
        from fst.vgg import LAYER_NAMES

        self.config = config
        self.wanted = set(config.style_layers) | {config.content_layer}
        last = max(LAYER_NAMES.index(n) for n in self.wanted)
        self.layers = list(zip(LAYER_NAMES[: last + 1], list(loss_net.features)[: last + 1]))
        self.perm, self.mean, self.std = loss_net.perm, loss_net.mean, loss_net.std
        self.style = style
        self.style_grams = self.grams(style) if style_once else None
        self.content_features = self.features(content)[config.content_layer].detach() if content is not None else None

    def features(self, x):
        h = (x[:, self.perm] - self.mean) / self.std
        out = {}
        for name, layer in self.layers:
            h = layer(h)
            if name in self.wanted:
                out[name] = h
        return out

    @staticmethod
    def gram(f):
        n, c, h, w = f.shape
        flat = f.view(n, c, h * w)
        return flat.bmm(flat.transpose(1, 2)) / (c * h * w)

    def grams(self, style):
        import torch

        with torch.no_grad():
            feats = self.features(style)
            return {name: self.gram(feats[name]) for name in self.config.style_layers}

    def __call__(self, output, content):
        import torch.nn.functional as F

        cfg = self.config
        fy = self.features(output)
        fc = self.content_features if self.content_features is not None else self.features(content)[cfg.content_layer]
        grams = self.style_grams if self.style_grams is not None else self.grams(self.style)
        loss = cfg.content_weight * F.mse_loss(fy[cfg.content_layer], fc.expand_as(fy[cfg.content_layer]))
        for name, weight in cfg.style_layers.items():
            gy = self.gram(fy[name])
            loss = loss + cfg.style_weight * weight * F.mse_loss(gy, grams[name].expand_as(gy))
        dy = (output[:, :, 1:, :] - output[:, :, :-1, :]).pow(2).mean()
        dx = (output[:, :, :, 1:] - output[:, :, :, :-1]).pow(2).mean()
        return loss + cfg.tv_weight * (dx + dy)


def plain_stylize_command() -> None:
    """The plain whole command, as pytorch/examples' `neural_style.py eval` does it: import torch,
    load the .pth into the network, eager fp32 under no_grad, PIL in and out.
    Run as `python -c "from fst.bench import plain_stylize_command; plain_stylize_command()" PHOTO MODEL.pth OUT`."""
    photo, model, output = sys.argv[1:4]
    import torch
    from PIL import Image

    from fst.transformer import load_model

    net, _ = load_model(model)  # torch.load + TransformerNet + load_state_dict, as theirs
    x = torch.from_numpy(np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    with torch.no_grad():
        y = net(x[None])[0]
    Image.fromarray((y.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)).save(output)


# A tiny launcher that times one command as /usr/bin/time does: fork + exec, wait4 for the child's
# own peak RSS. (The bench process cannot start the command itself: Linux carries the parent's
# RSS, with torch loaded, into the child's peak through fork and exec.)
_TIME_ONE_COMMAND = """
import os, sys, time
t = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - t, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def _run_command(argv: list[str], log_path: str) -> tuple[float, float]:
    """One command in a fresh process: (wall seconds, its peak RSS in MB); its stderr to log_path."""
    with open(log_path, "wb") as err:
        done = subprocess.run([sys.executable, "-S", "-c", _TIME_ONE_COMMAND, *argv], stdout=subprocess.PIPE, stderr=err, text=True)
    seconds, peak, code = done.stdout.split() if done.returncode == 0 else ("0", "0", "launcher failed")
    if code != "0":
        with open(log_path, errors="replace") as f:
            last = (f.read().strip().splitlines() or ["no output"])[-1]
        raise FstError(f"bench command failed ({' '.join(argv[1:4])} ...): {last[:200]}")
    return float(seconds), int(peak) / (1024 * 1024 if sys.platform == "darwin" else 1024)


def bench_command(plan: Plan, device, timer: Timer, model: Model, workdir: str) -> dict:
    from fst.images import save_image

    size = plan.command_size
    (rgb,), what = _photos(1, size)
    photo = os.path.join(workdir, f"photo{size}.jpg")
    save_image(photo, rgb, overwrite=True)
    out = os.path.join(workdir, "styled.jpg")
    fst = [sys.executable, "-m", "fst", "stylize", photo, "-o", out, "--overwrite", "--device", str(device)]
    commands, skipped = {"fst stylize (ONNX Runtime, default)": ("fst", fst + ["-m", _fp32_onnx(model, workdir)])}, []
    if model.pth_path:
        commands["fst stylize --backend torch"] = ("fst", fst + ["-m", model.pth_path, "--backend", "torch"])
        plain_code = "from fst.bench import plain_stylize_command; plain_stylize_command()"
        commands["plain: pytorch/examples-style eval command, eager fp32"] = (
            "plain", [sys.executable, "-c", plain_code, photo, model.pth_path, out])
    else:
        skipped.append("--backend torch and the plain command: no .pth for this model")
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}

    def job(name):
        return lambda: runs[name].append(_run_command(commands[name][1], os.path.join(workdir, "command.log")))

    warmup, repeats = plan.warmup["command"], plan.repeats["command"]
    log(f"command {size}²: {len(commands)} whole commands, {warmup} warm-up + {repeats} interleaved rounds, "
        "each in a fresh process")
    timer.run_interleaved({name: job(name) for name in commands}, warmup, repeats)  # the order; times from inside
    rows = []
    for name, (role, argv) in commands.items():
        times, peaks = zip(*runs[name][warmup:])
        memory = {"peak_rss_mb": round(max(peaks), 1), "peak_rss_scope": "child process"}
        shown = " ".join(["fst"] + argv[3:]) if role == "fst" else "python -c 'plain_stylize_command()' PHOTO MODEL OUT"
        rows.append(_row("command", size, name, role, list(times), memory, command=shown))
        log(f"command {size}²: {name}: median {median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f})")
    plain = next((r for r in rows if r["role"] == "plain"), None)
    for row in rows:
        if plain and row["role"] == "fst":
            row["speedup_vs_plain"] = plain["seconds"] / row["seconds"]
    return {"sizes": [size], "photo": what, "rows": rows, "skipped": skipped}


def bench_train(plan: Plan, device, timer: Timer, model: Model, loss_net) -> dict:
    import torch

    from fst.losses import LossConfig, PerceptualLoss
    from fst.runtime import pick_amp
    from fst.train import train_step
    from fst.transformer import TransformerNet

    warmup, repeats = plan.warmup["train"], plan.repeats["train"]
    arch = model.architecture
    amp = pick_amp("auto", device)
    config = LossConfig()
    style = torch.from_numpy(_style(plan.train_style_size))[None].to(device)
    rows = []
    for size in plan.train_sizes:
        photos, _ = _photos(plan.batch, size)
        batch = torch.from_numpy(np.stack(photos)).to(device)

        def make_step(loss=None):
            """One training step of a fresh network: fst's (loss None) or with a PlainLoss."""
            torch.manual_seed(0)
            net = TransformerNet(arch["channels"], arch["res_blocks"]).to(device)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            if loss is None:  # fst.train's step on fst.losses.PerceptualLoss
                criterion = PerceptualLoss(loss_net, [style], config, None, amp)

                def step():
                    terms = train_step(net, criterion, opt, batch)
                    return {k: float(v.detach()) for k, v in terms.items()}  # fst.train logs every term
            else:

                def step():
                    output = net(batch)
                    total = loss(output, batch)
                    opt.zero_grad(set_to_none=True)
                    total.backward()
                    opt.step()
                    return float(total.detach())

            return step

        amp_name = str(amp).replace("torch.", "") if amp else "off: fp32"
        jobs = {
            f"fst (one batched VGG pass, VGG autocast {amp_name})": ("fst", make_step()),
            "plain: fp32, separate full VGG passes, style Grams every step":
                ("plain", make_step(PlainLoss(loss_net, style, config, style_once=False))),
            "pytorch/examples: as plain, style Grams once":
                ("reference", make_step(PlainLoss(loss_net, style, config, style_once=True))),
        }
        log(f"train {size}² x{plan.batch}: {len(jobs)} implementations, {warmup} warm-up + {repeats} interleaved rounds")
        measured = timer.run_interleaved({name: fn for name, (_, fn) in jobs.items()}, warmup, repeats)
        size_rows = []
        for name, (role, _) in jobs.items():
            times, memory = measured[name]
            row = _row("train", size, name, role, times, memory, images_per_s=plan.batch / median(times))
            log(f"train {size}² x{plan.batch}: {name}: {median(times):.3f} s/step, {row['images_per_s']:.2f} images/s")
            size_rows.append(row)
        fst_row, plain_row, examples_row = size_rows
        fst_row["speedup_vs_plain"] = plain_row["seconds"] / fst_row["seconds"]
        fst_row["speedup_vs_reference"] = examples_row["seconds"] / fst_row["seconds"]
        rows += size_rows
        del jobs, measured, batch
    return {"sizes": plan.train_sizes, "batch": plan.batch, "style_size": plan.train_style_size,
            "architecture": arch, "amp": str(amp).replace("torch.", "") if amp else None, "rows": rows}


def _evaluation_times(stamps: list[float], warmup: int) -> list[float]:
    """Seconds between the ends of successive loss evaluations, the first `warmup` (>= 1) left out."""
    return [b - a for a, b in zip(stamps[warmup - 1 :], stamps[warmup:])]


def bench_optimize(plan: Plan, device, timer: Timer, loss_net, vgg_weights: str | None, workdir: str) -> dict:
    import torch

    from fst.images import save_image
    from fst.losses import LossConfig
    from fst.optimize import optimize

    warmup, repeats = max(1, plan.warmup["optimize"]), plan.repeats["optimize"]
    evaluations = warmup + repeats
    config = LossConfig()
    rows = []
    for size in plan.optimize_sizes:
        (content_rgb,), _ = _photos(1, size)
        style_rgb = _style(size)  # fst optimize's default: the style at the image's size
        content_path, style_path = os.path.join(workdir, f"content_{size}.png"), os.path.join(workdir, f"style_{size}.png")
        save_image(content_path, content_rgb, overwrite=True)
        save_image(style_path, style_rgb, overwrite=True)

        # fst: the real `fst optimize` function, stamped at the end of every loss evaluation. Memory:
        # from the end of the warm-up evaluations (the set-up, VGG loading included, left out).
        stamps: list[float] = []
        gc.collect()
        _malloc_trim()
        mem = Memory(device, tidy=False)

        def stamp(_n, _image):
            timer.sync()
            stamps.append(time.perf_counter())
            if len(stamps) == warmup:
                mem.__enter__()

        optimize(content_path, [style_path], config, image_size=size, iterations=evaluations, device=str(device),
                 amp_dtype=None, vgg_weights=vgg_weights, progress=False, save_every=1, on_snapshot=stamp)
        mem.__exit__(None, None, None)
        times = _evaluation_times(stamps, warmup)
        fst_row = _row("optimize", size, "fst optimize (L-BFGS, sigmoid pixels, content features once)", "fst",
                       times, mem.result)
        log(f"optimize {size}²: fst: {fst_row['seconds']:.3f} s/evaluation")

        content = torch.from_numpy(content_rgb)[None].to(device)
        style = torch.from_numpy(style_rgb)[None].to(device)

        def plain_run(loss):
            """The tutorial's loop: pixels optimised directly, clamped in the closure; fst's L-BFGS settings."""
            image = content.clone().requires_grad_(True)
            opt = torch.optim.LBFGS([image], lr=1.0, max_iter=evaluations, max_eval=evaluations, history_size=50,
                                    tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
            marks: list[float] = []
            gc.collect()
            _malloc_trim()
            mem = Memory(device, tidy=False)

            def closure():
                with torch.no_grad():
                    image.clamp_(0, 1)
                opt.zero_grad(set_to_none=True)
                total = loss(image, content)
                total.backward()
                float(total.detach())  # what L-BFGS reads; also syncs the device
                timer.sync()
                marks.append(time.perf_counter())
                if len(marks) == warmup:
                    mem.__enter__()
                return total

            while len(marks) < evaluations:
                before = len(marks)
                opt.param_groups[0]["max_eval"] = evaluations - len(marks)
                opt.step(closure)
                if len(marks) == before:
                    break
            mem.__exit__(None, None, None)
            return _evaluation_times(marks, warmup), mem.result

        plain_row = _row("optimize", size, "plain: fp32, content and style through VGG at every evaluation", "plain",
                         *plain_run(PlainLoss(loss_net, style, config, style_once=False)))
        log(f"optimize {size}²: plain: {plain_row['seconds']:.3f} s/evaluation")
        tutorial_row = _row("optimize", size, "PyTorch tutorial: as plain, targets once", "reference",
                            *plain_run(PlainLoss(loss_net, style, config, style_once=True, content=content)))
        log(f"optimize {size}²: tutorial: {tutorial_row['seconds']:.3f} s/evaluation")
        fst_row["speedup_vs_plain"] = plain_row["seconds"] / fst_row["seconds"]
        fst_row["speedup_vs_reference"] = tutorial_row["seconds"] / fst_row["seconds"]
        rows += [fst_row, plain_row, tutorial_row]
    return {"sizes": plan.optimize_sizes, "evaluations_timed": repeats, "style_size": "image size", "rows": rows}


# ---------------------------------------------------------------- output


def _fmt_size(size: int) -> str:
    return f"{size}²"


def _x(value) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}×" if value >= 0.1 else f"{value:.2g}×"


def _mem(row: dict) -> str:
    m = row["memory"]
    text = f"{m['peak_rss_mb']:.0f}"
    if "peak_rss_over_start_mb" in m:
        text += f" (+{m['peak_rss_over_start_mb']:.0f})"
    if "cuda_peak_mb" in m:
        text += f"; GPU {m['cuda_peak_mb']:.0f}"
    return text


def _compared_row(r: dict, timing_cells: str) -> str:
    """A train/optimize table row: fst's rows carry both ratios, the others dashes."""
    fst = r["role"] == "fst"
    name = f"**{r['name']}**" if fst else r["name"]
    ratios = f"{_x(r.get('speedup_vs_plain'))} | {_x(r.get('speedup_vs_reference'))}" if fst else "— | —"
    return f"| {_fmt_size(r['size'])} | {name} | {timing_cells} | {ratios} | {_mem(r)} |"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = ["# fst bench", ""]
    cores = f"{m['logical_cores']} logical cores"
    if m.get("physical_cores"):
        cores += f" ({m['physical_cores']} physical)"
    lines.append(f"**Machine:** {m['cpu']}, {cores}, torch threads {m['torch_threads']}, {m['os']}"
                 + (f"; GPU {m['gpu']}" if m.get("gpu") else "") + ".  ")
    lines.append(f"**Software:** fst {report['fst_version']}, Python {m['python']}, torch {m['torch']}, "
                 f"onnxruntime {m['onnxruntime']}, numpy {m['numpy']}.  ")
    s = report["settings"]
    counts = ", ".join(f"{k} {s['warmup'][k]}+{s['repeats'][k]}" for k in report["sections"])
    lines.append(f"**Run:** device {report['device']}{' (--quick)' if report['quick'] else ''}; "
                 f"medians over repeats after warm-up ({counts}); "
                 f"speed-up = the other's time / fst's time (higher is better).  ")
    for note in report["notes"]:
        if note.startswith("WARNING"):
            lines.append(f"**{note}**  ")
    mdl = report["model"]
    lines.append(f"**Model:** {mdl['path']} ({mdl['name']}), width {mdl['architecture']['channels']}, "
                 f"{mdl['architecture']['res_blocks']} residual blocks: {mdl['macs_per_megapixel'] / 1e9:.2f} GMAC per megapixel "
                 f"(Johnson width 32: {mdl['johnson_macs_per_megapixel'] / 1e9:.2f}).")
    lines.append("")
    sections = report["sections"]
    if "peak" in sections:
        p = sections["peak"]
        lines.append(f"**Peak:** float32 torch.mm {p['n']}×{p['n']}: **{p['gflops']:.1f} GFLOP/s** "
                     f"({p['seconds'] * 1000:.1f} ms).")
        lines.append("")
    if "stylize" in sections:
        st = sections["stylize"]
        lines += ["## Stylize (one image)", "",
                  "| size | implementation | ms | speed-up vs plain | GFLOP/s | % of peak | peak RSS MB (+during) |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for r in st["rows"]:
            pct = f"{r['percent_of_peak']:.1f}" if r.get("percent_of_peak") is not None else "—"
            speed = _x(r.get("speedup_vs_plain")) if r["role"] == "fst" else ("1.00× (baseline)" if r["role"] == "plain" else "—")
            name = f"**{r['name']}**" if r["role"] == "fst" else r["name"]
            lines.append(f"| {_fmt_size(r['size'])} | {name} | {r['seconds'] * 1000:.1f} | {speed} | "
                         f"{r['gflops']:.1f} | {pct} | {_mem(r)} |")
        lines.append("")
        best = [r for r in st["rows"] if r["name"] == "fst ONNX Runtime fp32"]
        if best:
            lines.append("fst's default (ONNX Runtime fp32) against the well-known default (eager PyTorch, width 32): "
                         + ", ".join(f"{_fmt_size(r['size'])} {_x(r['speedup_vs_reference'])}" for r in best) + ".")
        for skip in st["skipped"]:
            lines.append(f"- skipped: {skip}")
        lines.append("")
    if "command" in sections:
        cm = sections["command"]
        lines += [f"## Whole command: `fst stylize` of one {_fmt_size(cm['sizes'][0])} JPEG, fresh process each time", "",
                  "| size | command | s (median) | min–max | speed-up vs plain | peak RSS MB |",
                  "|---|---|---:|---:|---:|---:|"]
        for r in cm["rows"]:
            fst = r["role"] == "fst"
            name = f"**{r['name']}**" if fst else r["name"]
            speed = _x(r.get("speedup_vs_plain")) if fst else "1.00× (baseline)"
            rss = f"{r['memory']['peak_rss_mb']:.0f}" if r["memory"] else "—"
            lines.append(f"| {_fmt_size(r['size'])} | {name} | {r['seconds']:.2f} | {min(r['times']):.2f}–{max(r['times']):.2f} | "
                         f"{speed} | {rss} |")
        lines += [f"- skipped: {skip}" for skip in cm["skipped"]]
        lines.append("")
    if "train" in sections:
        tr = sections["train"]
        lines += [f"## Training step (batch {tr['batch']}, style image {tr['style_size']} px)", "",
                  "| size | implementation | s/step | images/s | speed-up vs plain | vs pytorch/examples | peak RSS MB (+during) |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        lines += [_compared_row(r, f"{r['seconds']:.3f} | {r['images_per_s']:.2f}") for r in tr["rows"]]
        lines.append("")
    if "optimize" in sections:
        op = sections["optimize"]
        lines += ["## `fst optimize` (L-BFGS): seconds per loss evaluation", "",
                  "| size | implementation | s/evaluation | speed-up vs plain | vs tutorial | peak RSS MB (+during) |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [_compared_row(r, f"{r['seconds']:.3f}") for r in op["rows"]]
        lines.append("")
    if report["notes"]:
        lines.append("Notes:")
        lines += [f"- {n}" for n in report["notes"] if not n.startswith("WARNING")]
    return "\n".join(lines)


# ---------------------------------------------------------------- the command


def parse_sections(only: str | None) -> list[str]:
    if not only:
        return list(SECTIONS)
    wanted = [s.strip() for s in only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown or not wanted:
        raise FstError(f"--only {only}: use a comma list of {', '.join(SECTIONS)}")
    if "stylize" in wanted and "peak" not in wanted:
        wanted.append("peak")  # the stylize rows are reported as a share of the peak
    return [s for s in SECTIONS if s in wanted]


def bench(quick: bool = False, device_name: str = "cpu", model_spec: str | None = None,
          vgg_weights: str | None = None, repeats: int | None = None, only: str | None = None) -> dict:
    if repeats is not None and repeats < 1:
        raise FstError("--repeats must be at least 1")
    sections = parse_sections(only)
    from fst.runtime import pick_device
    from fst.transformer import JOHNSON_CHANNELS, DEFAULT_RES_BLOCKS, macs_per_pixel

    device = pick_device(device_name)
    if device.type not in ("cpu", "cuda"):
        raise FstError(f"--device {device_name}: fst bench runs on cpu or cuda")
    model = resolve(model_spec)
    loss_net = None
    if "train" in sections or "optimize" in sections:
        from fst.vgg import load_loss_network

        loss_net = load_loss_network(vgg_weights, device)
    plan = Plan.make(quick, repeats)
    timer = Timer(device)
    started = time.perf_counter()
    report = {
        "fst_version": __version__,
        "quick": quick,
        "device": str(device),
        "machine": machine_info(device),
        "settings": {"warmup": plan.warmup, "repeats": plan.repeats, "stylize_sizes": plan.stylize_sizes,
                     "train_sizes": plan.train_sizes, "optimize_sizes": plan.optimize_sizes, "batch": plan.batch},
        "sections": {},
        "notes": [],
    }
    with tempfile.TemporaryDirectory(prefix="fst-bench-") as workdir:
        if model.pth_path and not model.architecture:
            torch_net(model, "cpu")  # reads the architecture
        arch = model.architecture
        report["model"] = {
            "path": model.onnx_path or model.pth_path,
            "pth": model.pth_path,
            "name": model.name,
            "architecture": arch,
            "weights": model.weights,
            "macs_per_pixel": macs_per_pixel(arch["channels"], arch["res_blocks"]),
            "macs_per_megapixel": macs_per_pixel(arch["channels"], arch["res_blocks"]) * 1_000_000,
            "johnson_macs_per_megapixel": macs_per_pixel(JOHNSON_CHANNELS, DEFAULT_RES_BLOCKS) * 1_000_000,
        }
        if "peak" in sections:
            report["sections"]["peak"] = bench_peak(plan, device, timer)
        if "stylize" in sections:
            peak = report["sections"].get("peak", {}).get("gflops")
            st = bench_stylize(plan, device, timer, model, peak, workdir)
            report["notes"] += st.pop("notes")
            report["sections"]["stylize"] = st
        if "command" in sections:
            report["sections"]["command"] = bench_command(plan, device, timer, model, workdir)
        if "train" in sections:
            report["sections"]["train"] = bench_train(plan, device, timer, model, loss_net)
        if "optimize" in sections:
            report["sections"]["optimize"] = bench_optimize(plan, device, timer, loss_net, vgg_weights, workdir)
    report["model"]["weights"] = model.weights
    notes = report["notes"]
    load, cores = report["machine"]["load_average_start"], report["machine"]["usable_cores"] or 1
    if load is not None and load > 0.5 * cores:
        notes.insert(0, f"WARNING: the machine was busy when the run started (load average {load} on {cores} cores): "
                        "other work competes for the cores, and eager PyTorch suffers most; rerun on an idle machine")
    if loss_net is not None:
        notes.append(f"VGG16 loss network: {loss_net.identity}")
    if {"stylize", "train"} & set(sections):
        notes.append("the implementations of one size are timed in interleaved rounds (one call of each per round, "
                     "rotating order), so a busy spell on the machine hits them alike")
    if "stylize" in sections:
        notes.append("GFLOP/s = 2 x the network's multiply-accumulates (as trained; fst's inference form does "
                     "about 2 % more) / seconds; for fp16 and int8 it is the float32 network's work per second, and "
                     "ONNX Runtime's own convolution kernels can beat torch.mm, so a row can pass the peak")
    notes.append("peak RSS MB: the process's resident memory at its highest during that job's calls (the sessions "
                 "and models loaded before stay resident); (+N): the most above its level when a call started")
    if "train" in sections:
        notes.append(
            "training: the step alone on a fixed batch (no data loading); plain = eager fp32, the output and the "
            "content each through VGG up to relu4_3 in separate passes, style Grams recomputed from the style image "
            "every step; pytorch/examples computes the style Grams once, so it is shown too")
    if "optimize" in sections:
        notes.append(
            "optimize: time between the ends of successive loss evaluations (forward, backward and L-BFGS's own "
            "work), the first left out as warm-up; fst = fst.optimize.optimize itself; plain/tutorial optimise the "
            "pixels directly with a clamp, with fst's L-BFGS settings; memory from the end of the warm-up")
    if device.type == "cuda" and "stylize" in sections:
        notes.append("CUDA timings include copying the image to and from the GPU")
    report["seconds_total"] = round(time.perf_counter() - started, 1)
    return report


def run(args) -> int:
    report = bench(quick=args.quick, device_name=args.device, model_spec=args.model, vgg_weights=args.vgg_weights,
                   repeats=args.repeats, only=args.only)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(markdown(report))
    log(f"done in {report['seconds_total']:.0f} s")
    return 0
