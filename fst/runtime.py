"""Device, precision and Ctrl-C handling shared by train, optimize, evaluate and bench."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import sys
import threading
import time

import torch
from torch import nn

from fst import FstError
from fst.cpuinfo import ISA_ENV, cpu_flags, read_cpuinfo

# A CPU whose bf16 convolutions run at less than this fraction of fp32's speed gets fp32 from
# --amp auto, and a warning with an explicit --amp bf16 (without bf16 instructions, oneDNN
# emulates them: ~80x slower was measured on an AVX2 CPU).
BF16_MIN_SPEEDUP = 1.0


def pick_device(name: str = "auto") -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' -> a usable torch.device, or a clear error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FstError("--device cuda: no CUDA GPU is available here (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FstError("--device mps: Apple's MPS backend is not available here (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise FstError(f"--device {name}: not a device (use auto, cpu, cuda or mps)") from None


def cpu_supports_bf16() -> bool:
    """bf16 matrix instructions (AVX512-BF16 or AMX), where bf16 autocast is a speed-up (as this
    process sees the CPU: `fst bench --isa avx2` hides them)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def _probe_cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fst", "amp_probe.json")


PROBE_VERSION = "probe 2: bf16 channels-last"  # a cached answer of another probe is measured again


def _probe_key() -> str:
    """What the answer depends on: the CPU, torch, and the ISA caps users can set."""
    model = read_cpuinfo()[0]
    caps = ",".join(os.environ.get(k, "") for k in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", ISA_ENV))
    return f"{model}|{platform.machine()}|bf16={cpu_supports_bf16()}|torch {torch.__version__}|{caps}|{PROBE_VERSION}"


def measure_bf16_speedup(rounds: int = 3) -> float:
    """fp32 time / bf16-autocast time of a VGG-like conv forward + backward on this CPU (> 1: bf16
    is faster). About a second; stops early when bf16 is clearly slower."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream as it was (seeded runs)
        conv = nn.Conv2d(64, 64, 3, padding=1)
        x = torch.randn(2, 64, 56, 56, requires_grad=True)

    def once(dtype) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype) if dtype else contextlib.nullcontext():
            # bf16 in the layout fst's VGG pass then uses (fst.losses: channels-last)
            y = conv(x.contiguous(memory_format=torch.channels_last) if dtype else x)
        y.float().sum().backward()
        return time.perf_counter() - start

    once(None), once(torch.bfloat16)  # warm-up: oneDNN primitive creation
    fp32, bf16 = [], []
    for _ in range(rounds):  # interleaved, best of each
        fp32.append(once(None))
        bf16.append(once(torch.bfloat16))
        if min(bf16) > 3 * min(fp32):
            break
    return min(fp32) / min(bf16)


def cpu_bf16_speedup() -> float:
    """measure_bf16_speedup for this machine, measured once and cached (XDG cache folder)."""
    path, key = _probe_cache_path(), _probe_key()
    with contextlib.suppress(OSError, ValueError):
        with open(path) as f:
            cached = json.load(f)
        if cached.get("key") == key:
            return float(cached["bf16_speedup"])
    speedup = measure_bf16_speedup()
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({"key": key, "bf16_speedup": round(speedup, 3)}, f)
        os.replace(tmp, path)
    return speedup


def pick_amp(mode: str, device: torch.device, warn=lambda msg: print(f"fst: warning: {msg}", file=sys.stderr)) -> torch.dtype | None:
    """'auto' | 'bf16' | 'fp16' | 'off' -> the autocast dtype for the VGG passes, or None.

    On the CPU, auto takes bf16 only where a measured probe (cached) shows it faster than fp32;
    an explicit bf16 or fp16 that is slower here runs as asked, with a warning.
    """
    if mode not in ("auto", "bf16", "fp16", "off"):
        raise FstError(f"--amp {mode}: use auto, bf16, fp16 or off")
    if mode == "off":
        return None
    if device.type == "cuda":
        if mode == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if mode == "bf16" else torch.float16
    if device.type != "cpu":
        return {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]
    if mode == "fp16":
        warn("--amp fp16 on the CPU: few CPUs have fp16 arithmetic, expect it to be slower than fp32 (--amp auto picks for you)")
        return torch.float16
    speedup = cpu_bf16_speedup()
    if mode == "bf16" and speedup < BF16_MIN_SPEEDUP:
        warn(f"--amp bf16 runs {1 / speedup:.1f}x slower than fp32 on this CPU (measured); --amp auto would use fp32")
    if mode == "auto" and speedup < BF16_MIN_SPEEDUP:
        return None
    return torch.bfloat16


class CtrlC:
    """Ctrl-C (SIGINT) during long work: it only sets a flag, and the loop stops at a point of its
    choosing (train: after the step in flight, so no checkpoint holds a half-applied update;
    optimize: before the next loss evaluation), saves, and exits 130. A KeyboardInterrupt raised
    anywhere instead could land in a finaliser and be swallowed, or in the middle of an update. A
    second Ctrl-C interrupts at once. Under torchrun (world > 1) every rank stops at the same step."""

    def __init__(self, world: int = 1, device: torch.device | None = None):
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
        """Whether to stop now: on any rank, Ctrl-C was pressed."""
        if self.world == 1:
            return self.pressed
        import torch.distributed as dist

        flag = torch.tensor([float(self.pressed)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
