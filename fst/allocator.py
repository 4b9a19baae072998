"""glibc allocator settings for the torch commands (train, optimize, evaluate, bench) and for
stylizing videos (fst.video.command).

Not for photos or serve: those should hand memory back after a large image.
"""

from __future__ import annotations

import ctypes
import platform
import sys


def tune_allocator() -> bool:
    """Keep freed memory in the process (glibc only; True when applied).

    A training step frees and re-allocates the same activation blocks (tens of MB) every step.
    glibc's default maps each large block afresh and unmaps it on free, so every step page-faults
    its whole working set again: a default `fst train` spent 18-24 % of its CPU time in the
    kernel. With these limits the blocks are reused from the heap (measured: system time per
    128 px step 507 -> 12 ms). Costs nothing in speed; RSS stays at the step's peak. A video's
    frames do the same: the stabilizer's NumPy and OpenCV work on a 640x480 frame took 2x as long
    with each array's pages faulted in afresh.
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    return all(
        libc.mallopt(option, value)
        for option, value in ((m_mmap_threshold, 1 << 30), (m_trim_threshold, 1 << 30), (m_top_pad, 64 << 20))
    )
