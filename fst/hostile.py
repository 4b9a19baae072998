"""A bounded hostile run against a fresh `fst serve` on loopback (issue 15's Done-when).

    python -m fst.loadtest --hostile [--json] [-- SERVE OPTIONS...]

Starts `fst serve` on a free 127.0.0.1 port, then at once: a well-behaved client sending
photos one after another, 50 idle uploads (headers and a few bytes, then silence), 500
requests with 8 KB junk method names, and 20 bomb-like files (pixel-heavy 1-bit PNGs, a
100000x100000 header, 25-megapixel RGBA PNGs that decode to full size, formats outside the
allow-list). When the attacks are done, SIGTERM. Every loop is bounded; the whole run is cut at
two minutes.

Passes (exit 0) when: the good client got only 200s, and 503s with Retry-After after the
SIGTERM; every idle upload was answered 408; /metrics stayed under 100 KB; the server's peak
RSS stayed within its documented memory budget (ServerConfig.memory_budget_mb); it exited 0.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from fst.loadtest import percentile, test_image

IDLE_UPLOADS, JUNK_METHODS, BOMBS = 50, 500, 20
METRICS_LIMIT = 100_000
RUN_LIMIT_S = 120.0
IMAGE = {"Content-Type": "image/jpeg"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m fst serve` on a free loopback port, its peak RSS sampled from /proc."""

    def __init__(self, serve_args: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.log = open(f"/tmp/fst-hostile-{self.port}.log", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "fst", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                                      *serve_args], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.peak_mb = 0.0

    def wait_ready(self, client, limit_s: float = 90) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fst serve exited with {self.proc.returncode}: {self.output()[-2000:]}")
            try:
                if client.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise RuntimeError("fst serve did not start")

    def sample(self) -> None:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                self.peak_mb = max(self.peak_mb, int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024)
        except (OSError, AttributeError):
            pass

    def output(self) -> str:
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def bombs() -> list[tuple[str, bytes]]:
    """20 bomb-like files: (kind, bytes)."""
    def png(img: Image.Image) -> bytes:
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()

    one_bit = png(Image.new("1", (25_000, 1_000), 1))  # 25 M pixels in ~3 kB
    header = bytearray(png(Image.new("1", (8, 8))))
    header[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR says 100000x100000: 413 from the header alone
    header[29:33] = zlib.crc32(bytes(header[12:29])).to_bytes(4, "big")
    rgba = largest_job()
    other = {}
    for fmt in ("DDS", "TGA", "EPS", "ICO"):
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, fmt)
        other[fmt] = buf.getvalue()
    files = [("1-bit 25000x1000 PNG", one_bit)] * 10 + [("100000x100000 header", bytes(header))] * 4
    files += [("5000x5000 RGBA PNG", rgba)] * 2 + [(f"{fmt} file", data) for fmt, data in other.items()]
    return files[:BOMBS]


def largest_job(side: int = 5000) -> bytes:
    """A side x side RGBA PNG (25 M pixels, the default limit): decoded whole, answered at --max-size."""
    y, x = np.mgrid[0:side, 0:side]
    buf = io.BytesIO()
    Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256, 255 - x % 256], -1).astype(np.uint8), "RGBA").save(buf, "PNG")
    return buf.getvalue()


def run_memory(serve_args: list[str]) -> dict:
    """The memory budget's measurements: peak RSS idle, with one largest job, with --workers at once."""
    import httpx

    server = Server(serve_args)
    body = largest_job()
    workers = int(arg_value(serve_args, "--workers", 2))
    try:
        with httpx.Client(timeout=300) as client:
            server.wait_ready(client)
        server.sample()
        idle = server.peak_mb
        first = post_bomb(server.url, "largest", body)
        server.sample()
        one = server.peak_mb
        with ThreadPoolExecutor(workers) as pool:
            answers = [first, *pool.map(lambda _: post_bomb(server.url, "largest", body), range(workers))]
        server.sample()
    finally:
        server.close()
    return {"serve_args": serve_args, "answers": answers, "idle_mb": round(idle), "one_job_peak_mb": round(one),
            "one_job_mb": round(one - idle), f"{workers}_at_once_peak_mb": round(server.peak_mb),
            "per_job_at_once_mb": round((server.peak_mb - idle) / workers), "budget_mb": round(budget_of(serve_args))}


def junk_method(port: int, i: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"J{i:04d}{'X' * 8000} /v1/stylize HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = sock.recv(64)
    return answer[9:12].decode(errors="replace") or "closed"


def idle_upload(port: int, started: float, timeout_s: float) -> tuple[str, float]:
    """Headers and 10 bytes of a 1 MB body, then silence: -> (status, seconds until answered)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(b"POST /v1/stylize HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n"
                     + b"\xff\xd8" + b"\0" * 8)
        try:
            answer = sock.recv(64)
        except socket.timeout:
            return "none", time.monotonic() - started
    return answer[9:12].decode(errors="replace") or "closed", time.monotonic() - started


def run_hostile(serve_args: list[str], photo_size: int = 512) -> dict:
    import httpx

    server = Server(serve_args)
    try:
        with httpx.Client(timeout=120) as client:
            server.wait_ready(client)
        return _attack(server, serve_args, photo_size)
    finally:
        server.close()


class Watch:
    """Background threads for the whole run: peak RSS (every 50 ms), /metrics size (every second)
    and the well-behaved client, which stops at its first 503 after the SIGTERM."""

    def __init__(self, server: Server, photo_size: int, t0: float):
        self.server, self.photo_size, self.t0 = server, photo_size, t0
        self.stop, self.terminated = threading.Event(), threading.Event()
        self.metrics_sizes: list[int] = []
        self.good: list[tuple[str, float, str | None]] = []  # (status, seconds, problem)
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self.sample, self.scrape, self.good_client)]
        for t in self.threads:
            t.start()

    def sample(self):
        while not self.stop.is_set():
            self.server.sample()
            time.sleep(0.05)

    def scrape(self):
        import httpx

        with httpx.Client(timeout=30) as c:
            while not self.stop.is_set():
                try:
                    self.metrics_sizes.append(len(c.get(f"{self.server.url}/metrics").content))
                except httpx.HTTPError:
                    pass
                self.stop.wait(1.0)

    def good_client(self):
        import httpx

        body, _ = test_image(self.photo_size)
        with httpx.Client(timeout=120, headers=IMAGE) as c:
            while time.monotonic() - self.t0 < RUN_LIMIT_S:
                start = time.monotonic()
                try:
                    r = c.post(f"{self.server.url}/v1/stylize", params={"format": "jpeg"}, content=body)
                except httpx.HTTPError as e:
                    self.good.append(("error", time.monotonic() - start, f"{type(e).__name__}: {e}"))
                    return
                if r.status_code == 503 and self.terminated.is_set() and r.headers.get("retry-after"):
                    self.good.append(("503", time.monotonic() - start, None))
                    return  # told to go elsewhere: a well-behaved client does
                problem = None if r.status_code == 200 else f"HTTP {r.status_code}: {r.text[:120]}"
                self.good.append((str(r.status_code), time.monotonic() - start, problem))

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def _attack(server: Server, serve_args: list[str], photo_size: int) -> dict:
    from fst.serve.config import DEFAULTS

    t0 = time.monotonic()
    watch = Watch(server, photo_size, t0)
    body_timeout = float(arg_value(serve_args, "--body-timeout", DEFAULTS.body_timeout))
    with ThreadPoolExecutor(max_workers=IDLE_UPLOADS + 8) as pool:
        idle = [pool.submit(idle_upload, server.port, t0, body_timeout + 30) for _ in range(IDLE_UPLOADS)]
        junk = [pool.submit(junk_method, server.port, i) for i in range(JUNK_METHODS)]
        bomb_files = bombs()
        bomb_answers = [pool.submit(post_bomb, server.url, kind, data) for kind, data in bomb_files]
        junk_statuses = count(f.result() for f in junk)
        bomb_statuses = count(f"{kind}: {f.result()}" for (kind, _), f in zip(bomb_files, bomb_answers))
        idle_results = [f.result() for f in idle]
    attacks_s = time.monotonic() - t0
    time.sleep(1.0)  # the good client is mid-request somewhere
    watch.terminated.set()
    server.proc.send_signal(signal.SIGTERM)
    sigterm_at = time.monotonic() - t0
    try:
        code = server.proc.wait(max(5.0, RUN_LIMIT_S - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        code = "still running at the two-minute limit"
    watch.join()
    total_s = time.monotonic() - t0
    good_ok = [s for status, s, _ in watch.good if status == "200"]
    problems = [p for _, _, p in watch.good if p]
    idle_statuses = count(status for status, _ in idle_results)
    sizes = watch.metrics_sizes
    budget_mb = budget_of(serve_args)
    report = {
        "serve_args": serve_args,
        "seconds": {"attacks": round(attacks_s, 1), "sigterm_at": round(sigterm_at, 1), "total": round(total_s, 1)},
        "good_client": {"statuses": count(s for s, _, _ in watch.good), "problems": problems[:5],
                        "latency_ms_p50": ms(percentile(good_ok, 50)), "latency_ms_max": ms(max(good_ok, default=None))},
        "idle_uploads": {"statuses": idle_statuses, "answered_within_s": round(max(s for _, s in idle_results), 1)},
        "junk_methods": {"statuses": junk_statuses},
        "bombs": {"statuses": bomb_statuses},
        "metrics_max_bytes": max(sizes, default=None),
        "peak_rss_mb": round(server.peak_mb),
        "budget_mb": round(budget_mb),
        "exit_code": code,
    }
    report["passed"] = {
        "good_client": not problems and bool(good_ok),
        "idle_uploads_408": idle_statuses == {"408": IDLE_UPLOADS},
        "metrics_under_100kB": bool(sizes) and max(sizes) < METRICS_LIMIT,
        "rss_within_budget": 0 < server.peak_mb <= budget_mb,
        "exit_0": code == 0,
        "under_two_minutes": total_s < RUN_LIMIT_S,
    }
    return report


def post_bomb(url: str, kind: str, data: bytes) -> str:
    import httpx

    try:
        return str(httpx.post(f"{url}/v1/stylize", headers={"Content-Type": "image/png"}, content=data, timeout=110).status_code)
    except httpx.HTTPError as e:
        return type(e).__name__


def budget_of(serve_args: list[str]) -> float:
    """The memory budget of a server started with these options (fst/serve/config.py)."""
    from pathlib import Path as P

    from fst.cli import build_parser
    from fst.serve.main import config_from_args

    args = build_parser().parse_args(["serve", *serve_args])
    args.models = args.models or str(P("."))  # the folder is not read here
    return config_from_args(args).memory_budget_mb()


def arg_value(args: list[str], name: str, default):
    return args[args.index(name) + 1] if name in args else default


def count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
