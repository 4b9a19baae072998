"""`fst bench --isa avx2`: CPUID masked for every library of the bench's processes, so that an
AVX-512 machine measures what an AVX2-only CPU runs (ONNX Runtime included), or a one-line refusal
where the machine cannot mask CPUID."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from fst import FstError
from fst.bench.isa import check_machine
from fst.cpuinfo import AFTER_AVX2, ISA_ENV, cpu_flags, read_cpuinfo
from fst.runtime import _probe_key, cpu_supports_bf16
from fst.styles import resolve_model

# A child process reports what its libraries see, and stylizes one small image with ONNX Runtime.
SEEN = """
import json, sys, numpy as np, onnxruntime as ort, torch
from numpy._core._multiarray_umath import __cpu_features__ as numpy_sees
from fst.runtime import cpu_supports_bf16
from fst.stylize import OnnxStylizer
rgb = np.random.default_rng(0).random((3, 48, 64), dtype=np.float32)
out = OnnxStylizer(sys.argv[1], device="cpu")(rgb)
print(json.dumps({"numpy_avx512f": numpy_sees["AVX512F"], "torch": torch.backends.cpu.get_cpu_capability(),
                  "bf16": cpu_supports_bf16(), "out": out.tolist()}))
"""


def _seen(isa: str | None = None) -> dict:
    """What a child process sees: plain, or started by `python -m fst.bench.isa ISA COMMAND`."""
    command = [sys.executable, "-c", SEEN, resolve_model("starry_night")]
    if isa:
        command = [sys.executable, "-m", "fst.bench.isa", isa, *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _fake_cpuinfo(tmp_path, flags: str):
    path = tmp_path / f"cpuinfo_{len(list(tmp_path.iterdir()))}"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n")
    return str(path)


def test_machines_that_cannot_mask_are_refused_in_one_line(tmp_path):
    no_fault = _fake_cpuinfo(tmp_path, "fpu sse2 avx2 fma avx512f avx512bw")
    with pytest.raises(FstError, match=r"no CPUID faulting \(no cpuid_fault"):
        check_machine("avx2", no_fault)
    nothing_to_hide = _fake_cpuinfo(tmp_path, "fpu sse2 avx2 fma cpuid_fault")
    with pytest.raises(FstError, match="nothing beyond AVX2 to hide"):
        check_machine("avx2", nothing_to_hide)
    assert read_cpuinfo(no_fault) == ("Test CPU", None, {"fpu", "sse2", "avx2", "fma", "avx512f", "avx512bw"})


def test_fst_sees_the_masked_cpu_as_the_libraries_do(monkeypatch):
    """Under FST_ISA=avx2 fst's own flags (bf16 autocast's choice, the bench's machine line) lose
    every feature the mask clears, and the cached bf16 probe is not the native one's."""
    native_key = _probe_key()
    monkeypatch.setenv(ISA_ENV, "avx2")
    assert not cpu_flags() & set(AFTER_AVX2)
    assert not cpu_supports_bf16()
    assert _probe_key() != native_key


def test_the_mask_reaches_numpy_torch_and_onnx_runtime():
    """Where the machine can mask (cpuid_fault, AVX-512): a child under the mask sees no AVX-512 in
    NumPy's and PyTorch's own CPU detection, while an unmasked one does, and ONNX Runtime's AVX2
    kernels give the same picture. Elsewhere `fst bench --isa avx2` refuses in one line, exit 2."""
    flags = read_cpuinfo()[2]
    if "cpuid_fault" not in flags or "avx512f" not in flags:
        done = subprocess.run([sys.executable, "-m", "fst", "bench", "--isa", "avx2", "--quick"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stderr.startswith("fst: error: --isa avx2: "), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        return
    native, masked = _seen(), _seen("avx2")
    assert native["numpy_avx512f"] and native["torch"].startswith("AVX512")
    assert not masked["numpy_avx512f"] and masked["torch"] == "AVX2" and not masked["bf16"]
    # the same network, other kernels: only the order of float32 sums differs. The bench's
    # implementations of one network differ by at most 0.012 of 255 at 1024² (README, Performance)
    assert np.abs(np.array(native["out"]) - np.array(masked["out"])).max() * 255 < 0.05
