"""How fst bench measures: warm-up then timed calls in interleaved rounds, the peak memory of each
measurement, whole commands in fresh processes, and the machine the figures come from."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

from fst import FstError


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def median(values) -> float:
    return float(np.median(values))


def make_row(section: str, size: int | None, name: str, role: str, times: list[float], memory: dict, **extra) -> dict:
    """One table row. role: 'fst', 'baseline' (what fst is compared with) or 'reference' (shown, no ratio)."""
    row = {"section": section, "size": size, "name": name, "role": role, "seconds": median(times),
           "times": [round(t, 6) for t in times], "memory": memory}
    row.update(extra)
    return row


# ---------------------------------------------------------------- memory


def malloc_trim() -> None:
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
            malloc_trim()
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.cuda_start = torch.cuda.memory_allocated()
        self.per_measurement = _reset_peak_rss()
        self.start = _status_mb("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.per_measurement:
            peak = _status_mb("VmHWM")
        else:  # ru_maxrss is KiB on Linux, bytes on macOS
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
        self.result = {"peak_rss_mb": round(peak, 1), "peak_rss_scope": "measurement" if self.per_measurement else "process"}
        if self.start is not None:
            self.result["peak_rss_over_start_mb"] = round(max(0.0, peak - self.start), 1)
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
            self.result["cuda_peak_over_start_mb"] = round((torch.cuda.max_memory_allocated() - self.cuda_start) / 2**20, 1)
        return False


def merge_memory(results: list[dict]) -> dict:
    """The peaks of several calls of one job: the largest of each figure."""
    merged = dict(results[0])
    for key in ("peak_rss_mb", "peak_rss_over_start_mb", "cuda_peak_over_start_mb"):
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


# ---------------------------------------------------------------- fresh processes

# A tiny launcher that times one command as /usr/bin/time does: spawn, then wait4 for the child's
# own peak RSS. (The bench process cannot start the command itself: Linux carries the parent's
# RSS, with torch loaded, into the child's peak through fork and exec.)
_TIME_ONE_COMMAND = """
import os, sys, time
t = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - t, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_command(argv: list[str], log_path: str) -> tuple[float, float]:
    """One command in a fresh process: (wall seconds, its peak RSS in MB); its stderr to log_path."""
    with open(log_path, "wb") as err:
        done = subprocess.run([sys.executable, "-S", "-c", _TIME_ONE_COMMAND, *argv], stdout=subprocess.PIPE, stderr=err, text=True)
    seconds, peak, code = done.stdout.split() if done.returncode == 0 else ("0", "0", "launcher failed")
    if code != "0":
        with open(log_path, errors="replace") as f:
            last = (f.read().strip().splitlines() or ["no output"])[-1]
        raise FstError(f"bench command failed ({' '.join(argv[1:4])} ...): {last[:200]}")
    return float(seconds), int(peak) / (1024 * 1024 if sys.platform == "darwin" else 1024)


# ---------------------------------------------------------------- the machine

ISA_FLAGS = {"avx512f": "AVX-512", "avx512_bf16": "AVX-512 bf16", "amx_bf16": "AMX bf16", "avx2": "AVX2", "fma": "FMA"}


def machine_info(device) -> dict:
    import onnxruntime
    import torch

    from fst.cpuinfo import cpu_flags, emulated_isa, read_cpuinfo, usable_cores
    from fst.runtime import cpu_supports_bf16

    cpu, physical, _ = read_cpuinfo()
    flags = cpu_flags()
    usable = usable_cores()
    try:
        load = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        load = None
    return {
        "cpu": cpu,
        "isa": [name for flag, name in ISA_FLAGS.items() if flag in flags],
        # what torch's own kernels and oneDNN were allowed to use in this run (ATEN_CPU_CAPABILITY,
        # ONEDNN_MAX_CPU_ISA lower them: how AVX2-only figures can be produced on this machine)
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        # `fst bench --isa avx2`: CPUID masked for every library (fst.bench.isa); "isa" lists what is left
        "emulated_isa": None if emulated_isa() == "native" else emulated_isa(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "physical_cores": physical,
        "torch_threads": torch.get_num_threads(),
        "os": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "cpu_bf16": cpu_supports_bf16(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "load_average_start": load,
    }
