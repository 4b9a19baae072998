"""The server's settings: the one source of `fst serve`'s defaults (cli.py reads them here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


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

    def intra_op_threads(self) -> int:
        if self.threads:
            return self.threads
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
        return max(1, cores // self.workers)


DEFAULTS = ServerConfig(models_dir=Path("export"))
