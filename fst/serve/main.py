"""`fst serve`: check the options, listen, serve, and drain on SIGTERM (or Ctrl-C).

Drain: the gate admits nobody and refuses everyone in line (503 + Retry-After); requests that
arrive meanwhile get the same; running jobs get --grace seconds to finish. Then uvicorn closes
the listener and the connections, and the process exits 0, or 1 when jobs were still running
after the grace period (they are cut off; the log says how many). A second signal quits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
from dataclasses import fields
from pathlib import Path

import uvicorn

from fst import FstError, __version__
from fst.serve.config import ServerConfig
from fst.styles import home
from fst.stylize import MIN_SIDE

log = logging.getLogger("fst.server")

MAX_CONNECTIONS = 1000  # open connections (idle or uploading) before uvicorn itself answers 503
SHUTDOWN_BACKSTOP_S = 3.0  # after the drain, for connections that still have not closed


def config_from_args(args) -> ServerConfig:
    """ServerConfig from `fst serve`'s options, refusing values that would make it useless."""
    if args.queue < 0:
        raise FstError("--queue must be 0 or more")
    for name in ("timeout", "body_timeout"):
        if not getattr(args, name) > 0:
            raise FstError(f"--{name.replace('_', '-')} must be a positive number of seconds")
    if not args.grace >= 0:
        raise FstError("--grace must be 0 or more seconds")
    if args.max_size < MIN_SIDE:
        raise FstError(f"--max-size {args.max_size}: every answer would be refused (at least {MIN_SIDE})")
    if args.max_pixels < MIN_SIDE * MIN_SIDE:
        raise FstError(f"--max-pixels {args.max_pixels}: every image would be refused (at least {MIN_SIDE * MIN_SIDE})")
    if args.body_memory < args.max_body:
        raise FstError(f"--body-memory ({args.body_memory:,}) must be at least --max-body ({args.max_body:,})")
    names = {f.name for f in fields(ServerConfig)} - {"models_dir"}
    values = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return ServerConfig(models_dir=Path(args.models) if args.models else home() / "export", **values)


def listen(host: str, port: int) -> socket.socket:
    """A bound socket, or a one-line error (busy port, unknown address) before anything is logged."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        raise FstError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    return sock


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    sock = listen(args.host, args.port)
    from fst.serve.app import create_app

    app = create_app(config)
    state = app.state.fst
    server = DrainingServer(uvicorn.Config(app, access_log=False, log_config=None, limit_concurrency=MAX_CONNECTIONS,
                                           timeout_graceful_shutdown=SHUTDOWN_BACKSTOP_S), state.gate, config.grace)
    host = args.host if ":" not in args.host else f"[{args.host}]"
    log.info("fst %s: %d model(s) from %s (%s); %d worker(s) x %d ONNX thread(s), queue %d, timeout %g s, "
             "grace %g s; memory budget %.0f MB; http://%s:%d/", __version__, len(state.models), config.models_dir,
             ", ".join(state.models), config.workers, config.intra_op_threads(), config.queue, config.timeout,
             config.grace, config.memory_budget_mb(), host, args.port)
    server.run(sockets=[sock])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if server.cut_off:
        log.error("stopped with %d job(s) still running after the %g s grace period; peak RSS %.0f MB",
                  state.gate.running, config.grace, peak_mb)
        logging.shutdown()
        os._exit(1)  # the worker threads cannot be interrupted; do not wait for them
    log.info("stopped after a clean drain; peak RSS %.0f MB", peak_mb)
    return 0


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first SIGTERM/SIGINT starts a drain instead of closing at once."""

    def __init__(self, config: uvicorn.Config, gate, grace: float):
        super().__init__(config)
        self.gate, self.grace = gate, grace
        self.cut_off = False  # jobs were still running when the grace period ended
        self.draining = False
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets=None):
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)

    def handle_exit(self, sig, frame):
        # Not recorded in _captured_signals: uvicorn would re-raise it at the end and the process
        # would die by the signal instead of exiting with its own status.
        if not self.draining and self.loop is not None and not self.should_exit:
            self.draining = True
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self.drain(signal.Signals(sig).name)))
        else:  # a second signal: stop now
            self.should_exit = self.force_exit = True

    async def drain(self, why: str):
        waiting = self.gate.waiting
        self.gate.drain()
        log.info("%s: draining: %d running, %d waiting refused; grace %g s", why, self.gate.running, waiting, self.grace)
        self.cut_off = not await self.gate.wait_idle(self.grace)
        self.should_exit = True
