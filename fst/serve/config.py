"""The server's settings: the one source of `fst serve`'s defaults (cli.py reads them here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fst.cpuinfo import usable_cores

MIB = 1024 * 1024
# The memory budget (README "fst serve"), from `python -m fst.loadtest --memory` here: the process
# with the 4 shipped models 120 MB; the largest job (25 MP RGBA PNG -> 2048x2048) +987 MB alone,
# +1208 MB each with two at once (threads' malloc arenas).
BASE_MB = 200
JOB_MB_AT_2048 = 1100  # network activations and the float32 copies; scales with the answer's pixels
DECODE_BYTES_PER_PIXEL = 8  # the decoded input before its shrink (RGBA 8-bit, and one converted copy)


@dataclass
class ServerConfig:
    models_dir: Path
    workers: int = 2  # inference threads: jobs running at once
    queue: int = 16  # admitted jobs waiting for a worker; more get 503
    max_body: int = 20 * MIB  # bytes of one request body
    body_memory: int = 256 * MIB  # bytes of all request bodies held at once (reading or queued)
    body_timeout: float = 30.0  # seconds to receive a whole body, else 408
    max_pixels: int = 25_000_000  # decoded pixels of one input, from its header
    max_size: int = 2048  # longest side of an answer
    timeout: float = 60.0  # seconds from admission to answer, else 504
    grace: float = 30.0  # seconds running jobs get to finish after SIGTERM
    threads: int = 0  # ONNX Runtime intra-op threads per session; 0: usable cores // workers

    def memory_budget_mb(self) -> float:
        """Peak resident memory this configuration stays within, whatever the mix of requests."""
        job_mb = JOB_MB_AT_2048 * (self.max_size / 2048) ** 2 + DECODE_BYTES_PER_PIXEL * self.max_pixels / MIB
        return BASE_MB + self.workers * job_mb + self.body_memory / MIB

    def intra_op_threads(self) -> int:
        if self.threads:
            return self.threads
        return max(1, usable_cores() // self.workers)


DEFAULTS = ServerConfig(models_dir=Path("export"))
