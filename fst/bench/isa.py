"""`fst bench --isa avx2`: run the bench as an AVX2-only CPU would, on a CPU with AVX-512.

ONNX Runtime, oneDNN, NumPy and glibc choose their kernels from CPUID, so capping PyTorch alone
(ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA) leaves ONNX Runtime on AVX-512 kernels. This masks CPUID
itself for the bench and every process it starts: cpuid_mask.c, built here with the system's C
compiler and preloaded (LD_PRELOAD), clears the bits of fst.cpuinfo.AFTER_AVX2; glibc's own
string functions are capped by its tunables. Needs Linux on x86-64 with CPUID faulting (the
`cpuid_fault` flag: recent Intel CPUs under KVM or bare metal; not every machine has it).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from fst import FstError
from fst.cpuinfo import HIDDEN, ISA_ENV, read_cpuinfo

SOURCE = Path(__file__).with_name("cpuid_mask.c")
# glibc picks memcpy & co. at start-up, before the preloaded mask runs: its tunables cap those
GLIBC_CAPS = {"avx2": "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-AVX_VNNI"}


def check_machine(isa: str, cpuinfo: str = "/proc/cpuinfo") -> None:
    """One-line FstError unless this machine can emulate `isa` (and has something to hide)."""
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        raise FstError(f"--isa {isa}: needs Linux on x86-64 (this is {platform.system()} {platform.machine()})")
    flags = read_cpuinfo(cpuinfo)[2]
    if not flags & set(HIDDEN[isa]):
        raise FstError(f"--isa {isa}: this CPU has nothing beyond {isa.upper()} to hide: run without --isa")
    if "cpuid_fault" not in flags:
        raise FstError(f"--isa {isa}: this CPU or hypervisor offers no CPUID faulting (no cpuid_fault in "
                       f"{cpuinfo}), so CPUID cannot be masked here")


def build_mask() -> str:
    """The compiled mask (a shared library in fst's cache folder, rebuilt when the source changes)."""
    source = SOURCE.read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fst"
    library = cache / f"cpuid_mask-{hashlib.sha256(source).hexdigest()[:12]}.so"
    if library.is_file():
        return str(library)
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not compiler:
        raise FstError("--isa: building the CPUID mask needs a C compiler (cc or gcc; Debian: apt install gcc)")
    cache.mkdir(parents=True, exist_ok=True)
    partial = library.with_suffix(f".{os.getpid()}.tmp")
    done = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(partial), str(SOURCE)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise FstError(f"--isa: compiling {SOURCE.name} failed: {(done.stderr.strip().splitlines() or ['?'])[0][:200]}")
    os.replace(partial, library)
    return str(library)


def environment(isa: str, base: dict | None = None) -> dict:
    """base (default os.environ) with the mask for `isa`: what a process needs to see that CPU."""
    check_machine(isa)
    env = dict(os.environ if base is None else base)
    clear = ",".join(":".join(map(str, where)) for where in HIDDEN[isa].values())
    preload = " ".join(filter(None, [build_mask(), env.get("LD_PRELOAD")]))
    tunables = ":".join(filter(None, [GLIBC_CAPS[isa], env.get("GLIBC_TUNABLES")]))
    return {**env, "LD_PRELOAD": preload, "GLIBC_TUNABLES": tunables, "FST_CPUID_CLEAR": clear, ISA_ENV: isa}


def reexec(isa: str, argv: list[str]) -> None:
    """Replace this process by `python -m fst ARGV` under the mask (it starts from scratch: every
    library then picks its kernels from the masked CPUID)."""
    env = environment(isa)
    sys.stdout.flush(), sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "fst", *argv], env)


def main(argv: list[str] | None = None) -> int:
    """`python -m fst.bench.isa avx2 COMMAND [ARGS...]`: any command as that CPU runs it (e.g.
    `/usr/bin/time -v fst stylize photo.jpg` as an AVX2-only CPU)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] not in HIDDEN or args[0] == "native":
        print("usage: python -m fst.bench.isa avx2 COMMAND [ARGS...]", file=sys.stderr)
        return 2
    try:
        env = environment(args[0])
    except FstError as e:
        print(f"fst: error: {e}", file=sys.stderr)
        return 2
    sys.stdout.flush(), sys.stderr.flush()
    try:
        os.execvpe(args[1], args[1:], env)
    except OSError as e:
        print(f"fst: error: {args[1]}: {e.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
