"""--amp auto decides from a measured probe (cached), never by CPU flags alone; the allocator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

PICK = """
import json, torch
from fst.runtime import cpu_bf16_speedup, pick_amp
warnings = []
cpu = torch.device("cpu")
print(json.dumps({"auto": str(pick_amp("auto", cpu, warnings.append)),
                  "bf16": str(pick_amp("bf16", cpu, warnings.append)),
                  "speedup": cpu_bf16_speedup(), "warnings": warnings}))
"""


def _pick(tmp_path, **env) -> dict:
    full = dict(os.environ, PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(tmp_path), OMP_NUM_THREADS="1", **env)
    out = subprocess.run([sys.executable, "-c", PICK], capture_output=True, text=True, env=full, timeout=120, check=True)
    return json.loads(out.stdout)


def test_amp_auto_takes_fp32_where_bf16_is_emulated(tmp_path):
    """oneDNN capped at AVX2 has no bf16 instructions (as on an AVX2-only CPU, whatever
    /proc/cpuinfo says here): bf16 is emulated, many times slower. auto must pick fp32, and an
    explicit --amp bf16 runs as asked but warns with the measured factor."""
    got = _pick(tmp_path, ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    assert got["speedup"] < 1.0
    assert got["auto"] == "None"
    assert got["bf16"] == "torch.bfloat16"
    assert len(got["warnings"]) == 1 and "slower than fp32" in got["warnings"][0]


def test_amp_probe_is_cached_per_machine_and_settings(tmp_path):
    first = _pick(tmp_path, ONEDNN_MAX_CPU_ISA="AVX2")
    cache = tmp_path / "fst" / "amp_probe.json"
    record = json.loads(cache.read_text())
    assert abs(record["bf16_speedup"] - first["speedup"]) < 1e-3
    # The cached answer is what later runs use (no new probe): a recorded 5x speed-up flips auto.
    cache.write_text(json.dumps({**record, "bf16_speedup": 5.0}))
    again = _pick(tmp_path, ONEDNN_MAX_CPU_ISA="AVX2")
    assert again["speedup"] == 5.0 and again["auto"] == "torch.bfloat16" and not again["warnings"]
    # Other ISA settings are another machine as far as the probe goes: measured again.
    other = _pick(tmp_path, ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    assert other["speedup"] < 1.0


def test_allocator_keeps_freed_blocks(tmp_path):
    """After tune_allocator, freeing and re-allocating a 64 MB tensor page-faults nothing once the
    heap has grown (glibc's default maps and faults all 16k pages again each time: 163840)."""
    code = """
import resource, torch
from fst.allocator import tune_allocator
assert tune_allocator()
for _ in range(10):
    torch.ones(16 << 20)  # the heap grows to its working size (faults while it does)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(16 << 20)  # 64 MB, freed at once
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    faults = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True).stdout)
    assert faults < 16384  # one 64 MB block is 16384 4-KiB pages; default glibc: ~10x that


def test_amp_probe_leaves_the_random_stream_alone():
    """Seeded training must not depend on whether the probe ran in this process (resume is exact)."""
    import torch

    from fst.runtime import measure_bf16_speedup

    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    measure_bf16_speedup(rounds=1)
    assert torch.equal(torch.rand(4), expected)
