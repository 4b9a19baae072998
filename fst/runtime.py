"""Device and precision choices shared by train, optimize, stylize and bench."""

from __future__ import annotations

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
