"""Load test of a running `fst serve`, on this machine only.

    python -m fst.loadtest --url http://127.0.0.1:8000 --clients 8 --requests 200 --size 512

Sends a fixed number of POST /v1/stylize requests from N concurrent clients (threads, one
HTTP connection each), then stops. Every answer is checked: status 200, the content type of the
requested format, and a decodable image of exactly the size sent. Reports latency percentiles,
throughput and errors (`--json` for a machine-readable report). Exit status: 0 when every answer
was right, 1 otherwise; with --allow-503 a 503 (queue full) that carries a Retry-After header
counts as a right answer. 2: bad arguments (e.g. a host that is not loopback).

Only loopback targets are accepted (127.0.0.0/8, localhost, ::1): this is a load generator.

    python -m fst.loadtest --hostile [--json] [-- FST SERVE OPTIONS]

starts its own server and runs the bounded hostile mix of fst/hostile.py against it.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import itertools
import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def check_loopback(url: str) -> str:
    """The base URL without a trailing slash; ValueError unless it is http(s) to a loopback host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url}: only http:// or https:// URLs")
    host = (parts.hostname or "").lower()
    if host != "localhost":
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{url}: only loopback hosts (127.0.0.0/8, localhost, ::1), not {host or 'no host'!r}") from None
        if not address.is_loopback:
            raise ValueError(f"{url}: {host} is not a loopback address (127.0.0.0/8 or ::1)")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"{url}: give the server's base URL, without a path")
    return f"{parts.scheme}://{parts.netloc}"


def test_image(size: int, seed: int = 0) -> tuple[bytes, tuple[int, int]]:
    """A photo-like JPEG `size` wide and 3/4 as high (non-square, to catch swapped sides)."""
    width, height = size, max(8, round(size * 3 / 4))
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([
        128 + 100 * np.sin(x / (width / 7.0)) * np.cos(y / (height / 5.0)),
        128 + 90 * np.cos((x + y) / (width / 9.0)),
        (x / width) * 200 + 30,
    ], axis=-1)
    rgb += rng.normal(0, 12, rgb.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue(), (width, height)


@dataclass
class Tally:
    latencies_ok: list[float] = field(default_factory=list)
    latencies_all: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # wrong answers, first few kept verbatim
    wrong: int = 0
    busy: int = 0  # 503 answers
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: str, seconds: float, problem: str | None, ok: bool) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.latencies_all.append(seconds)
            if ok:
                self.latencies_ok.append(seconds)
            if status == "503":
                self.busy += 1
            if problem:
                self.wrong += 1
                if len(self.errors) < 10:
                    self.errors.append(problem)


def _check(response, fmt: str, size: tuple[int, int], allow_503: bool) -> tuple[str | None, bool]:
    """-> (problem or None, stylized image received)."""
    if response.status_code == 503 and allow_503:
        if not response.headers.get("retry-after"):
            return "503 without a Retry-After header", False
        return None, False
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}", False
    ctype = response.headers.get("content-type", "")
    if ctype != CONTENT_TYPES[fmt]:
        return f"content type {ctype!r}, expected {CONTENT_TYPES[fmt]!r}", False
    try:
        with Image.open(io.BytesIO(response.content)) as img:
            img.load()
            got = img.size
    except Exception as e:
        return f"answer is not a decodable image ({e})", False
    if got != size:
        return f"answer is {got[0]}x{got[1]}, expected {size[0]}x{size[1]}", False
    return None, True


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def run_load(base: str, clients: int, requests: int, size: int, model: str | None = None, fmt: str = "jpeg",
             timeout: float = 120.0, allow_503: bool = False) -> dict:
    import httpx

    body, dims = test_image(size)
    params = {"format": fmt}
    if model:
        params["model"] = model
    url = f"{base}/v1/stylize"
    tally = Tally()
    counter = itertools.count()
    counter_lock = threading.Lock()
    start_gate = threading.Barrier(clients)

    def client() -> None:
        with httpx.Client(timeout=timeout, headers={"Content-Type": "image/jpeg"}) as session:
            try:
                start_gate.wait(timeout=30)
            except threading.BrokenBarrierError:
                pass
            while True:
                with counter_lock:
                    if next(counter) >= requests:
                        return
                t0 = time.perf_counter()
                try:
                    response = session.post(url, params=params, content=body)
                except httpx.HTTPError as e:
                    tally.add("error", time.perf_counter() - t0, f"{type(e).__name__}: {e}", False)
                    continue
                seconds = time.perf_counter() - t0
                problem, ok = _check(response, fmt, dims, allow_503)
                tally.add(str(response.status_code), seconds, problem, ok)

    threads = [threading.Thread(target=client, name=f"client-{i}", daemon=True) for i in range(clients)]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start

    ok = len(tally.latencies_ok)

    def ms(v):
        return None if v is None else round(v * 1000, 1)

    return {
        "url": base,
        "clients": clients,
        "requests": requests,
        "image": f"{dims[0]}x{dims[1]}",
        "format": fmt,
        "model": model,
        "seconds": round(elapsed, 3),
        "ok": ok,
        "rejected_503": tally.busy,
        "errors": tally.wrong,
        "statuses": dict(sorted(tally.statuses.items())),
        "throughput_rps": round(ok / elapsed, 2) if elapsed > 0 else None,
        "latency_ms": {  # of the successful (stylized) answers
            "p50": ms(percentile(tally.latencies_ok, 50)),
            "p95": ms(percentile(tally.latencies_ok, 95)),
            "p99": ms(percentile(tally.latencies_ok, 99)),
            "max": ms(max(tally.latencies_ok) if tally.latencies_ok else None),
            "mean": ms(sum(tally.latencies_ok) / ok if ok else None),
        },
        "latency_all_ms": {
            "p50": ms(percentile(tally.latencies_all, 50)),
            "p99": ms(percentile(tally.latencies_all, 99)),
        },
        "error_samples": tally.errors,
        "allow_503": allow_503,
    }


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    serve_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(prog="python -m fst.loadtest", description=__doc__.split("\n\n")[0],
                                epilog="--hostile: see fst/hostile.py; options after -- go to `fst serve`")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL (loopback only)")
    p.add_argument("--clients", type=_positive, default=8, help="concurrent clients (default 8)")
    p.add_argument("--requests", type=_positive, default=200, help="requests in all (default 200)")
    p.add_argument("--size", type=_positive, default=512, help="width of the test image; height is 3/4 (default 512)")
    p.add_argument("--model", help="model name (default: the server's default)")
    p.add_argument("--format", choices=sorted(CONTENT_TYPES), default="jpeg", help="output format asked (default jpeg)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request on the client side (default 120)")
    p.add_argument("--allow-503", action="store_true", help="a 503 with Retry-After (queue full) is not an error")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--hostile", action="store_true",
                   help="start a server and attack it while a good client sends --size photos, then SIGTERM (fst/hostile.py)")
    p.add_argument("--memory", action="store_true",
                   help="start a server and measure its peak RSS with the largest job, alone and --workers at once")
    args = p.parse_args(argv)
    if args.memory:
        from fst.hostile import run_memory

        report = run_memory(serve_args)
        print(json.dumps(report, indent=2))
        return 0 if all(a == "200" for a in report["answers"]) else 1
    if args.hostile:
        return _hostile(serve_args, args.size if "--size" in argv else 512, args.json)
    try:
        base = check_loopback(args.url)
    except ValueError as e:
        print(f"loadtest: error: {e}", file=sys.stderr)
        return 2
    if args.size < 8:
        print("loadtest: error: --size must be at least 8", file=sys.stderr)
        return 2
    report = run_load(base, args.clients, args.requests, args.size, args.model, args.format, args.timeout, args.allow_503)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        lat = report["latency_ms"]
        print(f"{report['requests']} requests, {report['clients']} clients, {report['image']} {report['format']} "
              f"-> {report['url']} in {report['seconds']:.2f} s")
        print(f"  ok {report['ok']}, 503 {report['rejected_503']}, wrong {report['errors']}  statuses {report['statuses']}")
        print(f"  latency ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}")
        print(f"  throughput: {report['throughput_rps']} images/s")
        for e in report["error_samples"]:
            print(f"  error: {e}")
    return 1 if report["errors"] else 0


def _hostile(serve_args: list[str], size: int, as_json: bool) -> int:
    from fst.hostile import run_hostile

    report = run_hostile(serve_args, size)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0 if all(report["passed"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
