"""Prometheus metrics and the access log: one line per request, every label from a closed set.

Labels never carry client text: the method is one of METHODS or "other", the path is the
route's template or "unmatched", the status is a number the server chose. Logged text is
escaped (no forged lines, no terminal escapes) and cut.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("fst.server")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
REJECT_REASONS = ("queue_full", "timeout", "too_large", "body_timeout", "body_memory", "draining")
CLIENT_CLOSED = 499  # nginx's code for "client closed the request": logged, never sent
LOGGED_CHARS = 200


def printable(text: str, limit: int = LOGGED_CHARS) -> str:
    """Client text for a log line: control and non-ASCII characters escaped, cut to `limit`."""
    escaped = text[:limit].encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return escaped + ("..." if len(text) > limit else "")


class Metrics:
    """Prometheus metrics in a registry of this app's own."""

    def __init__(self, gate, memory, models: dict):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # no *_created series: they double the output and nobody graphs them
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter("fst_http_requests", "HTTP requests answered", ["method", "path", "status"], registry=r)
        self.latency = Histogram("fst_http_request_duration_seconds", "Time to answer an HTTP request",
                                 ["method", "path"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("fst_http_requests_in_flight", "HTTP requests being answered", registry=r)
        self.rejected = Counter("fst_rejected", "Stylize requests refused, by reason: " + ", ".join(REJECT_REASONS),
                                ["reason"], registry=r)
        self.inference = Histogram("fst_inference_duration_seconds", "Decode + stylize + encode time of a job",
                                   ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.response_bytes = Counter("fst_http_response_bytes", "Bytes of response bodies", registry=r)
        Gauge("fst_workers_busy", "Inference jobs running", registry=r).set_function(lambda: gate.running)
        Gauge("fst_queue_waiting", "Admitted stylize requests waiting for a worker", registry=r).set_function(
            lambda: gate.waiting)
        Gauge("fst_uploads_in_progress", "Request bodies being received (they hold no worker)", registry=r).set_function(
            lambda: memory.uploads)
        Gauge("fst_body_bytes", "Bytes of request bodies in memory (--body-memory)", registry=r).set_function(
            lambda: memory.used)
        Gauge("fst_workers", "Inference threads (--workers)", registry=r).set(gate.workers)
        Gauge("fst_queue_capacity", "Requests allowed to wait (--queue)", registry=r).set(gate.capacity - gate.workers)
        info = Gauge("fst_model_info", "Loaded models", ["model", "style"], registry=r)
        for m in models.values():
            info.labels(m.name, m.style).set(1)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class AccessMiddleware:
    """Pure ASGI: the request metrics and one log line per request.

    A 499 (ClientGone) is recorded and logged but not sent: the client is not there to read it.
    """

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status, size = 500, 0

        async def send_and_count(message):
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            if status != CLIENT_CLOSED:
                await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_count)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"  # the template: bounded labels
            method = scope.get("method", "")
            label = method if method in METHODS else "other"
            self.metrics.requests.labels(label, route, str(status)).inc()
            self.metrics.latency.labels(label, route).observe(elapsed)
            self.metrics.response_bytes.inc(size if status != CLIENT_CLOSED else 0)
            client = scope.get("client") or ("-", 0)
            log.info('%s "%s %s" %d %.1fms %dB', client[0], printable(method, 16), printable(scope.get("path", "")),
                     status, elapsed * 1000, size)
