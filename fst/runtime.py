"""Device, precision and Ctrl-C handling shared by train, optimize, stylize and bench."""

from __future__ import annotations

import signal
import threading

import torch

from fst import FstError


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
    """bf16 matrix instructions (AVX512-BF16 or AMX), where bf16 autocast is a speed-up."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def pick_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """'auto' | 'bf16' | 'fp16' | 'off' -> the autocast dtype for the VGG passes, or None."""
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if mode != "auto":
        raise FstError(f"--amp {mode}: use auto, bf16, fp16 or off")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return None


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
