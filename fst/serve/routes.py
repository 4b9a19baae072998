"""The endpoints. Each handler reads the server's state from `request.app.state.fst`.

  POST /v1/stylize            the image as the raw body (Content-Type image/*), or multipart field
                              `image`; parameters model, style, mix, strength, preserve_color, max_size,
                              stroke_scale, format as query parameters or multipart fields (fields win)
  GET  /v1/models             the models (a collection with its styles): what a client needs to choose one
  GET  /v1/models/{name}      one model
  GET  /v1/models/{name}/painting   a JPEG thumbnail of the style's painting
  GET  /v1/models/{name}/styles/{style}/painting   the same for a style of a collection
  GET  /healthz               liveness and load (503 while draining)
  GET  /metrics               Prometheus text format
  GET  /                      the web page (fst/static/)
GET routes answer HEAD too.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from fst import __version__
from fst.serve.admission import BodyMemory, Draining, Gate
from fst.serve.config import ServerConfig
from fst.serve.errors import ApiError, ClientGone, shown
from fst.serve.jobs import run_job
from fst.serve.metrics import Metrics
from fst.serve.models import Model
from fst.serve.parsing import (
    FORMATS, MAX_SCALE, MIN_SIDE, Params, check_request, drain_refused_body, parse_params, read_body, read_multipart,
    unknown_model,
)

# A refused upload is read on (and dropped) up to this many times --max-body before the close.
REFUSED_BODY_LIMIT = 4
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# The page's own files only; blob: for the photo and the answer, data: for the favicon.
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")

router = APIRouter()


@dataclass
class ServerState:
    config: ServerConfig
    models: dict[str, Model]
    default: str  # the model a request without `model` gets
    default_style: str | None  # and, where that model is a collection, its style (fst.serve.models.default_choice)
    gate: Gate
    memory: BodyMemory
    metrics: Metrics
    executor: ThreadPoolExecutor
    catalog: dict[str, list[str]] = field(init=False)  # each model's style names, for parse_params

    def __post_init__(self):
        self.catalog = {name: m.styles for name, m in self.models.items()}

    def model(self, name: str) -> Model:
        if name not in self.models:
            raise unknown_model(name, self.models)
        return self.models[name]

    def params(self, values: dict[str, str]) -> Params:
        return parse_params(values, self.default, self.catalog, self.default_style)

    def refusal(self) -> ApiError:
        """503 + Retry-After: the queue is full, or the server is draining."""
        retry = {"Retry-After": str(self.gate.retry_after())}
        if self.gate.draining.is_set():
            return ApiError(503, "the server is shutting down; retry later", {**retry, "Connection": "close"}, "draining")
        queued = self.gate.capacity - self.gate.workers
        return ApiError(503, f"busy: {self.gate.running} running and {queued} waiting; retry later", retry, "queue_full")


def state(request: Request) -> ServerState:
    return request.app.state.fst


# ---------------------------------------------------------------------------- pages and health


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index():
    return FileResponse(STATIC_DIR / "index.html",
                        headers={"Cache-Control": "no-cache", "Content-Security-Policy": PAGE_POLICY})


@router.api_route("/healthz", methods=["GET", "HEAD"], summary="Liveness and load (503 while shutting down)")
async def healthz(request: Request):
    s = state(request)
    body = {"status": "draining" if s.gate.draining.is_set() else "ok", "version": __version__,
            "models": list(s.models), "workers": s.config.workers, "queue": s.config.queue,
            "running": s.gate.running, "waiting": s.gate.waiting, "uploading": s.memory.uploads,
            "body_bytes": s.memory.used}
    return JSONResponse(body, status_code=503 if s.gate.draining.is_set() else 200)


@router.api_route("/metrics", methods=["GET", "HEAD"], summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics(request: Request):
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------------------------- models


@router.api_route("/v1/models", methods=["GET", "HEAD"], summary="The models this server runs")
async def list_models(request: Request):
    s = state(request)
    return {"default": s.default, "default_style": s.default_style,
            "models": [m.describe(s.default) for m in s.models.values()]}


@router.api_route("/v1/models/{name}", methods=["GET", "HEAD"], summary="One model",
                  responses={404: {"description": "unknown model"}})
async def one_model(request: Request, name: str):
    s = state(request)
    return s.model(name).describe(s.default)


@router.api_route("/v1/models/{name}/painting", methods=["GET", "HEAD"], response_class=Response,
                  summary="A JPEG thumbnail of the model's painting",
                  responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "unknown model, or no painting"}})
async def painting(request: Request, name: str):
    model = state(request).model(name)
    if not model.thumbnail:
        raise ApiError(404, f"model {shown(name)} has no painting")
    return _thumbnail(model.thumbnail)


@router.api_route("/v1/models/{name}/styles/{style}/painting", methods=["GET", "HEAD"], response_class=Response,
                  summary="A JPEG thumbnail of the painting of a style of a collection",
                  responses={200: {"content": {"image/jpeg": {}}},
                             404: {"description": "unknown model or style, or no painting"}})
async def style_painting(request: Request, name: str, style: str):
    thumbnail = state(request).model(name).style_thumbnails.get(style)
    if not thumbnail:
        raise ApiError(404, f"model {shown(name)} has no painting for a style {shown(style)}")
    return _thumbnail(thumbnail)


def _thumbnail(jpeg: bytes) -> Response:
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})


# --------------------------------------------------------------------------------- stylize

IMAGE_BODY = {"schema": {"type": "string", "format": "binary"}}
PARAMETER_DOCS = [
    {"name": "model", "in": "query", "schema": {"type": "string"},
     "description": "model name (default: the server's default); NAME:STYLE picks a style of a collection"},
    {"name": "style", "in": "query", "schema": {"type": "string"},
     "description": "a style of a collection model, by name (default: its first style; see GET /v1/models)"},
    {"name": "mix", "in": "query", "schema": {"type": "string"}, "example": "starry_night=0.6,the_scream=0.4",
     "description": "a mix of a collection's styles, STYLE=WEIGHT,... (weights >= 0, normalised to sum to 1); "
                    "not with style"},
    {"name": "strength", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 1},
     "description": "0: the original, 1: fully stylized"},
    {"name": "preserve_color", "in": "query", "schema": {"type": "boolean", "default": False},
     "description": "keep the photo's colours (luminance-only transfer)"},
    {"name": "max_size", "in": "query", "schema": {"type": "integer", "minimum": MIN_SIDE},
     "description": "longest output side; never above the server's --max-size; smaller images are not enlarged"},
    {"name": "stroke_scale", "in": "query", "schema": {"type": "number", "minimum": 1, "maximum": MAX_SCALE, "default": 1},
     "description": "strokes this many times larger: stylized at 1/stroke_scale of the size, then back to full size "
                    "guided by the photo (after max_size)"},
    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["png", "jpeg", "webp"], "default": "png"},
     "description": "output format (any letter case)"},
]
MULTIPART_SCHEMA = {"schema": {"type": "object", "required": ["image"], "properties": {
    "image": {"type": "string", "format": "binary"}, **{p["name"]: p["schema"] for p in PARAMETER_DOCS}}}}


@router.post(
    "/v1/stylize",
    summary="Stylize an image",
    description="Send the image as the raw request body (Content-Type image/* or application/octet-stream), or "
    "as the file field `image` of a multipart form, whose other fields override the query parameters. Answers "
    "the stylized image, the same size as the input unless it is larger than `max_size`.",
    response_class=Response,
    openapi_extra={"parameters": PARAMETER_DOCS, "requestBody": {"required": True, "content": {
        "image/*": IMAGE_BODY, "application/octet-stream": IMAGE_BODY, "multipart/form-data": MULTIPART_SCHEMA}}},
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}, "description": "the stylized image"},
        400: {"description": "broken image or malformed body"}, 403: {"description": "a cross-site form post"},
        404: {"description": "unknown model, or a style the collection lacks"}, 408: {"description": "the body did not arrive within --body-timeout"},
        413: {"description": "body or image over the server's limits"},
        415: {"description": "not an image, or not in an accepted format"},
        422: {"description": "bad parameter (a style or mix for a single-style model too), or image too small"},
        503: {"description": "queue full or shutting down; see Retry-After"},
        504: {"description": "not answered within the server's timeout"},
    },
)
async def stylize(request: Request):
    s = state(request)
    try:
        return await _stylize(request, s)
    except ApiError as e:
        if e.reason:
            s.metrics.rejected.labels(e.reason).inc()
        raise


async def _drop_rest_of_body(request: Request, s: ServerState) -> None:
    await drain_refused_body(request.receive, REFUSED_BODY_LIMIT * s.config.max_body)


async def _stylize(request: Request, s: ServerState) -> Response:
    try:  # refused before reading the body: answered, the rest of the body dropped, the connection closed
        multipart = check_request(request.headers, request.headers.get("host"))
        query = dict(request.query_params)
        params = s.params(query)
    except ApiError as e:
        e.headers.setdefault("Connection", "close")
        await _drop_rest_of_body(request, s)
        raise
    try:
        body = await read_body(request.receive, request.headers, s.config.max_body, s.config.body_timeout, s.memory,
                               s.gate.draining)
    except Draining:
        raise s.refusal() from None
    except ApiError as e:
        if e.status == 413:  # the client is still sending: let the rest arrive before the close
            await _drop_rest_of_body(request, s)
        raise
    try:
        data = body
        if multipart:
            data, fields = await read_multipart(request.scope, body, s.config.max_body)
            params = s.params({**query, **fields})
        if not data:
            raise ApiError(400, 'empty body: send an image (raw body, or multipart field "image")')
        model = s.models[params.model]
        encoded, (width, height), seconds = await _admitted(request, s, model, data, params)
    finally:
        s.memory.give(len(body))
    _, media_type, ext = FORMATS[params.format]
    return Response(encoded, media_type=media_type, headers={
        "X-Fst-Model": quote(model.name, safe=""),
        **({"X-Fst-Style": quote(params.label, safe="")} if params.label else {}),
        "X-Fst-Size": f"{width}x{height}",
        "X-Fst-Inference-Ms": f"{seconds * 1000:.1f}",
        "Content-Disposition": model.content_disposition(ext, params.label),
    })


async def _admitted(request: Request, s: ServerState, model: Model, data, params: Params):
    """Admission, the wait for a worker, the job: -> run_job's answer. 503, 504 or ClientGone."""
    gate = s.gate
    if not gate.try_admit():
        raise s.refusal()
    deadline = time.monotonic() + s.config.timeout
    admitted = True  # this coroutine gives the admission back, unless a started job does
    # The body has been read: the next message from the client can only be its hang-up.
    gone = asyncio.ensure_future(request.receive())
    try:
        try:
            await _unless_gone(gate.acquire(), gone, deadline, "not started")
        except Draining:
            raise s.refusal() from None
        try:
            job = asyncio.get_running_loop().run_in_executor(
                s.executor, run_job, model, data, params, s.config.max_pixels, s.config.max_size)
        except BaseException:
            gate.release()
            raise

        def finished(f: asyncio.Future) -> None:
            gate.release()
            gate.leave()
            if not f.cancelled() and f.exception() is None:
                seconds = f.result()[2]
                gate.observe(seconds)
                s.metrics.inference.labels(model.name).observe(seconds)

        job.add_done_callback(finished)
        admitted = False
        return await _unless_gone(asyncio.shield(job), gone, deadline, "not done")
    finally:
        gone.cancel()
        if admitted:
            gate.leave()


async def _unless_gone(awaitable, gone: asyncio.Future, deadline: float, what: str):
    """Await `awaitable` unless the client hangs up (ClientGone) or the deadline passes (504)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task, gone}, timeout=max(0.0, deadline - time.monotonic()),
                                 return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()
    task.cancel()  # a running job keeps its worker (shielded); a place in line is given up
    if gone in done:
        raise ClientGone
    raise ApiError(504, f"{what} within the server's timeout", reason="timeout")
