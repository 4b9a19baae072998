"""`fst serve`: an HTTP inference server (FastAPI + uvicorn) with a web page at `/`.

No torch here: ONNX Runtime, numpy, Pillow and the web stack only.

Models: every `*.onnx` in --models (default: the shipped export/ folder) is loaded once at
start, one ONNX Runtime session each, shared by all requests. A model's name is its file name
without `.onnx`. The reduced-precision variants `fst export` writes beside a model
(`NAME.fp16.onnx`, `NAME.int8.onnx`) are skipped: the server serves the fp32 models only.

Concurrency: inference (decode, stylize, encode) runs off the event loop on a pool of --workers
threads; each session uses cores / workers intra-op threads (--threads). At most --workers
requests run and at most --queue more wait; any further request is refused at once with 503 and
a Retry-After header. Each request has --timeout seconds from admission to answer, else 504 (a
job already running is not interrupted: it keeps its worker until it ends, so the bound on
concurrent work holds).

Endpoints:
  POST /v1/stylize            the image as the raw body, or multipart field `image`;
                              parameters model, strength, preserve_color, max_size, format as
                              query parameters (or multipart fields, which win)
  GET  /v1/models             the models and their metadata
  GET  /v1/models/{name}      one model
  GET  /v1/models/{name}/painting   a JPEG thumbnail of the style's painting
  GET  /healthz               liveness and load
  GET  /metrics               Prometheus text format
  GET  /docs                  OpenAPI documentation
  GET  /                      the web page (fst/static/)

Errors are JSON: {"error": "..."} with 400 (broken image, malformed body), 404 (unknown model),
413 (body or pixels over the limit), 415 (not an image), 422 (bad parameter, image too small),
503 (queue full), 504 (timeout). A client that disconnects while queued is logged as 499 and its
job is skipped.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from fst import FstError, __version__
from fst.images import BrokenImageError, NotAnImageError, TooManyPixelsError, encode_image, load_image
from fst.styles import DEFAULT_STYLE, SHIPPED, home, shipped_files
from fst.stylize import MIN_SIDE

log = logging.getLogger("fst.server")

STATIC_DIR = Path(__file__).resolve().parent / "static"
VARIANT_SUFFIXES = (".fp16.onnx", ".int8.onnx")
PAINTING_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
THUMBNAIL_SIDE = 384
# format parameter -> (Pillow format, content type, file extension)
FORMATS = {
    "png": ("PNG", "image/png", "png"),
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
    "jpg": ("JPEG", "image/jpeg", "jpg"),
    "webp": ("WEBP", "image/webp", "webp"),
}
FormatName = Literal["png", "jpeg", "jpg", "webp"]
TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass
class ServerConfig:
    models_dir: Path
    workers: int = 2
    queue: int = 16
    max_body: int = 20 * 1024 * 1024
    max_pixels: int = 25_000_000
    max_size: int = 2048
    timeout: float = 60.0
    threads: int = 0  # ONNX Runtime intra-op threads per session; 0: usable cores // workers

    def intra_op_threads(self) -> int:
        if self.threads:
            return self.threads
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
        return max(1, cores // self.workers)


class ApiError(Exception):
    """An HTTP error answered as {"error": message}."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


# ---------------------------------------------------------------------------------- models


@dataclass
class Model:
    name: str
    path: Path
    stylizer: Any  # fst.stylize.OnnxStylizer
    thumbnail: bytes | None = None  # JPEG of the painting, for the web page
    info: dict = field(default_factory=dict)  # SHIPPED entry: painting, artist, year, scan

    def describe(self, default: str) -> dict:
        return {
            "name": self.name,
            "default": self.name == default,
            "file": self.path.name,
            "style": self.stylizer.metadata.get("fst.style", ""),
            "painting": self.info.get("painting"),
            "artist": self.info.get("artist"),
            "year": self.info.get("year"),
            "painting_url": f"/v1/models/{self.name}/painting" if self.thumbnail else None,
            "metadata": dict(self.stylizer.metadata),
        }


def _painting_path(name: str, folder: Path) -> Path | None:
    candidates = [shipped_files(name)["painting"]] + [folder / f"{name}{ext}" for ext in PAINTING_EXTENSIONS]
    return next((p for p in candidates if p.is_file()), None)


def _thumbnail(path: Path) -> bytes | None:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            if img.width * img.height > 100_000_000:
                return None
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=85)
            return buf.getvalue()
    except Exception as e:  # a broken painting only loses its thumbnail
        log.warning("%s: no thumbnail (%s)", path, e)
        return None


def load_models(folder: str | os.PathLike, threads: int) -> dict[str, Model]:
    """Every fp32 .onnx in `folder` -> {name: Model}, each session warmed up once."""
    import numpy as np

    from fst.stylize import OnnxStylizer

    folder = Path(folder)
    if not folder.is_dir():
        raise FstError(f"{folder}: no such models folder")
    paths = sorted(p for p in folder.glob("*.onnx") if p.is_file() and not p.name.endswith(VARIANT_SUFFIXES))
    if not paths:
        raise FstError(f"{folder}: no .onnx models in this folder (write one with `fst export`)")
    models: dict[str, Model] = {}
    warm = np.full((3, 32, 32), 0.5, np.float32)
    for path in paths:
        name = path.name[: -len(".onnx")]
        stylizer = OnnxStylizer(str(path), threads=threads)
        stylizer(warm)  # first run allocates; do it before the first user waits
        painting = _painting_path(name, folder)
        models[name] = Model(name, path, stylizer, _thumbnail(painting) if painting else None, dict(SHIPPED.get(name, {})))
    return models


# ------------------------------------------------------------------------ admission control


class Gate:
    """Bounded concurrency with a bounded queue, on the event loop (no locks needed).

    A request is admitted if fewer than workers + queue requests are in (reading their body,
    waiting or running); otherwise it is refused at once. Admitted requests then wait, first
    come first served, for one of `workers` slots.
    """

    def __init__(self, workers: int, queue: int):
        self.workers = workers
        self.capacity = workers + queue
        self.admitted = 0
        self.running = 0
        self._waiters: deque[asyncio.Future] = deque()
        self.mean_job_s = 0.5  # moving average of a job's duration, for Retry-After

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    def try_admit(self) -> bool:
        if self.admitted >= self.capacity:
            return False
        self.admitted += 1
        return True

    def leave(self) -> None:
        self.admitted -= 1

    async def acquire(self, timeout: float) -> None:
        """A worker slot, or asyncio.TimeoutError after `timeout` seconds."""
        if self.running < self.workers and not self._waiters:
            self.running += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, max(timeout, 0.0))
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we gave up: pass it on
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the next in line
                return
        self.running -= 1

    def observe(self, seconds: float) -> None:
        self.mean_job_s = 0.8 * self.mean_job_s + 0.2 * seconds

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained, 1..60."""
        return int(min(60, max(1, math.ceil(self.mean_job_s * self.capacity / self.workers))))


# ---------------------------------------------------------------------------------- metrics


class Metrics:
    """Prometheus metrics in a registry of this app's own."""

    def __init__(self, gate: Gate, models: dict[str, Model]):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # no *_created series: they double the output and nobody graphs them
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("fst_http_requests", "HTTP requests answered", ["method", "path", "status"], registry=r)
        self.latency = Histogram(
            "fst_http_request_duration_seconds", "Time to answer an HTTP request", ["method", "path"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge("fst_http_requests_in_flight", "HTTP requests being answered", registry=r)
        self.rejected = Counter("fst_rejected", "Stylize requests refused: queue_full (503), timeout (504), too_large (413)",
                                ["reason"], registry=r)
        self.inference = Histogram("fst_inference_duration_seconds", "Decode + stylize + encode time of a job", ["model"],
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.response_bytes = Counter("fst_http_response_bytes", "Bytes of response bodies", registry=r)
        Gauge("fst_workers_busy", "Inference jobs running", registry=r).set_function(lambda: gate.running)
        Gauge("fst_queue_waiting", "Admitted stylize requests waiting for a worker", registry=r).set_function(
            lambda: gate.waiting)
        Gauge("fst_workers", "Inference threads (--workers)", registry=r).set(gate.workers)
        Gauge("fst_queue_capacity", "Requests allowed to wait (--queue)", registry=r).set(gate.capacity - gate.workers)
        info = Gauge("fst_model_info", "Loaded models", ["model", "style"], registry=r)
        for m in models.values():
            info.labels(m.name, m.stylizer.metadata.get("fst.style", "")).set(1)
        for reason in ("queue_full", "timeout", "too_large"):
            self.rejected.labels(reason)


class AccessMiddleware:
    """Pure ASGI: one log line per request, and the request metrics."""

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
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_count)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"  # the template: bounded labels
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            self.metrics.response_bytes.inc(size)
            client = scope.get("client") or ("-", 0)
            log.info("%s %s %s %d %.1fms %dB", client[0], method, scope.get("path", ""), status, elapsed * 1000, size)


# ------------------------------------------------------------------------------ the request


@dataclass(frozen=True)
class Params:
    model: str
    strength: float = 1.0
    preserve_color: bool = False
    max_size: int | None = None
    format: str = "png"


def _form_params(form, params: Params) -> Params:
    """Multipart fields (strings) override the query parameters; same rules, 422 when wrong."""
    changes: dict[str, Any] = {}
    if isinstance(form.get("model"), str) and form["model"]:
        changes["model"] = form["model"]
    if isinstance(form.get("strength"), str):
        try:
            changes["strength"] = float(form["strength"])
        except ValueError:
            raise ApiError(422, f"strength: expected a number between 0 and 1, got {form['strength']!r}") from None
    if isinstance(form.get("preserve_color"), str):
        word = form["preserve_color"].strip().lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise ApiError(422, f"preserve_color: expected true or false, got {form['preserve_color']!r}")
        changes["preserve_color"] = word in TRUE_WORDS
    if isinstance(form.get("max_size"), str) and form["max_size"]:
        try:
            changes["max_size"] = int(form["max_size"])
        except ValueError:
            raise ApiError(422, f"max_size: expected a whole number, got {form['max_size']!r}") from None
    if isinstance(form.get("format"), str) and form["format"]:
        changes["format"] = form["format"].strip().lower()
    return _check_params(replace(params, **changes))


def _check_params(params: Params) -> Params:
    if not (0.0 <= params.strength <= 1.0) or math.isnan(params.strength):
        raise ApiError(422, f"strength: must be between 0 and 1, got {params.strength}")
    if params.max_size is not None and params.max_size < MIN_SIDE:
        raise ApiError(422, f"max_size: must be at least {MIN_SIDE}, got {params.max_size}")
    if params.format not in FORMATS:
        raise ApiError(422, f"format: must be one of png, jpeg, webp, got {params.format!r}")
    return params


async def _read_body(request, limit: int) -> bytes:
    """The request body, refusing (413) more than `limit` bytes: by Content-Length, then while reading."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise ApiError(400, f"bad Content-Length {declared!r}") from None
        if length > limit:
            raise ApiError(413, f"request body of {length:,} bytes is over the limit of {limit:,} bytes")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"request body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload_from_multipart(request, body: bytes, limit: int):
    """(image bytes, form) from a multipart body already read into memory."""
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException
    from starlette.requests import Request

    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=16, max_part_size=limit)
    except (MultiPartException, HTTPException) as e:
        raise ApiError(400, f"malformed multipart body: {getattr(e, 'detail', None) or getattr(e, 'message', e)}") from None
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        await form.close()
        raise ApiError(400, 'a multipart request needs the image as a file field named "image"')
    data = await upload.read()
    return data, form


def _job(model: Model, data: bytes, params: Params, config: ServerConfig) -> tuple[bytes, tuple[int, int], float]:
    """Decode, stylize, encode: runs on a worker thread. -> (encoded, (width, height), seconds)."""
    from fst.stylize import stylize_array

    start = time.perf_counter()
    try:
        limit = min(params.max_size or config.max_size, config.max_size)
        # header checked before decoding; decoded once, shrunk (never enlarged) to the limit
        image = load_image(io.BytesIO(data), max_pixels=config.max_pixels, max_side=limit)
        out = stylize_array(model.stylizer, image.rgb, params.strength, params.preserve_color)
        pil_format = FORMATS[params.format][0]
        meta = {"Software": f"fst {__version__}", "fst.model": model.name}
        encoded = encode_image(out, pil_format, image.alpha, metadata=meta)
    except TooManyPixelsError as e:
        raise ApiError(413, str(e).split(" (raise it")[0].replace("the limit", "this server's limit")) from None
    except NotAnImageError as e:
        raise ApiError(415, f"{e} (send a PNG, JPEG, WebP, ... image)") from None
    except BrokenImageError as e:
        raise ApiError(400, str(e)) from None
    except FstError as e:  # e.g. too small to stylize
        raise ApiError(422, str(e)) from None
    except MemoryError:
        raise ApiError(503, "out of memory; try a smaller image or max_size", {"Retry-After": "5"}) from None
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's less common decoding failures
        raise ApiError(400, f"image: cannot decode ({str(e)[:200]})") from None
    return encoded, (out.shape[2], out.shape[1]), time.perf_counter() - start


# -------------------------------------------------------------------------------------- app


def create_app(config: ServerConfig, models: dict[str, Model] | None = None):
    """The FastAPI app; loads the models unless given."""
    if models is None:
        models = load_models(config.models_dir, config.intra_op_threads())
    default = DEFAULT_STYLE if DEFAULT_STYLE in models else next(iter(models))
    gate = Gate(config.workers, config.queue)
    metrics = Metrics(gate, models)
    executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="fst-infer")

    @asynccontextmanager
    async def lifespan(app):
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="fst: fast neural style transfer",
        version=__version__,
        description="Stylize photos with fast style-transfer networks (ONNX Runtime). Errors are JSON: "
        '`{"error": "..."}`.',
        lifespan=lifespan,
    )
    app.state.config, app.state.models, app.state.gate, app.state.metrics = config, models, gate, metrics

    def error(status: int, message: str, headers: dict | None = None):
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return error(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        message = exc.detail if exc.status_code != 404 else f"not found: {request.url.path}"
        return error(exc.status_code, str(message), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error(500, f"internal error ({type(exc).__name__})")

    app.add_middleware(AccessMiddleware, metrics=metrics)

    def get_model(name: str) -> Model:
        if name not in models:
            raise ApiError(404, f"unknown model {name!r} (available: {', '.join(models)})")
        return models[name]

    # ------------------------------------------------------------------ pages and health

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", summary="Liveness and load")
    async def healthz():
        return {
            "status": "ok",
            "version": __version__,
            "models": list(models),
            "workers": config.workers,
            "queue": config.queue,
            "running": gate.running,
            "waiting": gate.waiting,
        }

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ models

    @app.get("/v1/models", summary="The models this server runs")
    async def list_models():
        return {"default": default, "models": [m.describe(default) for m in models.values()]}

    @app.get("/v1/models/{name}", summary="One model", responses={404: {"description": "unknown model"}})
    async def one_model(name: str):
        return get_model(name).describe(default)

    @app.get(
        "/v1/models/{name}/painting",
        summary="A JPEG thumbnail of the model's painting",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "unknown model, or no painting"}},
    )
    async def painting(name: str):
        model = get_model(name)
        if not model.thumbnail:
            raise ApiError(404, f"model {name!r} has no painting")
        return Response(model.thumbnail, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})

    # ------------------------------------------------------------------ stylize

    image_body = {"schema": {"type": "string", "format": "binary"}}
    multipart_schema = {
        "schema": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "format": "binary"},
                "model": {"type": "string"},
                "strength": {"type": "number", "minimum": 0, "maximum": 1},
                "preserve_color": {"type": "boolean"},
                "max_size": {"type": "integer", "minimum": MIN_SIDE},
                "format": {"type": "string", "enum": ["png", "jpeg", "webp"]},
            },
        }
    }

    @app.post(
        "/v1/stylize",
        summary="Stylize an image",
        description="Send the image as the raw request body (any image content type), or as the file field "
        "`image` of a multipart form, whose other fields override the query parameters. Answers the "
        "stylized image, the same size as the input unless it is larger than `max_size`.",
        response_class=Response,
        openapi_extra={"requestBody": {"required": True, "content": {
            "image/*": image_body, "application/octet-stream": image_body, "multipart/form-data": multipart_schema}}},
        responses={
            200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}, "description": "the stylized image"},
            400: {"description": "broken image or malformed body"},
            404: {"description": "unknown model"},
            413: {"description": "body or image over the server's limits"},
            415: {"description": "not an image"},
            422: {"description": "bad parameter, or image too small"},
            503: {"description": "queue full; see Retry-After"},
            504: {"description": "not answered within the server's timeout"},
        },
    )
    async def stylize(
        request: Request,
        model: str | None = Query(None, description=f"model name (default: {default})"),
        strength: float = Query(1.0, ge=0.0, le=1.0, description="0: the original, 1: fully stylized"),
        preserve_color: bool = Query(False, description="keep the photo's colours (luminance-only transfer)"),
        max_size: int | None = Query(None, ge=MIN_SIDE, description=f"longest output side; never above the server's {config.max_size}; smaller images are not enlarged"),
        format: FormatName = Query("png", description="output format: png, jpeg or webp"),
    ):
        params = _check_params(Params(model or default, strength, preserve_color, max_size, format))
        get_model(params.model)  # 404 before reading anything
        if not gate.try_admit():
            metrics.rejected.labels("queue_full").inc()
            raise ApiError(503, f"busy: {gate.running} running and {gate.capacity - gate.workers} waiting; retry later",
                           {"Retry-After": str(gate.retry_after())})
        deadline = time.monotonic() + config.timeout
        ticket_held = True  # this coroutine gives the admission back, unless a running job does
        try:
            try:
                body = await asyncio.wait_for(_read_body(request, config.max_body), config.timeout)
            except ApiError as e:
                if e.status == 413:
                    metrics.rejected.labels("too_large").inc()
                raise
            except asyncio.TimeoutError:
                metrics.rejected.labels("timeout").inc()
                raise ApiError(504, f"the request body did not arrive within {config.timeout:g} s") from None
            form = None
            if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
                body, form = await _upload_from_multipart(request, body, config.max_body)
                try:
                    params = _form_params(form, params)
                finally:
                    await form.close()
            chosen = get_model(params.model)
            if not body:
                raise ApiError(400, "empty body: send an image (raw body, or multipart field \"image\")")

            try:
                await gate.acquire(deadline - time.monotonic())
            except asyncio.TimeoutError:
                metrics.rejected.labels("timeout").inc()
                raise ApiError(504, f"not started within the server's timeout of {config.timeout:g} s") from None
            if deadline - time.monotonic() <= 0:
                gate.release()
                metrics.rejected.labels("timeout").inc()
                raise ApiError(504, f"not started within the server's timeout of {config.timeout:g} s")
            if await request.is_disconnected():  # the client gave up while queued: skip the work
                gate.release()
                raise ApiError(499, "client closed the request")
            try:
                job = asyncio.get_running_loop().run_in_executor(executor, _job, chosen, body, params, config)
            except BaseException:
                gate.release()
                raise

            def finished(f: asyncio.Future) -> None:
                gate.release()
                gate.leave()
                if not f.cancelled() and f.exception() is None:
                    seconds = f.result()[2]
                    gate.observe(seconds)
                    metrics.inference.labels(chosen.name).observe(seconds)

            job.add_done_callback(finished)
            ticket_held = False
            try:
                encoded, (width, height), seconds = await asyncio.wait_for(
                    asyncio.shield(job), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                metrics.rejected.labels("timeout").inc()
                raise ApiError(504, f"not done within the server's timeout of {config.timeout:g} s") from None
        finally:
            if ticket_held:
                gate.leave()
        _, media_type, ext = FORMATS[params.format]
        return Response(
            encoded,
            media_type=media_type,
            headers={
                "X-Fst-Model": chosen.name,
                "X-Fst-Size": f"{width}x{height}",
                "X-Fst-Inference-Ms": f"{seconds * 1000:.1f}",
                "Content-Disposition": f'inline; filename="{chosen.name}.{ext}"',
            },
        )

    return app


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.queue < 0:
        raise FstError("--queue must be 0 or more")
    if not args.timeout > 0:
        raise FstError("--timeout must be a positive number of seconds")
    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise FstError("--threads must be at least 1")
    config = ServerConfig(
        models_dir=Path(args.models) if args.models else home() / "export",
        workers=args.workers,
        queue=args.queue,
        max_body=args.max_body,
        max_pixels=args.max_pixels,
        max_size=args.max_size,
        timeout=args.timeout,
        threads=getattr(args, "threads", None) or 0,
    )
    app = create_app(config)
    import uvicorn

    models = app.state.models
    log.info(
        "fst %s: %d model(s) from %s (%s); %d worker(s) x %d ONNX thread(s), queue %d, timeout %g s; http://%s:%d/",
        __version__, len(models), config.models_dir, ", ".join(models), config.workers, config.intra_op_threads(),
        config.queue, config.timeout, args.host if ":" not in args.host else f"[{args.host}]", args.port,
    )
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_config=None, timeout_graceful_shutdown=5)
    return 0
