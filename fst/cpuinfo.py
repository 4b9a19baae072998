"""The CPU as fst's processes see it: model name, physical cores and feature flags (Linux
/proc/cpuinfo), less the features that `fst bench --isa` hides (fst.bench.isa).

/proc/cpuinfo lists what the hardware has; libraries pick kernels from the CPUID instruction,
which `fst bench --isa avx2` masks. Reading the flags here, with the same mask, keeps fst's own
choices (bf16 autocast, the bench's machine line) in step with the libraries'. No torch here.
"""

from __future__ import annotations

import functools
import os
import platform

ISA_ENV = "FST_ISA"  # set by `fst bench --isa` for itself and its child processes

# /proc/cpuinfo flag -> where CPUID reports it: (leaf, subleaf, register 0..3 = EAX..EDX, bit).
# Everything newer than AVX2 + FMA that kernels dispatch on: AVX-512 and its extensions, AMX,
# AVX-VNNI and the bf16/fp16 instructions (an AVX2-only CPU such as AMD Zen 2/3 has none of them).
AFTER_AVX2 = {
    "avx512f": (7, 0, 1, 16), "avx512dq": (7, 0, 1, 17), "avx512ifma": (7, 0, 1, 21), "avx512pf": (7, 0, 1, 26),
    "avx512er": (7, 0, 1, 27), "avx512cd": (7, 0, 1, 28), "avx512bw": (7, 0, 1, 30), "avx512vl": (7, 0, 1, 31),
    "avx512vbmi": (7, 0, 2, 1), "avx512_vbmi2": (7, 0, 2, 6), "avx512_vnni": (7, 0, 2, 11),
    "avx512_bitalg": (7, 0, 2, 12), "avx512_vpopcntdq": (7, 0, 2, 14),
    "avx512_4vnniw": (7, 0, 3, 2), "avx512_4fmaps": (7, 0, 3, 3), "avx512_vp2intersect": (7, 0, 3, 8),
    "amx_bf16": (7, 0, 3, 22), "avx512_fp16": (7, 0, 3, 23), "amx_tile": (7, 0, 3, 24), "amx_int8": (7, 0, 3, 25),
    "avx_vnni": (7, 1, 0, 4), "avx512_bf16": (7, 1, 0, 5), "amx_fp16": (7, 1, 0, 21), "avx_ifma": (7, 1, 0, 23),
    "avx_vnni_int8": (7, 1, 3, 4), "avx_ne_convert": (7, 1, 3, 5), "amx_complex": (7, 1, 3, 8),
}
HIDDEN = {"native": {}, "avx2": AFTER_AVX2}


def emulated_isa() -> str:
    """'avx2' under `fst bench --isa avx2`, else 'native'."""
    isa = os.environ.get(ISA_ENV, "native")
    return isa if isa in HIDDEN else "native"


@functools.lru_cache(maxsize=4)
def read_cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str, int | None, frozenset[str]]:
    """(CPU model name, physical cores or None, the hardware's flags) from /proc/cpuinfo, or what
    platform knows where there is none. Read once per process (its callers ask several times:
    the amp probe's key, bf16 support, the bench's machine line)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return platform.processor() or platform.machine(), None, frozenset()
    model, flags, physical = platform.machine(), set(), set()
    for block in text.split("\n\n"):
        fields = dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in block.splitlines()))
        model = fields.get("model name", model)
        flags |= set(fields.get("flags", "").split())
        if "core id" in fields:
            physical.add((fields.get("physical id"), fields["core id"]))
    return model, len(physical) or None, frozenset(flags)


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (Linux), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_flags() -> set[str]:
    """The flags this process's libraries see: the hardware's, less those `--isa` hides."""
    return read_cpuinfo()[2] - set(HIDDEN[emulated_isa()])
